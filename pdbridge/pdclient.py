"""One Pd connection: the FUDI stream of one abstraction instance and the array operations on it.

Each ``[pdbridge.conn]`` has its own ``[netsend]``, so a connection *is* an abstraction instance:
replies written here reach exactly the object that asked. Array operations are small FUDI
conversations: the hub sends ``_array NAME TOKEN [soundfiler message]``; the abstraction checks that
array NAME exists, runs the soundfiler message if there is one, and answers ``_array TOKEN N``
(N = -1 when the array does not exist, else soundfiler's sample count, or 0 for a bare check).
"""
from __future__ import annotations

import asyncio
import itertools
import logging
import uuid
from pathlib import Path
from typing import Awaitable, Optional

from . import fudi
from .fudi import Atom

log = logging.getLogger("pdbridge.hub")

PD_ANSWER_TIMEOUT_S = 30.0


class PdGone(ConnectionError):
    """The Pd connection closed while the hub was waiting for it."""


class PdClient:
    def __init__(self, client_id: int, writer: asyncio.StreamWriter) -> None:
        self.id = client_id
        self.session = uuid.uuid4().hex
        self.writer = writer
        self.model: Optional[str] = None
        self.canvas_dir = ""
        self.closed = False
        self._tokens = itertools.count(1)
        self._pending: dict[int, asyncio.Future[float]] = {}

    def __repr__(self) -> str:
        return f"<Pd client {self.id} {self.model or '?'}>"

    # -- writing ---------------------------------------------------------------------------------
    def send(self, *atoms: Atom) -> None:
        """Write one message; raises fudi.MessageTooLong rather than corrupt Pd's buffer."""
        if self.closed:
            return
        self.writer.write(fudi.encode(atoms))

    def result(self, atoms: list[Atom], gated: bool = False) -> None:
        """A result line for the left outlet; ``gated``: only if this request's arrays all landed."""
        try:
            self.send("_ok" if gated else "result", *atoms)
        except fudi.MessageTooLong as exc:
            self.error(f"{atoms[0]}: the reply is too long for Pd ({exc.size} bytes; Pd reads at most "
                       f"{fudi.MAX_MESSAGE_BYTES}). Ask for less, or for an array")

    def error(self, text: str) -> None:
        self.send(*fudi.truncate_text(["error"], text))

    def log(self, text: str) -> None:
        self.send(*fudi.truncate_text(["log"], text))

    def progress(self, fraction: float) -> None:
        self.send("progress", round(fraction, 4))

    # -- array conversations ---------------------------------------------------------------------
    def _array(self, name: str, *soundfiler: Atom) -> Awaitable[float]:
        """Send ``_array`` now (so callers control the order of messages); await Pd's count."""
        token = next(self._tokens)
        fut: asyncio.Future[float] = asyncio.get_running_loop().create_future()
        self._pending[token] = fut
        self.send("_array", name, token, *soundfiler)
        return self._answer(token, fut, name)

    async def _answer(self, token: int, fut: "asyncio.Future[float]", name: str) -> float:
        try:
            return await asyncio.wait_for(fut, PD_ANSWER_TIMEOUT_S)
        except asyncio.TimeoutError:
            raise PdGone(f"Pd did not answer about array {name} within {PD_ANSWER_TIMEOUT_S:g} s") from None
        finally:
            self._pending.pop(token, None)

    def check(self, name: str) -> Awaitable[float]:
        """Whether array ``name`` exists: 0, or -1 when it does not."""
        return self._array(name)

    def fetch(self, name: str, path: Path) -> Awaitable[float]:
        """Have Pd write array ``name`` to ``path`` as float32; -1 when the array does not exist."""
        return self._array(name, "write", "-bytes", 4, str(path), name)

    def store(self, path: Path, name: str) -> Awaitable[float]:
        """Have Pd read ``path`` into array ``name``, resizing it; -1 when the array does not exist."""
        return self._array(name, "read", "-resize", "-maxsize", 1e9, str(path), name)

    def answer(self, atoms: list[Atom]) -> None:
        """The abstraction's ``_array TOKEN N`` answer."""
        if len(atoms) != 3 or not all(isinstance(a, float) for a in atoms[1:]):
            log.warning("%r: malformed array answer %r", self, atoms)
            return
        fut = self._pending.get(int(atoms[1]))
        if fut and not fut.done():
            fut.set_result(float(atoms[2]))

    def close(self) -> None:
        self.closed = True
        for fut in self._pending.values():
            if not fut.done():
                fut.set_exception(PdGone("Pd disconnected"))
        self._pending.clear()
