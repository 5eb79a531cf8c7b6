"""The hub: Pd connections on one side, model workers on the other, and the routing between.

A Pd message travels: ``[pdbridge.conn]`` -> :class:`~pdbridge.pdclient.PdConnection` ->
:meth:`Hub.on_request`, which puts it in its Pd's order (:mod:`pdbridge.ordering`) and on the
model's :class:`~pdbridge.supervisor.WorkerSlot` queue -> :meth:`Hub.dispatch` sends the worker a
``request`` and has Pd write the arrays it declares it reads, which follow unasked. The worker may
ask for more arrays (``array_request``), reports ``progress`` and ``event`` lines, and ends with
``done`` (results, arrays, notes, jobs to follow: landed by :meth:`Hub._deliver`) or ``error``.
Every request's outcome reaches its object in the order of its requests, ending with ``_end``.
The hub never waits on a worker or on Pd: every step is an asyncio callback or task.
"""
from __future__ import annotations

import asyncio
import collections
import hmac
import itertools
import json
import logging
import os
import random
import time
from pathlib import Path
from typing import Any, Optional

import zmq
import zmq.auth.thread

from pdwire.arrays import MAX_BUFFER_BYTES, array_to_buffers, buffers_to_array, read_wav, write_wav
from pdwire.messages import InvalidMessage, Message, Session, new_key
from pdwire.specs import ANY, NONE, ArraySpec

from . import fudi, outcome
from .config import Config, load_config
from .jobwatch import JobWatch
from .launcher import spawn_worker
from .notes import note_lines
from .ordering import PdGroup
from .pdclient import PdConnection, PdGone, result_lines
from .request import Request
from .runfolder import RunFolder, remove_stale
from .supervisor import WorkerSlot
from .ticket import DEFAULT_PD_PORT, Ticket, peer_uid, retire_ticket, ticket_path

log = logging.getLogger("pdbridge.hub")

PD_PROTOCOL = 2
"""Version of the FUDI conversation between [pdbridge.conn] and the hub (see docs/protocol.md)."""
PD_IDS = 1_000_000
"""Ids the hub gives a Pd: numbers Pd sends back exactly (it prints floats with 6 digits)."""
MAX_IN_FLIGHT = 1024
"""Requests one object may have waiting or running; more is a patch in a loop."""
MAX_FRAME_BYTES = MAX_BUFFER_BYTES + 65536
"""Largest ZeroMQ frame the hub accepts from anyone (array buffers are cut smaller)."""
QUIET_S = 5.0
"""Refused connections and dropped frames are logged at most once per this many seconds."""


def default_log_dir() -> Path:
    from .config import STATE_DIR

    path = Path(os.environ["PDBRIDGE_LOG_DIR"]) if os.environ.get("PDBRIDGE_LOG_DIR") else STATE_DIR / "logs"
    path.mkdir(parents=True, exist_ok=True)
    return path


class _Quota:
    """Counts events and logs them at most once per :data:`QUIET_S` (an attacker cannot fill the log)."""

    def __init__(self, what: str) -> None:
        self.what = what
        self.count = 0
        self._logged = 0.0
        self._since = 0

    def note(self, detail: str) -> None:
        self.count += 1
        self._since += 1
        now = time.monotonic()
        if now - self._logged >= QUIET_S:
            log.warning("%s (%d since the last report): %s", self.what, self._since, detail)
            self._logged, self._since = now, 0


