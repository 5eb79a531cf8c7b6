"""The hub: Pd connections on one side, model workers on the other, and the routing between.

A Pd message travels: ``[pdbridge.conn]`` -> :meth:`Hub._on_pd_message` -> the model's
:class:`~pdbridge.supervisor.WorkerSlot` queue -> the worker (``request``). The worker may ask
for arrays (``array_request``, answered by :meth:`_serve_arrays` through the same Pd connection;
the ones its message declares it ``reads`` follow the request unasked, see :meth:`dispatch`),
reports ``progress`` and ends with ``done`` (results and output arrays, landed by :meth:`_deliver`)
or ``error``. The hub never waits on a worker: every step is an asyncio callback or task.
"""
from __future__ import annotations

import asyncio
import collections
import itertools
import json
import logging
import os
import time
from pathlib import Path
from typing import Any, Optional

import zmq

from . import fudi, wire
from .config import Config, load_config
from .exchange import ArrayExchange, read_wav
from .pdclient import PdClient, PdGone
from .supervisor import Job, WorkerSlot, default_log_dir

log = logging.getLogger("pdbridge.hub")

DEFAULT_PD_PORT = 41750
PD_PROTOCOL = 1
"""Version of the FUDI conversation between [pdbridge.conn] and the hub (see docs/protocol.md)."""
WARNINGS_PER_S = 1


def missing_arrays(names: list[str]) -> str:
    """The error for arrays Pd does not have, with what to do about it."""
    return f"array {' '.join(names)} not found: create it with [array define {names[0]}] or a table"


