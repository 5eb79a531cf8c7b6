"""The worker process: connect to the hub, receive requests, run handlers, answer.

The main thread owns the request socket: it waits for a request, runs the handler (one at a time,
so model code never has to be thread-safe) and sends the reply itself, with no thread hand-off on
the way (a no-op request costs the worker a few microseconds). While a handler runs, messages for
it (``cancel``, array replies) are read by the handler's own calls: ``req.progress()`` looks for a
cancel, ``req.read_array()`` waits for its reply. A heartbeat thread with a socket of its own tells
the hub the process is alive even while a handler sits in a long C call, and ends a spawned worker
whose hub has gone away.
"""
from __future__ import annotations

import argparse
import logging
import os
import socket
import sys
import threading
import time
import traceback
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Optional

import numpy as np
import zmq

from pdbridge import wire
from pdbridge.exchange import ArrayExchange, read_wav
from pdbridge.wire import Message, Session

from .cache import Cache
from .device import choose_device
from .errors import Cancelled, PdError
from .request import Request

log = logging.getLogger("pdbridge.worker")

HEARTBEAT_INTERVAL_S = 0.2
"""The hub declares a remote worker dead after 1 s without a heartbeat."""
HUB_SILENCE_S = 10.0
"""A worker the hub spawned exits when the hub has not answered its heartbeats for this long."""
CANCEL_POLL_INTERVAL_S = 0.01
ARRAY_REPLY_TIMEOUT_S = 60.0
DEFAULT_TIMEOUT_S = 300.0

Handler = Callable[[Request], None]


@dataclass
class MessageSpec:
    name: str
    handler: Handler
    help: str
    timeout: Optional[float]
    reads: Optional[str] = None


@dataclass
class Job:
    """A request being handled, with its way back to the hub (through the main thread's channel)."""

    msg_id: str
    selector: str
    atoms: list
    session: str
    canvas_dir: str
    channel: "_Channel"
    pending: list[str] = field(default_factory=list)
    """Arrays named by the message's ``reads`` that the hub is fetching; they follow the request."""
    prefetched: dict[str, np.ndarray] = field(default_factory=dict)
    cancel_event: threading.Event = field(default_factory=threading.Event)
    _last_poll: float = 0.0

    def send_progress(self, fraction: float, text: str) -> None:
        self.channel.send(self.channel.session.msg("progress", {"fraction": fraction, "text": text},
                                                   parent=self.msg_id))

    def poll_cancel(self) -> None:
        """Read what the hub sent meanwhile (at most every 10 ms): a ``cancel`` sets the event."""
        now = time.monotonic()
        if now - self._last_poll >= CANCEL_POLL_INTERVAL_S:
            self._last_poll = now
            self.channel.pump(self, timeout_ms=0)

    def take_prefetched(self, msg: Message) -> None:
        """The hub's ``array_reply`` to the request itself: the declared arrays Pd has."""
        self.prefetched.update(arrays_of(msg))
        self.pending = []

    def array_request(self, op: str, names: list[str]) -> Any:
        """Ask the hub to check or read Pd arrays; blocks until the hub answers."""
        bad = [n for n in names if not isinstance(n, str) or not n]
        if bad:
            raise PdError(f"array names must be symbols, got {bad[0]!r}")
        if any(n in self.pending for n in names):
            # pump (up to 50 ms at a time) until the hub's reply to the request itself has come
            self._wait(lambda: True if not self.pending else self.channel.pump(self, timeout_ms=50), names)
        have = {n: self.prefetched[n] for n in names if n in self.prefetched}
        names = [n for n in names if n not in have]
        if not names:
            return {} if op == "check" else have
        request = self.channel.session.msg("array_request", {"op": op, "names": names}, parent=self.msg_id)
        self.channel.send(request)
        reply = self._wait(lambda: self.channel.pump(self, timeout_ms=50, want=request.msg_id), names)
        if reply.content.get("error"):  # the hub words it: a missing array, or Pd not answering
            raise PdError(reply.content["error"])
        if op == "check":
            return {}
        return {**have, **arrays_of(reply)}

    def _wait(self, ready: Callable[[], Any], names: list[str]) -> Any:
        """Call ``ready()`` (which reads the channel) until it returns something; cancel and a Pd
        that never answers end the wait."""
        deadline = time.monotonic() + ARRAY_REPLY_TIMEOUT_S
        while True:
            if self.cancel_event.is_set():
                raise Cancelled(f"{self.selector} cancelled")
            result = ready()
            if result is not None:
                return result
            if time.monotonic() > deadline:
                raise PdError(f"Pd did not answer about arrays {' '.join(names)}")


