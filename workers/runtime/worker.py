"""The worker process: connect to the hub, receive requests, run handlers, answer.

Two threads. The I/O thread owns the ZeroMQ socket: it sends heartbeats, receives requests, cancels
and array replies, and sends what the main thread queues (through an inproc pipe, because a ZeroMQ
socket belongs to one thread). The main thread runs one handler at a time, so model code never
has to be thread-safe, and heartbeats keep flowing while it computes.
"""
from __future__ import annotations

import argparse
import logging
import os
import queue
import socket
import sys
import threading
import time
import traceback
import uuid
from dataclasses import dataclass, field
from typing import Any, Callable, Optional

import numpy as np
import zmq

from pdbridge import wire
from pdbridge.wire import Message, Session

from .device import choose_device
from .errors import Cancelled, PdError
from .request import Request

log = logging.getLogger("pdbridge.worker")

HEARTBEAT_INTERVAL_S = 0.2
"""The hub declares a remote worker dead after 1 s without a heartbeat."""
HUB_SILENCE_S = 10.0
"""A worker the hub spawned exits when the hub has been silent this long (the hub pings every second)."""
ARRAY_REPLY_TIMEOUT_S = 60.0
DEFAULT_TIMEOUT_S = 300.0

Handler = Callable[[Request], None]


@dataclass
class MessageSpec:
    name: str
    handler: Handler
    help: str
    timeout: Optional[float]


@dataclass
class Job:
    """A request in flight inside the worker, with its channels back to the I/O thread."""

    msg_id: str
    selector: str
    atoms: list
    session: str
    canvas_dir: str
    outbox: Callable[[Message], None]
    session_obj: Session
    cancel_event: threading.Event = field(default_factory=threading.Event)
    replies: "queue.Queue[Message]" = field(default_factory=queue.Queue)

    def send_progress(self, fraction: float, text: str) -> None:
        self.outbox(self.session_obj.msg("progress", {"fraction": fraction, "text": text}, parent=self.msg_id))

    def array_request(self, op: str, names: list[str]) -> Any:
        """Ask the hub to check or read Pd arrays; blocks until the hub answers."""
        bad = [n for n in names if not isinstance(n, str) or not n]
        if bad:
            raise PdError(f"array names must be symbols, got {bad[0]!r}")
        if not names:
            return {}
        request = self.session_obj.msg("array_request", {"op": op, "names": names}, parent=self.msg_id)
        self.outbox(request)
        deadline = time.monotonic() + ARRAY_REPLY_TIMEOUT_S
        while True:
            if self.cancel_event.is_set():
                raise Cancelled(f"{self.selector} cancelled")
            try:
                reply = self.replies.get(timeout=0.05)
            except queue.Empty:
                if time.monotonic() > deadline:
                    raise PdError(f"Pd did not answer about arrays {' '.join(names)}") from None
                continue
            if reply.parent_id != request.msg_id:
                continue
            missing = reply.content.get("missing", [])
            if missing:
                raise PdError(
                    f"array {' '.join(missing)} not found: create it with [array define {missing[0]}] or a table")
            if reply.content.get("error"):
                raise PdError(reply.content["error"])
            if op == "check":
                return {}
            metas = reply.content.get("arrays", [])
            return {m["name"]: np.array(wire.buffer_to_array(m, buf)) for m, buf in zip(metas, reply.buffers)}


