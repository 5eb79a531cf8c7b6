"""A model worker: the messages it understands, and the process that serves them.

A model's ``worker.py`` creates one :class:`Worker`, registers its handlers with
:meth:`Worker.message` and calls :meth:`Worker.run`. Everything else — the connection to the hub
(:mod:`.channel`), the loop (:mod:`.loop`), what a handler gets (:mod:`.request`), the cache
(:mod:`.cache`), jobs (:mod:`.jobs`) — is shared by every worker.
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import socket
import sys
import uuid
from pathlib import Path
from typing import Any, Callable, Optional

from pdwire.arrays import ArrayFolder
from pdwire.messages import KEY_ENV, Session, key_from_environment
from pdwire.specs import DEFAULT_TIMEOUT_S

from . import lifetime
from .cache import Cache
from .channel import Channel, CurveKeys, Heartbeat
from .device import choose_device
from .errors import PdError
from .loop import serve
from .registry import Handler, Registry
from .request import Request

log = logging.getLogger("pdbridge.worker")


class Worker:
    """A model worker: register handlers with :meth:`message`, then call :meth:`run`.

    ``user_errors``: exception types the model code raises for bad input (a checkpoint that is not
    one, a value out of range); their text goes to Pd as is, like :class:`PdError`.
    ``load_hint``: what to send first, for the "no model loaded" error of :meth:`Request.loaded`.
    """

    def __init__(self, model: str, cuda_available: Optional[Callable[[], bool]] = None,
                 user_errors: tuple[type[BaseException], ...] = (), load_hint: str = "load") -> None:
        self.model = model
        self.cuda_available = cuda_available
        self.user_errors = user_errors
        self.load_hint = load_hint
        self.registry = Registry()
        self.states: dict[str, dict[str, Any]] = {}
        """Per Pd object (its session): what it loaded and set."""
        self.device = "cpu"
        self.cache = Cache()
        """Models per path and features per input content, bounded (see :mod:`.cache`)."""
        self.files: Optional[ArrayFolder] = None
        """The hub's array folder, when this worker shares the hub's machine (see :meth:`serve`)."""
        self.channel: Optional[Channel] = None
        self.message("unload", help="forget what this object loaded (frees the model's memory)", timeout=10)(
            self._unload)
        self.message("describe [message]", help="list this model's messages, or one message's usage",
                     timeout=10)(self._describe)

    def message(self, signature: str, help: str = "", timeout: Optional[float] = DEFAULT_TIMEOUT_S,
                reads: str = "", writes: str = "") -> Callable[[Handler], Handler]:
        """Register a handler; see :meth:`workers.runtime.registry.Registry.message`."""
        return self.registry.message(signature, help, timeout, reads, writes)

    # -- built-in messages ---------------------------------------------------------------------
    def _unload(self, req: Request) -> None:
        req.state.clear()
        req.reply("unloaded")

    def _describe(self, req: Request) -> None:
        if not req.args:
            req.reply("messages", *sorted(self.registry.specs))
            return
        spec = self.registry.specs.get(str(req.args[0]))
        if spec is None:
            raise PdError(self.registry.unknown(str(req.args[0]), self.model))
        req.reply("usage", *spec.signature.split())
        if spec.help:
            req.reply("help", *spec.help.split())

    # -- events outside requests ---------------------------------------------------------------
    def emit(self, session: str, selector: str, *atoms: Any, outlet: int = 0) -> None:
        """Send a line to one Pd object (by its session) at any time, from any thread."""
        if self.channel is None:
            raise RuntimeError("the worker is not connected")
        self.channel.post(self.channel.session.msg("event", {"outlet": outlet, "atoms": [selector, *atoms]},
                                                   session=session))

    # -- running -------------------------------------------------------------------------------
    def run(self, argv: Optional[list[str]] = None) -> None:
        """Parse the command line, connect to the hub and serve until told to stop."""
        args = parse_worker_args(self.model, argv)
        logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(levelname)s %(message)s")
        if args.parent_pid:
            lifetime.die_with_parent(args.parent_pid)
        try:
            self.device = choose_device(args.device, self.cuda_available)
        except (RuntimeError, ValueError) as exc:
            log.error("%s", exc)
            sys.exit(2)
        connection = read_connection_file(args.connection_file) if args.connection_file else {}
        key = (connection.get("key", "").encode("ascii") or (args.key.encode("ascii") if args.key else None)
               or key_from_environment())
        if not key:
            log.error("no signing key: pass --connection-file, --key or set %s", KEY_ENV)
            sys.exit(2)
        url = args.connect or hub_address(connection)
        if not url:
            log.error("no hub address: pass --connect or --connection-file")
            sys.exit(2)
        curve = CurveKeys(*(connection["curve"][k].encode("ascii") for k in ("server_public", "client_public",
                                                                             "client_secret"))
                          ) if connection.get("curve") else None
        arrays = args.arrays or connection.get("arrays", "")
        self.serve(url, key, args.id or f"{self.model}-{uuid.uuid4().hex[:8]}", arrays=Path(arrays) if arrays else None,
                   curve=curve)

    def serve(self, url: str, key: bytes, identity: str, arrays: Optional[Path] = None,
              curve: Optional[CurveKeys] = None) -> None:
        """Serve requests until the hub says shutdown.

        ``arrays``: the hub's array folder; when this process can write there (the hub's machine),
        arrays travel as files in it rather than through the socket, and the hello says so.
        """
        if arrays is not None and arrays.is_dir() and os.access(arrays, os.W_OK):
            self.files = ArrayFolder(arrays, prefix=f"w{identity}-")
        session = Session(key, sender=f"{self.model}:{identity}")
        self.channel = Channel(url, session, identity, curve)
        Heartbeat(url, session, identity, curve).start()
        log.info("connecting to %s (device %s)", url, self.device)
        self.channel.send(session.msg("hello", self.hello_content()))
        try:
            serve(self, self.channel)
        finally:
            self.channel.close()

    def hello_content(self) -> dict[str, Any]:
        return {"model": self.model, "pid": os.getpid(), "host": socket.gethostname(),
                "device": self.device, "python": sys.version.split()[0],
                **({"arrays": str(self.files.root)} if self.files is not None else {}),
                "messages": {n: s.describe() for n, s in self.registry.specs.items()}}


def parse_worker_args(model: str, argv: Optional[list[str]]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog=f"{model} worker", description=f"pdbridge {model} worker")
    parser.add_argument("--connect", default=os.environ.get("PDBRIDGE_CONNECT", ""),
                        help="the hub's worker address, e.g. tcp://studio-pc:5555 (default: from the connection file)")
    parser.add_argument("--connection-file", "--key-file", default="",
                        help="the hub's connection file: key, addresses, array folder, CURVE keys")
    parser.add_argument("--key", default="", help=f"signing key (hex); default ${KEY_ENV}")
    parser.add_argument("--arrays", default="", help="the hub's array folder, when this worker runs on the hub's machine")
    parser.add_argument("--device", default="auto", help="auto | cpu | cuda")
    parser.add_argument("--id", default=os.environ.get("PDBRIDGE_WORKER_ID", ""), help=argparse.SUPPRESS)
    parser.add_argument("--parent-pid", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if not args.connect and not args.connection_file:
        parser.error("give --connection-file FILE (pdbridge serve prints where it is) or --connect tcp://HOST:PORT")
    return args


def hub_address(connection: dict[str, Any]) -> str:
    """The hub's Unix socket when it is on this machine (its path exists here), else its TCP address."""
    local = str(connection.get("local_worker_url", ""))
    if local.startswith("ipc://") and Path(local[len("ipc://"):]).exists():
        return local
    return str(connection.get("worker_url", ""))


def read_connection_file(path: str) -> dict[str, Any]:
    with open(path, encoding="utf-8") as f:
        data = json.load(f)
    return data if isinstance(data, dict) else {}