def arrays_of(msg: Message) -> dict[str, np.ndarray]:
    """The named arrays a hub message carries (writable copies: handlers may edit them in place).

    Each is either a buffer or, for a worker on the hub's machine, the file Pd wrote, read once and
    deleted here.
    """
    arrays, buffers = {}, iter(msg.buffers)
    for meta in msg.content.get("arrays", []):
        if "path" in meta:
            path = Path(meta["path"])
            arrays[meta["name"]] = read_wav(path)
            path.unlink(missing_ok=True)
        else:
            arrays[meta["name"]] = np.array(wire.buffer_to_array(meta, next(buffers)))
    return arrays


class Worker:
    """A model worker: register handlers with :meth:`message`, then call :meth:`run`."""

    def __init__(self, model: str, cuda_available: Optional[Callable[[], bool]] = None) -> None:
        self.model = model
        self.cuda_available = cuda_available
        self.specs: dict[str, MessageSpec] = {}
        self.states: dict[str, dict[str, Any]] = {}
        self.device = "cpu"
        self.cache = Cache()
        """Models per path and features per input content, bounded (see :mod:`.cache`)."""
        self.files: Optional[ArrayExchange] = None
        """The hub's array folder, when this worker shares the hub's machine (see :meth:`serve`)."""
        self.message("unload", help="unload: forget what this object loaded")(self._unload)
        self.message("describe", help="describe: list this model's messages")(self._describe)

    def message(self, name: str, help: str = "", timeout: Optional[float] = DEFAULT_TIMEOUT_S,
                reads: Optional[str] = None) -> Callable[[Handler], Handler]:
        """Register a handler for the Pd message ``name``. ``timeout`` in seconds, None for none.

        ``reads``: which arguments name arrays the handler reads, in slice syntax over the
        arguments (``"0:1"``, ``"0::3"``); the hub has Pd write them as it sends the request and
        sends them right after, so ``req.read_array`` gets them without asking. Only a hint:
        other reads still work.
        """
        if reads is not None:
            wire.reads_slice(reads)  # a typo fails when the worker module loads, not in a request

        def register(fn: Handler) -> Handler:
            self.specs[name] = MessageSpec(name, fn, help or (fn.__doc__ or "").strip().split("\n")[0], timeout,
                                           reads)
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
        logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(levelname)s %(message)s")
        try:
            self.device = choose_device(args.device, self.cuda_available)
        except (RuntimeError, ValueError) as exc:
            log.error("%s", exc)
            sys.exit(2)
        connection = _read_connection_file(args.key_file) if args.key_file else {}
        key = args.key.encode("ascii") if args.key else wire.key_from_environment()
        if connection:
            key = connection["key"].encode("ascii")
        if not key:
            log.error("no signing key: pass --key, --key-file or set %s", wire.KEY_ENV)
            sys.exit(2)
        arrays = args.arrays or connection.get("arrays", "")
        self.serve(args.connect, key, args.id or uuid.uuid4().hex, exit_with_hub=args.exit_with_hub,
                   arrays=Path(arrays) if arrays else None)

    def serve(self, url: str, key: bytes, identity: str, exit_with_hub: bool = False,
              arrays: Optional[Path] = None) -> None:
        """Serve requests until the hub says shutdown.

        ``arrays``: the hub's array folder; when this process can write there (the hub's machine),
        arrays travel as files in it rather than through the socket, and the hello says so.
        """
        if arrays is not None and arrays.is_dir() and os.access(arrays, os.W_OK):
            self.files = ArrayExchange(root=arrays, prefix=f"{identity}-")
        session = Session(key, sender=f"{self.model}:{identity}")
        channel = _Channel(self, url, session, identity)
        _Heartbeat(url, session, identity, exit_with_hub).start()
        log.info("connecting to %s (device %s)", url, self.device)
        channel.send(session.msg("hello", self.hello_content()))
        while (job := channel.next_job()) is not None:
            self._handle(job)
        channel.close()

    def _handle(self, job: Job) -> None:
        spec = self.specs.get(job.selector)
        state = self.states.setdefault(job.session, {})
        req = Request(job, state, self.device)
        session = job.channel.session
        started = time.perf_counter()
        try:
            if spec is None:
                raise PdError(f"unknown message '{job.selector}' for {self.model} "
                              f"(it understands: {', '.join(sorted(self.specs))})")
            spec.handler(req)
            buffers, metas = [], []
            for name, (samples, sr) in req.arrays.items():
                if self.files is not None:
                    metas.append({"name": name, "sr": sr, "path": str(self.files.write(name, samples, sr))})
                    continue
                meta, data = wire.array_to_buffer(samples)
                metas.append({"name": name, "sr": sr, **meta})
                buffers.append(data)
            content = {"results": req.results, "arrays": metas, "checked": sorted(req.checked),
                       "elapsed_s": time.perf_counter() - started}
            reply = session.msg("done", content, parent=job.msg_id, buffers=buffers)
        except Cancelled as exc:
            reply = session.msg("error", {"ename": "Cancelled", "evalue": str(exc)}, parent=job.msg_id)
        except PdError as exc:
            reply = session.msg("error", {"ename": "PdError", "evalue": str(exc)}, parent=job.msg_id)
        except Exception as exc:  # a model bug must not kill the worker: report it and go on
            tb = traceback.format_exc()
            log.error("%s failed:\n%s", job.selector, tb)
            reply = session.msg("error", {"ename": type(exc).__name__, "evalue": str(exc) or type(exc).__name__,
                                          "traceback": tb}, parent=job.msg_id)
        job.channel.send(reply)

    def hello_content(self) -> dict[str, Any]:
        return {"model": self.model, "pid": os.getpid(), "host": socket.gethostname(),
                "device": self.device, "python": sys.version.split()[0],
                **({"arrays": str(self.files.root)} if self.files is not None else {}),
                "messages": {n: {"help": s.help, "timeout": s.timeout, **({"reads": s.reads} if s.reads else {})}
                             for n, s in self.specs.items()}}