class Worker:
    """A model worker: register handlers with :meth:`message`, then call :meth:`run`."""

    def __init__(self, model: str, cuda_available: Optional[Callable[[], bool]] = None) -> None:
        self.model = model
        self.cuda_available = cuda_available
        self.specs: dict[str, MessageSpec] = {}
        self.states: dict[str, dict[str, Any]] = {}
        self.device = "cpu"
        self.message("unload", help="unload: forget what this object loaded")(self._unload)
        self.message("describe", help="describe: list this model's messages")(self._describe)

    def message(self, name: str, help: str = "", timeout: Optional[float] = DEFAULT_TIMEOUT_S
                ) -> Callable[[Handler], Handler]:
        """Register a handler for the Pd message ``name``. ``timeout`` in seconds, None for none."""
        def register(fn: Handler) -> Handler:
            self.specs[name] = MessageSpec(name, fn, help or (fn.__doc__ or "").strip().split("\n")[0], timeout)
            return fn
        return register

    # -- built-in messages ---------------------------------------------------------------------
    def _unload(self, req: Request) -> None:
        req.state.clear()
        req.reply("unloaded")

    def _describe(self, req: Request) -> None:
        req.reply("messages", *sorted(self.specs))

    # -- running -------------------------------------------------------------------------------
    def run(self, argv: Optional[list[str]] = None) -> None:
        """Parse the command line, connect to the hub and serve until told to stop."""
        args = parse_worker_args(self.model, argv)
        logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                            format="%(levelname)s %(message)s")
        try:
            self.device = choose_device(args.device, self.cuda_available)
        except (RuntimeError, ValueError) as exc:
            log.error("%s", exc)
            sys.exit(2)
        key = args.key.encode("ascii") if args.key else wire.key_from_environment()
        if args.key_file:
            key = _read_key_file(args.key_file)
        if not key:
            log.error("no signing key: pass --key, --key-file or set %s", wire.KEY_ENV)
            sys.exit(2)
        self.serve(args.connect, key, args.id or uuid.uuid4().hex, exit_with_hub=args.exit_with_hub)

    def serve(self, url: str, key: bytes, identity: str, exit_with_hub: bool = False) -> None:
        session = Session(key, sender=f"{self.model}:{identity}")
        io = _IOThread(self, url, session, identity, exit_with_hub)
        io.start()
        log.info("connecting to %s (device %s)", url, self.device)
        while True:
            job = io.jobs.get()
            if job is None:
                break
            self._handle(job, io)
        io.join(timeout=2)

    def _handle(self, job: Job, io: "_IOThread") -> None:
        spec = self.specs.get(job.selector)
        state = self.states.setdefault(job.session, {})
        req = Request(job, state, self.device)
        started = time.perf_counter()
        try:
            if spec is None:
                raise PdError(f"unknown message '{job.selector}' for {self.model} "
                              f"(it understands: {', '.join(sorted(self.specs))})")
            spec.handler(req)
            buffers, metas = [], []
            for name, (samples, sr) in req.arrays.items():
                meta, data = wire.array_to_buffer(samples)
                metas.append({"name": name, "sr": sr, **meta})
                buffers.append(data)
            content = {"results": req.results, "arrays": metas, "elapsed_s": time.perf_counter() - started}
            io.send(io.session.msg("done", content, parent=job.msg_id, buffers=buffers))
        except Cancelled as exc:
            io.send(io.session.msg("error", {"ename": "Cancelled", "evalue": str(exc)}, parent=job.msg_id))
        except PdError as exc:
            io.send(io.session.msg("error", {"ename": "PdError", "evalue": str(exc)}, parent=job.msg_id))
        except Exception as exc:  # a model bug must not kill the worker: report it and go on
            tb = traceback.format_exc()
            log.error("%s failed:\n%s", job.selector, tb)
            io.send(io.session.msg("error", {"ename": type(exc).__name__, "evalue": str(exc) or type(exc).__name__,
                                             "traceback": tb}, parent=job.msg_id))
        finally:
            io.forget(job)

    def hello_content(self) -> dict[str, Any]:
        return {"model": self.model, "pid": os.getpid(), "host": socket.gethostname(),
                "device": self.device, "python": sys.version.split()[0],
                "messages": {n: {"help": s.help, "timeout": s.timeout} for n, s in self.specs.items()}}