class Hub:
    def __init__(self, config: Optional[Config] = None, pd_host: str = "127.0.0.1", pd_port: int = DEFAULT_PD_PORT,
                 worker_bind: str = "tcp://127.0.0.1:*", log_dir: Optional[Path] = None,
                 key: Optional[bytes] = None) -> None:
        self.config = config or load_config()
        self.pd_host, self.pd_port = pd_host, pd_port
        self.worker_bind = worker_bind
        self.key = key or wire.new_key()
        self.session = wire.Session(self.key, sender="hub")
        self.log_dir = log_dir or default_log_dir()
        self.exchange = ArrayExchange()
        self.clients: dict[int, PdClient] = {}
        self.slots = {m: WorkerSlot(self, c) for m, c in self.config.workers.items()}
        self.worker_url = ""
        self.local_worker_url = ""
        self.dropped_frames = 0
        self.timings: collections.deque[dict[str, Any]] = collections.deque(maxlen=10_000)
        """Recent requests: seconds in the worker's handler and from Pd's message to the result."""
        self._ids = itertools.count(1)
        self._by_identity: dict[bytes, WorkerSlot] = {}
        self._server: Optional[asyncio.base_events.Server] = None
        self._zctx = zmq.Context()
        self._router: Optional[zmq.Socket] = None
        self._drain_scheduled = False
        self._tasks: list[asyncio.Task[Any]] = []
        self._warned = 0.0

    # -- lifecycle -------------------------------------------------------------------------------
    async def start(self) -> None:
        self._router = self._zctx.socket(zmq.ROUTER)
        self._router.setsockopt(zmq.LINGER, 0)
        self._router.setsockopt(zmq.ROUTER_MANDATORY, 1)
        self._router.bind(self.worker_bind)
        self.worker_url = self._router.getsockopt_string(zmq.LAST_ENDPOINT).replace("0.0.0.0", "127.0.0.1")
        # Workers the hub starts itself connect over a Unix socket in the per-run folder (no TCP stack)
        self._router.bind(f"ipc://{self.exchange.root}/workers")
        self.local_worker_url = self._router.getsockopt_string(zmq.LAST_ENDPOINT)
        self._server = await asyncio.start_server(self._serve_pd, self.pd_host, self.pd_port)
        self.pd_port = self._server.sockets[0].getsockname()[1]
        for model in self.slots:
            (self.log_dir / f"{model}.log").write_text("")
        asyncio.get_running_loop().add_reader(self._router.getsockopt(zmq.FD), self._drain_workers)
        self._tasks = [asyncio.create_task(self._housekeeping())]
        log.info("hub: Pd port %d, workers at %s, arrays in %s", self.pd_port, self.worker_url, self.exchange.root)

    async def stop(self) -> None:
        for slot in self.slots.values():
            if slot.identity:
                self.send_to_worker(slot, self.session.msg("shutdown"))
        await asyncio.sleep(0.1)
        for slot in self.slots.values():
            if slot.process and slot.process.returncode is None:
                slot.process.kill()
                await slot.process.wait()
        for task in self._tasks:
            task.cancel()
        if self._server:
            self._server.close()
        for client in list(self.clients.values()):
            client.close()
            client.writer.close()
        if self._router:
            asyncio.get_running_loop().remove_reader(self._router.getsockopt(zmq.FD))
            self._router.close()
        self._zctx.term()
        self.exchange.close()

    def connection_info(self) -> dict[str, Any]:
        """What `pdbridge worker --connection-file` needs to join this hub from elsewhere."""
        return {"pd_port": self.pd_port, "worker_url": self.worker_url, "key": self.key.decode("ascii"),
                "pid": os.getpid(), "arrays": str(self.exchange.root), "logs": str(self.log_dir)}

    def write_connection_file(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            json.dump(self.connection_info(), f, indent=1)

    def clients_of(self, model: str) -> list[PdClient]:
        return [c for c in self.clients.values() if c.model == model and not c.closed]

    # -- Pd side -------------------------------------------------------------------------------
    async def _serve_pd(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        client = PdClient(next(self._ids), writer)
        self.clients[client.id] = client
        decoder = fudi.Decoder()
        try:
            while data := await reader.read(65536):
                while True:
                    try:
                        for atoms in decoder.feed(data):
                            self._on_pd_message(client, atoms)
                        break
                    except fudi.FudiError as exc:
                        client.error(f"bad message from Pd: {exc}")
                        data = b""
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            self._on_pd_closed(client)

    def _on_pd_message(self, client: PdClient, atoms: list[fudi.Atom]) -> None:
        head = atoms[0]
        if not isinstance(head, str):
            client.error(f"a message must start with a word, not the number {head:g}")
            return
        if head == "_array":
            client.answer(atoms)
        elif head == "hello":
            self._on_hello(client, atoms[1:])
        elif client.model is None:
            client.error(f"{head}: not connected to a model yet (the abstraction says hello first)")
        elif head == "cancel":
            self.slots[client.model].cancel(client)
        else:
            self.slots[client.model].submit(Job(client, head, atoms[1:]))

    def _on_hello(self, client: PdClient, args: list[fudi.Atom]) -> None:
        if len(args) < 2:
            client.error("hello needs <model> <protocol> [patch folder]")
            return
        model, version = str(args[0]), args[1]
        if model not in self.slots:
            client.error(f"unknown model '{model}' (this hub serves: {', '.join(sorted(self.slots))})")
            return
        if version != PD_PROTOCOL:
            client.error(f"pd_patches are protocol {version}, this hub speaks {PD_PROTOCOL}: "
                         "use the abstractions that came with this pdbridge")
            return
        client.model = model
        client.canvas_dir = str(args[2]) if len(args) > 2 else ""

    def _on_pd_closed(self, client: PdClient) -> None:
        client.close()
        self.clients.pop(client.id, None)
        if client.model:
            slot = self.slots[client.model]
            slot.cancel(client, reason="closed")
            if slot.identity:
                self.send_to_worker(slot, self.session.msg("session_closed", {"session": client.session}))

    # -- worker side ---------------------------------------------------------------------------
    def send_to_worker(self, slot: WorkerSlot, msg: wire.Message, msg_id: Optional[str] = None) -> None:
        if msg_id:
            msg.msg_id = msg_id
        if slot.identity is not None:
            self._send(slot.identity, msg)

    def _send(self, identity: bytes, msg: wire.Message) -> None:
        if self._router is None:
            return
        try:
            # zero-copy only pays off for array buffers; small frames are cheaper copied
            self._router.send_multipart([identity, *self.session.serialize(msg)], flags=zmq.NOBLOCK,
                                        copy=not msg.buffers)
        except zmq.ZMQError as exc:  # the peer is gone (ROUTER_MANDATORY); its exit is noticed elsewhere
            log.warning("could not send %s to %r: %s", msg.msg_type, identity, exc)
        self._schedule_drain()

    def _schedule_drain(self) -> None:
        """ZeroMQ's FD is edge-triggered and a send can swallow the edge: look again soon."""
        if not self._drain_scheduled:
            self._drain_scheduled = True
            asyncio.get_running_loop().call_soon(self._drain_workers)

    def worker_lost(self, slot: WorkerSlot) -> None:
        for identity, s in list(self._by_identity.items()):
            if s is slot:
                del self._by_identity[identity]

    def _drain_workers(self) -> None:
        """Handle every message the workers have sent, in the loop iteration that noticed them."""
        self._drain_scheduled = False
        router = self._router
        while router is not None and router.getsockopt(zmq.EVENTS) & zmq.POLLIN:
            frames = router.recv_multipart(zmq.NOBLOCK, copy=False)
            try:
                identities, msg = self.session.deserialize(frames)
            except wire.InvalidMessage as exc:
                self._drop(frames, str(exc))
                continue
            try:
                self._on_worker_message(identities[0] if identities else b"", msg)
            except Exception:  # one odd message must never stop the hub
                log.exception("error handling %s from a worker", msg.msg_type)

    def _drop(self, frames: list[Any], why: str) -> None:
        """Unsigned or forged frames: dropped, counted, logged, and shown (rate-limited) in Pd."""
        self.dropped_frames += 1
        sender = bytes(frames[0].bytes if hasattr(frames[0], "bytes") else frames[0])[:40] if frames else b""
        text = f"pdbridge hub: dropped a ZeroMQ message that failed verification ({why}) from {sender!r}"
        log.warning("%s", text)
        now = time.monotonic()
        if now - self._warned >= 1.0 / WARNINGS_PER_S:
            self._warned = now
            for client in list(self.clients.values()):
                client.log(text)

    def _on_worker_message(self, identity: bytes, msg: wire.Message) -> None:
        if msg.msg_type == "heartbeat":  # from the worker's heartbeat socket: answer it
            beating = self._by_identity.get(str(msg.content.get("worker", "")).encode())
            if beating is not None:
                beating.last_heard = time.monotonic()
                self._send(identity, self.session.msg("ping"))
            return
        slot = self._by_identity.get(identity)
        if msg.msg_type == "hello":
            model = msg.content.get("model")
            target = self.slots.get(str(model))
            if target is None:
                log.warning("a worker for unknown model %r said hello", model)
                return
            spawned = target.identity == identity
            if not spawned and target.ready.is_set():
                log.warning("a second %s worker connected; keeping the first", model)
                return
            self._by_identity[identity] = target
            target.on_hello(identity, msg.content, spawned)
            return
        if slot is None:
            return
        slot.last_heard = time.monotonic()
        job = slot.job_for(msg)
        if job is None:
            if msg.msg_type == "done":  # the answer to a request given up on: its files are not needed
                self._discard_files(msg.content)
            return
        if msg.msg_type == "progress":
            job.client.progress(float(msg.content.get("fraction", 0.0)))
        elif msg.msg_type == "array_request":
            asyncio.create_task(self._serve_arrays(slot, job, msg))
        elif msg.msg_type == "done":
            slot.finish(job)
            if msg.content.get("arrays"):
                asyncio.create_task(self._deliver(job, msg))
            else:
                self._send_results(job, msg)
        elif msg.msg_type == "error":
            slot.finish(job)
            if msg.content.get("ename") == "Cancelled" and (job.cancel_requested or job.timed_out is None):
                job.client.send("cancelled", job.selector)
            else:
                evalue = msg.content.get("evalue", "")
                ename = msg.content.get("ename", "")
                text = evalue if ename == "PdError" else f"{ename}: {evalue} (log: {slot.log_path})"
                job.client.error(f"{job.selector}: {text}")

    def dispatch(self, slot: WorkerSlot, job: Job) -> None:
        """Send ``job`` to its worker, and at the same time fetch the arrays its message ``reads``.

        The fetched arrays follow the request as an ``array_reply`` to it, so Pd writes them while
        the request travels and the handler starts, and the handler needs no round trip of its
        own: on a single GANSynth note that is a few percent of the time. Arrays Pd does not have
        are left out: the handler asks for them as usual and reports them in its own order.
        """
        spec = slot.hello.get("messages", {}).get(job.selector) or {}
        try:
            names = wire.read_names(spec.get("reads"), job.atoms)
        except ValueError as exc:
            log.warning("%s: ignoring the worker's reads declaration: %s", job.selector, exc)
            names = []
        content = {"selector": job.selector, "atoms": job.atoms, "session": job.client.session,
                   "canvas_dir": job.client.canvas_dir, **({"prefetch": names} if names else {})}
        self.send_to_worker(slot, self.session.msg("request", content), job.msg_id)
        if names:
            asyncio.create_task(self._prefetch(slot, job, names))

    async def _prefetch(self, slot: WorkerSlot, job: Job, names: list[str]) -> None:
        content, buffers = await self._fetch(slot, job.client, "read", names)
        if slot.current is not job:  # it ended (or timed out) before reading them
            self._discard_files(content)
            return
        self.send_to_worker(slot, self.session.msg("array_reply", {"arrays": content.get("arrays", [])},
                                                   parent=job.msg_id, buffers=buffers))

    def shares_files(self, slot: WorkerSlot) -> bool:
        """Whether ``slot``'s worker reads and writes this hub's array folder itself (same machine)."""
        return slot.hello.get("arrays") == str(self.exchange.root)

    async def _fetch(self, slot: WorkerSlot, client: PdClient, op: str, names: list[str]
                     ) -> tuple[dict[str, Any], list[Any]]:
        """Check or read Pd arrays: ``({"arrays": [...]}, buffers)``, or ``({"error": text}, [])``.

        Reads include only the arrays Pd has (``missing`` lists the others): as the file Pd wrote,
        which the worker reads and deletes, or as buffers for a worker on another machine.
        """
        content: dict[str, Any] = {"arrays": []}
        buffers = []
        try:
            if op == "check":
                counts = await asyncio.gather(*[client.check(n) for n in names])
            else:
                paths = [self.exchange.new_path(n) for n in names]
                counts = await asyncio.gather(*[client.fetch(n, p) for n, p in zip(names, paths)])
                by_file = self.shares_files(slot)
                for name, path, n in zip(names, paths, counts):
                    if n >= 0 and by_file:
                        content["arrays"].append({"name": name, "path": str(path)})
                        continue
                    if n >= 0:
                        meta, data = wire.array_to_buffer(read_wav(path))
                        content["arrays"].append({"name": name, **meta})
                        buffers.append(data)
                    self.exchange.discard(path)
            content["missing"] = [n for n, count in zip(names, counts) if count < 0]
        except (PdGone, OSError, RuntimeError) as exc:
            return {"error": f"could not get arrays from Pd: {exc}"}, []
        return content, buffers

    async def _serve_arrays(self, slot: WorkerSlot, job: Job, msg: wire.Message) -> None:
        """Answer a worker's ``array_request`` by asking the Pd object that sent the request."""
        names = [str(n) for n in msg.content.get("names", [])]
        content, buffers = await self._fetch(slot, job.client, str(msg.content.get("op")), names)
        if content.get("missing"):
            self._discard_files(content)
            content, buffers = {"error": missing_arrays(content["missing"])}, []
        self.send_to_worker(slot, self.session.msg("array_reply", content, parent=msg, buffers=buffers))

    async def _deliver(self, job: Job, msg: wire.Message) -> None:
        """Land output arrays in Pd (all or none) and send the result lines, in one Pd tick.

        The hub writes ``_begin``, the ``_array`` reads and the result lines as ``_ok ...`` together;
        ``[pdbridge.conn]`` lets ``_ok`` lines out only if every array was there, so results never
        announce an array that did not land, and Pd needs no second sleep cycle to report them.
        With several arrays, their existence is checked first (unless the worker already had Pd
        confirm them), so a missing one leaves every array unchanged.
        """
        client = job.client
        metas = msg.content.get("arrays", [])
        names = [m["name"] for m in metas]
        buffers = iter(msg.buffers)
        # a worker on this machine wrote its files already; the others' samples are written here
        paths = [Path(m["path"]) if "path" in m else
                 self.exchange.write(m["name"], wire.buffer_to_array(m, next(buffers)), m.get("sr")) for m in metas]
        try:
            stray = [str(p) for p in paths if not self.exchange.owns(p)]
            if stray:
                log.error("%s worker named files outside the array folder: %s", job.selector, stray)
                client.error(f"{job.selector}: the worker's output files are not in the hub's array folder")
                return
            if len(metas) > 1 and not set(msg.content.get("checked", [])) >= set(names):
                counts = await asyncio.gather(*[client.check(n) for n in names])
                missing = [n for n, count in zip(names, counts) if count < 0]
                if missing:
                    client.error(f"{job.selector}: {missing_arrays(missing)}; no array was changed")
                    return
            client.send("_begin")
            stores = [client.store(p, n) for p, n in zip(paths, names)]  # sent now, answered later
            self._send_results(job, msg, gated=True)
            counts = await asyncio.gather(*stores)
            missing = [n for n, count in zip(names, counts) if count < 0]
            if missing:
                client.error(f"{job.selector}: {missing_arrays(missing)}")
        except PdGone:
            pass
        finally:
            for path in paths:
                self.exchange.discard(path)

    def _discard_files(self, content: dict[str, Any]) -> None:
        """Delete the array files a message names (only ever inside the array folder)."""
        for meta in content.get("arrays", []):
            if "path" in meta:
                self.exchange.discard(Path(meta["path"]))

    def _send_results(self, job: Job, msg: wire.Message, gated: bool = False) -> None:
        for line in msg.content.get("results") or [["done", job.selector]]:
            job.client.result(line, gated)
        self.timings.append({"selector": job.selector, "worker_s": msg.content.get("elapsed_s"),
                             "hub_s": time.monotonic() - job.received})

    async def _housekeeping(self) -> None:
        """Declare workers started by hand dead after a second without a heartbeat."""
        while True:
            await asyncio.sleep(0.25)
            now = time.monotonic()
            for slot in self.slots.values():
                slot.check_silence(now)