class _Channel:
    """The main thread's DEALER socket to the hub: requests in, everything about them out."""

    def __init__(self, worker: Worker, url: str, session: Session, identity: str) -> None:
        self.worker = worker
        self.session = session
        self.sock = zmq.Context.instance().socket(zmq.DEALER)
        self.sock.setsockopt(zmq.IDENTITY, identity.encode())
        self.sock.setsockopt(zmq.LINGER, 1000)
        self.sock.connect(url)
        self.stopping = False

    def send(self, msg: Message) -> None:
        # zero-copy only pays off for array buffers; small frames are cheaper copied
        self.sock.send_multipart(self.session.serialize(msg), copy=not msg.buffers)

    def _recv(self, timeout_ms: int) -> Optional[Message]:
        if not self.sock.poll(timeout_ms):
            return None
        frames = self.sock.recv_multipart(copy=False)
        try:
            return self.session.deserialize(frames)[1]
        except wire.InvalidMessage as exc:
            log.warning("dropped a message that failed verification: %s", exc)
            return None

    def next_job(self) -> Optional[Job]:
        """Wait for the next request; handle housekeeping messages meanwhile. None: shut down."""
        while not self.stopping:
            msg = self._recv(timeout_ms=1000)
            if msg is None:
                continue
            if msg.msg_type == "request":
                c = msg.content
                return Job(msg.msg_id, str(c["selector"]), list(c.get("atoms", [])), str(c.get("session", "")),
                           str(c.get("canvas_dir", "")), self, [str(n) for n in c.get("prefetch", [])])
            self._housekeeping(msg, None)
        return None

    def pump(self, job: Job, timeout_ms: int, want: Optional[str] = None) -> Optional[Message]:
        """While ``job`` runs: read what has arrived; return the reply whose parent is ``want``."""
        while (msg := self._recv(timeout_ms)) is not None:
            if msg.msg_type == "array_reply" and msg.parent_id == job.msg_id:
                job.take_prefetched(msg)
            elif want is not None and msg.msg_type == "array_reply" and msg.parent_id == want:
                return msg
            else:
                self._housekeeping(msg, job)
            timeout_ms = 0
        return None

    def _housekeeping(self, msg: Message, job: Optional[Job]) -> None:
        kind = msg.msg_type
        if kind == "cancel":
            if job is not None and msg.parent_id == job.msg_id:
                job.cancel_event.set()
        elif kind == "session_closed":
            self.worker.states.pop(str(msg.content.get("session")), None)
        elif kind == "shutdown":
            self.stopping = True
            if job is not None:
                job.cancel_event.set()
        elif kind == "request":  # the hub sends one at a time; a second one means a hub bug
            log.error("a request arrived while another was running; refusing it")
            self.send(self.session.msg("error", {"ename": "PdError", "evalue": "the worker was busy"},
                                       parent=msg.msg_id))
        elif kind == "array_reply":  # for a request that ended without reading it: drop its files
            for meta in msg.content.get("arrays", []):
                if "path" in meta:
                    Path(meta["path"]).unlink(missing_ok=True)
        elif kind != "ping":
            log.warning("ignored unexpected message type %r", kind)

    def close(self) -> None:
        self.sock.close()