class _IOThread(threading.Thread):
    """Owns the DEALER socket; everything that crosses the wire goes through here."""

    def __init__(self, worker: Worker, url: str, session: Session, identity: str, exit_with_hub: bool) -> None:
        super().__init__(name="pdbridge-io", daemon=True)
        self.worker = worker
        self.session = session
        self.jobs: "queue.Queue[Optional[Job]]" = queue.Queue()
        self.ctx = zmq.Context.instance()
        self.sock = self.ctx.socket(zmq.DEALER)
        self.sock.setsockopt(zmq.IDENTITY, identity.encode())
        self.sock.setsockopt(zmq.LINGER, 1000)
        self.sock.connect(url)
        self.pipe_addr = f"inproc://pdbridge-out-{id(self)}"
        self.pipe_in = self.ctx.socket(zmq.PULL)
        self.pipe_in.bind(self.pipe_addr)
        self._local = threading.local()
        self.exit_with_hub = exit_with_hub
        self.active: dict[str, Job] = {}
        self.lock = threading.Lock()

    def send(self, msg: Message) -> None:
        """Queue a message from any thread (each thread gets its own inproc PUSH socket)."""
        push = getattr(self._local, "push", None)
        if push is None:
            push = self._local.push = self.ctx.socket(zmq.PUSH)
            push.connect(self.pipe_addr)
        push.send_multipart(self.session.serialize(msg), copy=False)

    def forget(self, job: Job) -> None:
        with self.lock:
            self.active.pop(job.msg_id, None)

    def run(self) -> None:
        poller = zmq.Poller()
        poller.register(self.sock, zmq.POLLIN)
        poller.register(self.pipe_in, zmq.POLLIN)
        self.sock.send_multipart(self.session.serialize(self.session.msg("hello", self.worker.hello_content())))
        last_beat = last_heard = time.monotonic()
        while True:
            events = dict(poller.poll(timeout=int(HEARTBEAT_INTERVAL_S * 1000)))
            if self.pipe_in in events:
                while True:
                    try:
                        self.sock.send_multipart(self.pipe_in.recv_multipart(zmq.NOBLOCK, copy=False), copy=False)
                    except zmq.Again:
                        break
            if self.sock in events:
                while True:
                    try:
                        frames = self.sock.recv_multipart(zmq.NOBLOCK, copy=False)
                    except zmq.Again:
                        break
                    try:
                        _, msg = self.session.deserialize(frames)
                    except wire.InvalidMessage as exc:
                        log.warning("dropped a message that failed verification: %s", exc)
                        continue
                    last_heard = time.monotonic()
                    if self._dispatch(msg) == "stop":
                        self.jobs.put(None)
                        return
            now = time.monotonic()
            if now - last_beat >= HEARTBEAT_INTERVAL_S:
                self.sock.send_multipart(self.session.serialize(self.session.msg("heartbeat")))
                last_beat = now
            if self.exit_with_hub and now - last_heard > HUB_SILENCE_S:
                log.error("the hub has been silent for %.0f s: exiting", HUB_SILENCE_S)
                os._exit(3)

    def _dispatch(self, msg: Message) -> Optional[str]:
        kind = msg.msg_type
        if kind == "request":
            c = msg.content
            job = Job(msg.msg_id, str(c["selector"]), list(c.get("atoms", [])), str(c.get("session", "")),
                      str(c.get("canvas_dir", "")), self.send, self.session)
            with self.lock:
                self.active[job.msg_id] = job
            self.jobs.put(job)
        elif kind == "cancel":
            with self.lock:
                job = self.active.get(msg.parent_id or "")
            if job:
                job.cancel_event.set()
        elif kind == "array_reply":
            with self.lock:
                jobs = list(self.active.values())
            for job in jobs:
                job.replies.put(msg)  # the job matches the parent id; others ignore it
        elif kind == "session_closed":
            self.worker.states.pop(str(msg.content.get("session")), None)
        elif kind == "shutdown":
            return "stop"
        elif kind == "ping":
            pass
        else:
            log.warning("ignored unknown message type %r", kind)
        return None


def parse_worker_args(model: str, argv: Optional[list[str]]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog=f"{model} worker", description=f"pdbridge {model} worker")
    parser.add_argument("--connect", default=os.environ.get("PDBRIDGE_CONNECT", ""),
                        help="the hub's worker address, e.g. tcp://127.0.0.1:5555")
    parser.add_argument("--key", default="", help=f"signing key (hex); default ${wire.KEY_ENV}")
    parser.add_argument("--key-file", default="", help="read the key from a hub connection file")
    parser.add_argument("--device", default="auto", help="auto | cpu | cuda")
    parser.add_argument("--id", default=os.environ.get("PDBRIDGE_WORKER_ID", ""), help=argparse.SUPPRESS)
    parser.add_argument("--exit-with-hub", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if not args.connect:
        parser.error("--connect tcp://HOST:PORT is required (pdbridge serve prints it)")
    return args


def _read_key_file(path: str) -> bytes:
    import json

    with open(path, encoding="utf-8") as f:
        return json.load(f)["key"].encode("ascii")