class Hub:
    def __init__(self, config: Optional[Config] = None, pd_host: str = "127.0.0.1", pd_port: int = DEFAULT_PD_PORT,
                 worker_bind: Optional[str] = None, log_dir: Optional[Path] = None, key: Optional[bytes] = None) -> None:
        """``worker_bind``: a TCP address (``tcp://0.0.0.0:5555``) for workers on other machines;
        without it only this machine's workers can connect, through a socket in the private folder."""
        self.config = config or load_config()
        self.pd_host, self.pd_port = pd_host, pd_port
        self.worker_bind = worker_bind
        self.key = key or new_key()
        self.session = Session(self.key, sender="hub")
        self.log_dir = log_dir or default_log_dir()
        self.run: Optional[RunFolder] = None
        self.ticket: Optional[Ticket] = None
        self.slots = {m: WorkerSlot(self, c, self.log_dir) for m, c in self.config.workers.items()}
        self.groups: dict[int, PdGroup] = {}
        self.connections: dict[int, PdConnection] = {}
        self.sessions: dict[str, PdConnection] = {}
        self.jobs = JobWatch(self._tell_job)
        self.worker_url = ""
        self.local_worker_url = ""
        self.curve: dict[str, str] = {}
        self.refused = _Quota("refused Pd connections")
        self.dropped = _Quota("dropped ZeroMQ messages that failed verification")
        self.timings: collections.deque[dict[str, Any]] = collections.deque(maxlen=10_000)
        """Recent requests: seconds in the worker's handler and from Pd's message to the result."""
        self._ids = itertools.count(1)
        self._by_identity: dict[bytes, WorkerSlot] = {}
        self._socket_of: dict[bytes, zmq.Socket] = {}
        self._specs: dict[tuple[str, str], tuple[ArraySpec, ArraySpec]] = {}
        self._in_flight: dict[int, int] = collections.Counter()
        self._server: Optional[asyncio.base_events.Server] = None
        self._zctx = zmq.Context()
        self._routers: list[zmq.Socket] = []
        self._auth: Optional[zmq.auth.thread.ThreadAuthenticator] = None
        self._tasks: list[asyncio.Task[Any]] = []
        self._drain_scheduled = False

    # -- lifecycle -------------------------------------------------------------------------------
    async def start(self) -> None:
        remove_stale(connection_dirs=[default_connection_dir()])
        self.run = RunFolder()
        loop = asyncio.get_running_loop()
        ipc = self._router()
        ipc.bind(f"ipc://{self.run.ipc_path}")
        self.local_worker_url = ipc.getsockopt_string(zmq.LAST_ENDPOINT)
        if self.worker_bind:
            self.worker_url = self._bind_tcp(self.worker_bind)
        self._server = await loop.create_server(lambda: PdConnection(self, next(self._ids)), self.pd_host,
                                                self.pd_port)
        self.pd_port = self._server.sockets[0].getsockname()[1]
        self.ticket = Ticket(self.pd_port, self.run.arrays.root, self.run.root)
        self.ticket.write()
        if not ticket_path(DEFAULT_PD_PORT).exists():  # so Pd's objects find a ticket there, saying down
            retire_ticket(DEFAULT_PD_PORT)
        for router in self._routers:
            loop.add_reader(router.getsockopt(zmq.FD), self._drain, router)
        self._tasks = [asyncio.create_task(self._housekeeping()), asyncio.create_task(self.jobs.run())]
        log.info("hub: Pd port %d, workers at %s, arrays in %s", self.pd_port,
                 self.worker_url or self.local_worker_url, self.run.arrays.root)

    def _router(self) -> zmq.Socket:
        sock = self._zctx.socket(zmq.ROUTER)
        sock.setsockopt(zmq.LINGER, 0)
        sock.setsockopt(zmq.ROUTER_MANDATORY, 1)
        sock.setsockopt(zmq.MAXMSGSIZE, MAX_FRAME_BYTES)
        self._routers.append(sock)
        return sock

    def _bind_tcp(self, address: str) -> str:
        """The network endpoint: ZeroMQ CURVE encrypts it, and only a client holding the secret
        key from this hub's connection file gets through the handshake (anyone else sends nothing)."""
        server_public, server_secret = zmq.curve_keypair()
        client_public, client_secret = zmq.curve_keypair()
        self.curve = {"server_public": server_public.decode(), "client_public": client_public.decode(),
                      "client_secret": client_secret.decode()}
        self._auth = zmq.auth.thread.ThreadAuthenticator(self._zctx, log=logging.getLogger("pdbridge.zap"))
        self._auth.start()
        self._auth.configure_curve_callback(domain="*", credentials_provider=_OnlyKey(client_public))
        sock = self._router()
        sock.curve_server = True
        sock.curve_publickey = server_public
        sock.curve_secretkey = server_secret
        sock.bind(address)
        return sock.getsockopt_string(zmq.LAST_ENDPOINT).replace("0.0.0.0", "127.0.0.1")

    async def stop(self) -> None:
        for slot in self.slots.values():
            await slot.stop()
        for task in self._tasks:
            task.cancel()
        if self._server:
            self._server.close()
        for conn in list(self.connections.values()):
            conn.close()
        loop = asyncio.get_running_loop()
        for router in self._routers:
            loop.remove_reader(router.getsockopt(zmq.FD))
            router.close()
        if self._auth:
            self._auth.stop()
        self._zctx.term()
        if self.ticket:
            self.ticket.retire()
        if self.run:
            self.run.close()

    def connection_info(self) -> dict[str, Any]:
        """What `pdbridge worker --connection-file` needs to join this hub (from here or elsewhere)."""
        assert self.run is not None
        return {"pd_port": self.pd_port, "local_worker_url": self.local_worker_url, "worker_url": self.worker_url,
                "key": self.key.decode("ascii"), "pid": os.getpid(), "arrays": str(self.run.arrays.root),
                "run_folder": str(self.run.root), "logs": str(self.log_dir),
                **({"curve": self.curve} if self.curve else {})}

    def write_connection_file(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            json.dump(self.connection_info(), f, indent=1)

    # -- Pd side (ConnectionHost) --------------------------------------------------------------
    def on_hello(self, conn: PdConnection, atoms: list[fudi.Atom]) -> Optional[list[fudi.Atom]]:
        """``hello <model> <protocol> <pd-token> <pd-id>``: the welcome, or None to close unheard."""
        assert self.ticket is not None and conn.transport is not None
        uid = peer_uid(conn.transport.get_extra_info("socket"))
        if uid is not None and uid != os.getuid():
            self.refused.note(f"a connection from uid {uid}")
            return None
        if len(atoms) < 5 or not isinstance(atoms[3], str) or not hmac.compare_digest(
                atoms[3].encode(), self.ticket.pd_token.encode()):
            self.refused.note("a connection without this hub's ticket")
            return None
        model, version, pd_id = str(atoms[1]), atoms[2], atoms[4]
        if version != PD_PROTOCOL:
            return self._refuse(conn, f"these pdbridge abstractions speak protocol {version}, this hub {PD_PROTOCOL}: "
                                f"use the pd_patches that came with this hub")
        if model not in self.slots:
            return self._refuse(conn, f"unknown model '{model}' (this hub serves: {', '.join(sorted(self.slots))})")
        conn.model = model
        group_id = int(pd_id) if isinstance(pd_id, float) and 0 < pd_id < PD_IDS else random.randrange(1, PD_IDS)
        self._join(conn, group_id)
        self.connections[conn.id] = conn
        return ["_welcome", self.ticket.hub_token, group_id]

    def _refuse(self, conn: PdConnection, text: str) -> list[fudi.Atom]:
        """Welcome (the object is the user's own), say why it cannot go on, and close."""
        assert self.ticket is not None
        asyncio.get_running_loop().call_soon(lambda: (conn.error(text), conn.close(text)))
        return ["_welcome", self.ticket.hub_token, 0]

    def _join(self, conn: PdConnection, group_id: int) -> None:
        if conn.group is not None:
            conn.group.members -= 1
            self._drop_group_if_idle(conn.group)
        group = self.groups.get(group_id) or self.groups.setdefault(group_id, PdGroup(group_id))
        group.members += 1
        conn.group = group

    def _drop_group_if_idle(self, group: PdGroup) -> None:
        if group.members <= 0 and not group.pending and not group.held:
            self.groups.pop(group.id, None)

    def on_switch(self, conn: PdConnection, pd_id: int) -> None:
        """Two objects of one Pd got different ids at the same moment; the later joins the earlier."""
        if conn.state == "welcomed" and 0 < pd_id < PD_IDS:
            self._join(conn, pd_id)

    def on_ready(self, conn: PdConnection) -> None:
        self.sessions[conn.session] = conn

    def on_request(self, conn: PdConnection, seq: int, queued: int, message: list[fudi.Atom]) -> None:
        assert conn.group is not None
        conn.group.arrive(seq, queued, lambda: self._admit(conn, message))

    def _admit(self, conn: PdConnection, message: list[fudi.Atom]) -> None:
        """A request's turn has come in its Pd's order: track it, then queue it for its worker."""
        if conn.closed or conn.group is None or conn.model is None:
            return
        head = message[0]
        selector = head if isinstance(head, str) else f"{head:g}"
        req = Request(conn, selector, list(message[1:]))
        loop = asyncio.get_running_loop()
        req.after, req.written = conn.last_written, loop.create_future()
        conn.last_written = req.written
        slot = self.slots[conn.model]
        req.reads, req.writes = self._declared(slot, req)
        conn.group.enter(req)
        self._in_flight[conn.id] += 1
        if not isinstance(head, str):
            self.conclude(req, outcome.refused(selector, f"a message must start with a word, not the number {selector}"))
        elif self._in_flight[conn.id] > MAX_IN_FLIGHT:
            self.conclude(req, outcome.refused(selector, f"this object already has {MAX_IN_FLIGHT} requests waiting"))
        else:
            slot.submit(req)

    def _declared(self, slot: WorkerSlot, req: Request) -> tuple[Any, Any]:
        """The arrays ``req`` may read and write, by its message's declaration; any array until the
        worker has said (in its hello) what its messages declare."""
        if not slot.hello:
            return ANY, ANY
        specs = self._specs.get((slot.model, req.selector))
        if specs is None:
            spec = slot.messages.get(req.selector)
            if spec is None:
                return NONE, NONE  # the worker will answer "unknown message"
            specs = (ArraySpec.parse(spec.get("reads")), ArraySpec.parse(spec.get("writes")))
            self._specs[(slot.model, req.selector)] = specs
        return specs[0].select(req.atoms), specs[1].select(req.atoms)

    def on_cancel(self, conn: PdConnection) -> None:
        if conn.model:
            self.slots[conn.model].cancel(conn)

    def on_closed(self, conn: PdConnection) -> None:
        self.connections.pop(conn.id, None)
        self.sessions.pop(conn.session, None)
        self._in_flight.pop(conn.id, None)
        self.jobs.forget(conn.session)
        if conn.model:
            slot = self.slots[conn.model]
            slot.cancel(conn)
            if slot.identity:
                self.send(slot, "session_closed", {"session": conn.session})
        if conn.group is not None:
            conn.group.members -= 1
            self._drop_group_if_idle(conn.group)

    # -- worker side (SlotHost) ----------------------------------------------------------------
    async def spawn(self, slot: WorkerSlot, identity: str) -> asyncio.subprocess.Process:
        assert self.run is not None
        return await spawn_worker(slot.config, self.local_worker_url, self.key, identity, self.run.arrays.root)

    def send(self, slot: WorkerSlot, msg_type: str, content: Optional[dict[str, Any]] = None,
             parent: Optional[str] = None) -> None:
        if slot.identity is not None:
            self._send(slot.identity, self.session.msg(msg_type, content, parent=parent, to=slot.identity.decode()))

    def _send(self, identity: bytes, msg: Message) -> None:
        base = identity[:-len(b".heartbeat")] if identity.endswith(b".heartbeat") else identity
        sock = self._socket_of.get(base) or (self._routers[0] if self._routers else None)
        if sock is None:
            return
        try:  # zero-copy only pays off for array buffers; small frames are cheaper copied
            sock.send_multipart([identity, *self.session.serialize(msg)], flags=zmq.NOBLOCK, copy=not msg.buffers)
        except zmq.ZMQError as exc:  # the peer is gone (ROUTER_MANDATORY); its exit is noticed elsewhere
            log.warning("could not send %s to %r: %s", msg.msg_type, identity, exc)
        self._schedule_drain()

    def _schedule_drain(self) -> None:
        """ZeroMQ's FD is edge-triggered and a send can swallow the edge: look again soon."""
        if not self._drain_scheduled:
            self._drain_scheduled = True
            asyncio.get_running_loop().call_soon(self._drain_all)

    def _drain_all(self) -> None:
        self._drain_scheduled = False
        for router in self._routers:
            self._drain(router)

    def dispatch(self, slot: WorkerSlot, req: Request) -> None:
        """Send ``req`` to its worker, and at the same time have Pd write the arrays it declares it reads.

        They follow the request as an ``array_reply`` to it, so Pd writes them while the request
        travels and the handler starts, and the handler needs no round trip of its own. Arrays Pd
        does not have are left out: the handler asks for them and reports them in its own words.
        """
        names = sorted(req.reads.exact)
        content = {"selector": req.selector, "atoms": req.atoms, "session": req.client.session,
                   "canvas_dir": req.client.canvas_dir, **({"prefetch": names} if names else {})}
        assert slot.identity is not None
        msg = self.session.msg("request", content, to=slot.identity.decode(), session=req.client.session)
        msg.msg_id = req.msg_id
        self._send(slot.identity, msg)
        if names:
            asyncio.create_task(self._prefetch(slot, req, names))

    def refine(self, slot: WorkerSlot, req: Request) -> None:
        req.reads, req.writes = self._declared(slot, req)
        if not req.reads:
            req.reads_sent = req.reads_done = True
        if not req.writes:
            req.writes_sent = req.writes_done = True
        if req.client.group is not None:
            req.client.group.changed()

    def forget(self, slot: WorkerSlot) -> None:
        for identity, s in list(self._by_identity.items()):
            if s is slot:
                del self._by_identity[identity]
                self._socket_of.pop(identity, None)

    def console(self, slot: WorkerSlot, text: str) -> None:
        for conn in list(self.connections.values()):
            if conn.model == slot.model and conn.state == "ready":
                conn.log(text)

    # -- worker messages -----------------------------------------------------------------------
    def _drain(self, router: zmq.Socket) -> None:
        """Handle every message the workers have sent on ``router``."""
        while not router.closed and router.getsockopt(zmq.EVENTS) & zmq.POLLIN:
            frames = router.recv_multipart(zmq.NOBLOCK, copy=False)
            try:
                identities, msg = self.session.deserialize(frames)
            except InvalidMessage as exc:
                self.dropped.note(str(exc))
                continue
            identity = identities[0] if identities else b""
            base = identity[:-len(b".heartbeat")] if identity.endswith(b".heartbeat") else identity
            if msg.sender.rpartition(":")[2].encode() != base:  # the signature is bound to its sender
                self.dropped.note(f"sender {msg.sender!r} on connection {identity[:40]!r}")
                continue
            try:
                self._on_worker_message(router, identity, base, msg)
            except Exception:  # one odd message must never stop the hub
                log.exception("error handling %s from a worker", msg.msg_type)

    def _on_worker_message(self, router: zmq.Socket, identity: bytes, base: bytes, msg: Message) -> None:
        if msg.msg_type == "heartbeat":  # from the worker's heartbeat socket: answer it
            beating = self._by_identity.get(base)
            if beating is not None:
                beating.last_heard = time.monotonic()
                self._send(identity, self.session.msg("ping", to=base.decode()))
            return
        if msg.msg_type == "hello":
            self._on_hello(router, identity, msg)
            return
        slot = self._by_identity.get(identity)
        if slot is None:
            return
        slot.last_heard = time.monotonic()
        if msg.msg_type == "event":
            self._event(msg)
            return
        req = slot.request_for(msg.parent_id)
        if req is None:
            if msg.msg_type == "array_request":
                self._send(identity, self.session.msg("array_reply", {"error": "the request has ended"},
                                                      parent=msg, to=base.decode()))
            elif msg.msg_type == "done":  # the answer to a request given up on: its files are not needed
                self._discard_files(msg.content)
            return
        if msg.msg_type == "progress":
            req.client.progress(float(msg.content.get("fraction", 0.0)), str(msg.content.get("text", "")))
        elif msg.msg_type == "array_request":
            asyncio.create_task(self._serve_arrays(slot, req, msg))
        elif msg.msg_type == "done":
            slot.finish(req)
            self._handler_done(req)
            asyncio.create_task(self._deliver(slot, req, msg))
        elif msg.msg_type == "error":
            slot.finish(req)
            self.conclude(req, self._error_ending(slot, req, msg.content))

    def _on_hello(self, router: zmq.Socket, identity: bytes, msg: Message) -> None:
        target = self.slots.get(str(msg.content.get("model")))
        if target is None:
            log.warning("a worker for unknown model %r said hello", msg.content.get("model"))
            return
        spawned = target.identity == identity
        if not spawned and target.ready.is_set():
            log.warning("a second %s worker connected; keeping the first", target.model)
            return
        self._by_identity[identity] = target
        self._socket_of[identity] = router
        self._specs = {k: v for k, v in self._specs.items() if k[0] != target.model}
        target.on_hello(identity, msg.content, spawned)

    def _event(self, msg: Message) -> None:
        """A line for one object, by its session: during a request or after it ended."""
        conn = self.sessions.get(msg.session)
        atoms = msg.content.get("atoms") or []
        if conn is None or not atoms:
            return
        line = ["event", int(msg.content.get("outlet", 0)), *atoms]
        try:
            fudi.encode(line)
        except (fudi.MessageTooLong, ValueError) as exc:
            log.warning("dropped an event too long (or malformed) for Pd: %s", exc)
            return
        conn.write_lines([line])

    def _error_ending(self, slot: WorkerSlot, req: Request, content: dict[str, Any]) -> outcome.Ending:
        ename, evalue = str(content.get("ename", "")), str(content.get("evalue", ""))
        if ename == "Cancelled":
            if req.timed_out is not None:
                return outcome.timed_out(req.selector, req.timed_out, slot.model, killed=False)
            return outcome.cancelled(req.selector)
        if ename == "PdError":
            return outcome.refused(req.selector, evalue)
        return outcome.failed(req.selector, ename, evalue, slot.log_path)

    # -- arrays --------------------------------------------------------------------------------
    def shares_files(self, slot: WorkerSlot) -> bool:
        """Whether ``slot``'s worker reads and writes the array folder itself (same machine)."""
        return self.run is not None and slot.hello.get("arrays") == str(self.run.arrays.root)

    async def _fetch(self, slot: WorkerSlot, req: Request, names: list[str], prefetch: bool
                     ) -> tuple[dict[str, Any], list[Any]]:
        """Have Pd write arrays ``names`` (in ``req``'s order) and describe them for the worker."""
        assert self.run is not None and req.client.group is not None
        await req.client.group.clear_to_read(req, names)
        conn = req.client
        numbers = [self.run.arrays.next_number() for _ in names]
        try:
            asked = [conn.ask(name, "write", number) for name, number in zip(names, numbers)]
        except ValueError as exc:
            return {"error": str(exc)}, []
        conn.write_lines([line for line, _ in asked])
        if prefetch and _complete(req):
            req.reads_sent = True
            req.client.group.changed()
        try:
            counts = await asyncio.gather(*[fut for _, fut in asked])
        except PdGone as exc:
            return {"error": f"Pd did not answer: {exc}"}, []
        finally:
            if prefetch and _complete(req):
                req.reads_done = True
                req.client.group.changed()
        metas, buffers = [], []
        for name, number, count in zip(names, numbers, counts):
            path = self.run.arrays.path_for(number)
            if count < 0:
                continue
            if self.shares_files(slot):
                metas.append({"name": name, "path": str(path)})
            else:
                meta, chunks = array_to_buffers(read_wav(path))
                path.unlink(missing_ok=True)
                metas.append({"name": name, **meta})
                buffers.extend(chunks)
        return {"arrays": metas, "missing": [n for n, c in zip(names, counts) if c < 0]}, buffers

    async def _prefetch(self, slot: WorkerSlot, req: Request, names: list[str]) -> None:
        content, buffers = await self._fetch(slot, req, names, prefetch=True)
        if slot.current is not req or slot.identity is None:  # it ended (or timed out) before reading them
            self._discard_files(content)
            return
        content.pop("missing", None)
        reply = self.session.msg("array_reply", {"arrays": content.get("arrays", [])}, parent=req.msg_id,
                                 buffers=buffers, to=slot.identity.decode())
        self._send(slot.identity, reply)

    async def _serve_arrays(self, slot: WorkerSlot, req: Request, msg: Message) -> None:
        """Answer a worker's ``array_request`` by asking the Pd object that sent the request."""
        names = [str(n) for n in msg.content.get("names", [])]
        buffers: list[Any] = []
        if msg.content.get("op") == "read":
            content, buffers = await self._fetch(slot, req, names, prefetch=False)
        else:
            try:
                counts = await req.client.arrays(names, "check")
                content = {"missing": [n for n, c in zip(names, counts) if c < 0]}
            except PdGone as exc:
                content = {"error": f"Pd did not answer: {exc}"}
            except ValueError as exc:
                content = {"error": str(exc)}
        if content.get("missing"):
            self._discard_files(content)
            content, buffers = {"error": outcome.missing_arrays(content["missing"])}, []
        content.pop("missing", None)
        if slot.identity is not None:
            self._send(slot.identity, self.session.msg("array_reply", content, parent=msg, buffers=buffers,
                                                       to=slot.identity.decode()))

    def _discard_files(self, content: dict[str, Any]) -> None:
        """Delete the array files a message names (only ever inside the array folder)."""
        if self.run is None:
            return
        for meta in content.get("arrays", []):
            if isinstance(meta, dict) and "path" in meta:
                self.run.arrays.discard(Path(meta["path"]))

    # -- outcomes ------------------------------------------------------------------------------
    def _handler_done(self, req: Request) -> None:
        """The handler returned: whatever it read, it has read."""
        req.reads_done = True
        if req.client.group is not None:
            req.client.group.changed()

    def conclude(self, req: Request, ending: outcome.Ending) -> None:
        """``req`` ends without results: its line (error or cancelled) follows its turn."""
        if req.ended:
            return
        req.ended = True
        req.reads_done = req.writes_done = True  # nothing more will be read or written for it
        if req.client.group is not None:
            req.client.group.changed()
        line = list(ending) if isinstance(ending, list) else fudi.truncate_text(["error"], ending)
        asyncio.create_task(self._write_outcome(req, [line]))

    async def _write_outcome(self, req: Request, lines: list[list[fudi.Atom]]) -> None:
        try:
            if req.after is not None:
                await req.after
            req.client.write_lines([*lines, ["_end"]])
        finally:
            self._passed(req)

    def _passed(self, req: Request) -> None:
        """``req``'s outcome is written: the object's next request may write its own."""
        if req.written is not None and not req.written.done():
            req.written.set_result(None)
        if req.client.id in self._in_flight:
            self._in_flight[req.client.id] = max(0, self._in_flight[req.client.id] - 1)
        if req.client.group is not None and req.client.group.members <= 0:
            self._drop_group_if_idle(req.client.group)

    async def _deliver(self, slot: WorkerSlot, req: Request, msg: Message) -> None:
        """Land output arrays in Pd (all or none), then play notes and send the result lines.

        Written together — ``_begin``, the ``_array`` reads, the notes, ``_ok`` lines, ``_end`` — so
        Pd handles them in one go, and ``[pdbridge.conn]`` lets the results out only if every
        array was there. With several arrays, their existence is checked first (unless the worker
        had Pd confirm them), so a missing one leaves every array unchanged.
        """
        req.ended = True
        assert self.run is not None and req.client.group is not None
        conn, group = req.client, req.client.group
        paths: list[Path] = []
        stores: list[asyncio.Future[float]] = []
        try:
            if req.after is not None:
                await req.after
            metas = msg.content.get("arrays", [])
            names = [str(m["name"]) for m in metas]
            paths = self._output_files(metas, msg.buffers)
            failure = self._check_done(req, msg, paths)
            if failure is None and len(names) > 1 and not set(msg.content.get("checked", [])) >= set(names):
                counts = await conn.arrays(names, "check")
                missing = [n for n, c in zip(names, counts) if c < 0]
                if missing:
                    failure = outcome.refused(req.selector, f"{outcome.missing_arrays(missing)}; no array was changed")
            if failure is not None:
                req.writes_done = True
                group.changed()
                conn.write_lines([fudi.truncate_text(["error"], failure), ["_end"]])
                return
            await group.clear_to_write(req, names)
            lines: list[list[fudi.Atom]] = [["_begin", req.selector]]
            for path, name in zip(paths, names):
                line, fut = conn.ask(name, "read", int(path.stem))
                lines.append(line)
                stores.append(fut)
            if msg.content.get("notes"):
                lines += note_lines(msg.content["notes"])
            for result in msg.content.get("results") or [["done", req.selector]]:
                lines += result_lines(result)
            conn.write_lines([*lines, ["_end"]])
            req.writes_sent = True
            group.changed()
            for job in msg.content.get("follow", []):
                self.jobs.follow(conn.session, str(job.get("folder", "")))
            self.timings.append({"selector": req.selector, "worker_s": msg.content.get("elapsed_s"),
                                 "hub_s": time.monotonic() - req.received})
        except (PdGone, ValueError) as exc:
            conn.write_lines([fudi.truncate_text(["error"], outcome.refused(req.selector, str(exc))), ["_end"]])
        finally:
            self._passed(req)
            try:
                await asyncio.gather(*stores, return_exceptions=True)
            finally:
                req.writes_done = True
                group.changed()
                if group.members <= 0:
                    self._drop_group_if_idle(group)
                for path in paths:
                    self.run.arrays.discard(path)

    def _output_files(self, metas: list[dict[str, Any]], buffers: list[Any]) -> list[Path]:
        """One numbered file in the array folder per output: a worker's own file renamed, or the
        samples of a worker elsewhere written here."""
        assert self.run is not None
        frames = iter(buffers)
        paths = []
        for meta in metas:
            number = self.run.arrays.next_number()
            target = self.run.arrays.path_for(number)
            if "path" in meta:
                source = Path(meta["path"])
                if not self.run.arrays.owns(source):
                    paths.append(source)  # refused by _check_done, never touched
                    continue
                os.replace(source, target)
            else:
                write_wav(target, buffers_to_array(meta, frames), meta.get("sr"))
            paths.append(target)
        return paths

    def _check_done(self, req: Request, msg: Message, paths: list[Path]) -> Optional[str]:
        """Why a worker's ``done`` cannot be landed (a worker bug), or None."""
        assert self.run is not None
        stray = [str(p) for p in paths if not self.run.arrays.owns(p)]
        if stray:
            log.error("%s worker named files outside the array folder: %s", req.selector, stray)
            paths[:] = [p for p in paths if self.run.arrays.owns(p)]
            return outcome.refused(req.selector, "the worker's output files are not in the hub's array folder")
        return None

    def _tell_job(self, session: str, line: list[Any]) -> None:
        conn = self.sessions.get(session)
        if conn is not None:
            conn.write_lines([["event", 1, *line]])

    async def _housekeeping(self) -> None:
        """Declare workers started by hand dead after a second without a heartbeat."""
        while True:
            await asyncio.sleep(0.25)
            now = time.monotonic()
            for slot in self.slots.values():
                slot.check_silence(now)


def _complete(req: Request) -> bool:
    """Whether ``req``'s declared reads are exactly the arrays prefetched for it."""
    return not req.reads.any and not req.reads.prefixes


class _OnlyKey:
    """ZeroMQ's authenticator asks this whether a CURVE client key may connect."""

    def __init__(self, key: bytes) -> None:
        self.key = key

    def callback(self, domain: str, key: bytes) -> bool:
        return hmac.compare_digest(key, self.key)  # both z85 text


def default_connection_dir() -> Path:
    """Where ``pdbridge serve`` writes connection files: $XDG_RUNTIME_DIR/pdbridge, else the state folder."""
    from .config import STATE_DIR

    runtime = os.environ.get("XDG_RUNTIME_DIR")
    return Path(runtime) / "pdbridge" if runtime else STATE_DIR