class _Heartbeat(threading.Thread):
    """Beats on a socket of its own; the hub answers each beat, so silence means the hub is gone."""

    def __init__(self, url: str, session: Session, identity: str, exit_with_hub: bool) -> None:
        super().__init__(name="pdbridge-heartbeat", daemon=True)
        self.url, self.session, self.identity, self.exit_with_hub = url, session, identity, exit_with_hub

    def run(self) -> None:
        sock = zmq.Context.instance().socket(zmq.DEALER)
        sock.setsockopt(zmq.IDENTITY, f"{self.identity}.heartbeat".encode())
        sock.setsockopt(zmq.LINGER, 0)
        sock.connect(self.url)
        last_heard = time.monotonic()
        while True:
            sock.send_multipart(self.session.serialize(self.session.msg("heartbeat", {"worker": self.identity})))
            deadline = time.monotonic() + HEARTBEAT_INTERVAL_S
            while (left := deadline - time.monotonic()) > 0:
                if sock.poll(int(left * 1000) + 1):
                    frames = sock.recv_multipart()
                    try:
                        self.session.deserialize(frames)
                        last_heard = time.monotonic()
                    except wire.InvalidMessage:
                        pass
            if self.exit_with_hub and time.monotonic() - last_heard > HUB_SILENCE_S:
                log.error("the hub has been silent for %.0f s: exiting", HUB_SILENCE_S)
                os._exit(3)


def parse_worker_args(model: str, argv: Optional[list[str]]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog=f"{model} worker", description=f"pdbridge {model} worker")
    parser.add_argument("--connect", default=os.environ.get("PDBRIDGE_CONNECT", ""),
                        help="the hub's worker address, e.g. tcp://127.0.0.1:5555")
    parser.add_argument("--key", default="", help=f"signing key (hex); default ${wire.KEY_ENV}")
    parser.add_argument("--key-file", default="",
                        help="read the key (and the array folder) from a hub connection file")
    parser.add_argument("--arrays", default="",
                        help="the hub's array folder, when this worker runs on the hub's machine")
    parser.add_argument("--device", default="auto", help="auto | cpu | cuda")
    parser.add_argument("--id", default=os.environ.get("PDBRIDGE_WORKER_ID", ""), help=argparse.SUPPRESS)
    parser.add_argument("--exit-with-hub", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if not args.connect:
        parser.error("--connect tcp://HOST:PORT is required (pdbridge serve prints it)")
    return args


def _read_connection_file(path: str) -> dict[str, Any]:
    import json

    with open(path, encoding="utf-8") as f:
        return json.load(f)

