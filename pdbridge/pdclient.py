"""One Pd connection: the FUDI stream of one ``[pdbridge.conn]``, from its hello to its last byte.

Each object has its own ``[netsend]``, so a connection *is* an object: what is written here reaches
exactly the object that asked. A connection says nothing until it has proved it belongs to the
hub's user (:mod:`pdbridge.ticket`), is closed the moment it misbehaves before that, and cannot hurt
other connections after it: what it has not read is bounded (:data:`MAX_UNREAD_BYTES`), and an
``_array`` question it does not answer within :data:`PD_ANSWER_TIMEOUT_S` closes it.

Array operations are small conversations: the hub writes ``_array <name> <token> <op> [<n>]``,
``[pdbridge.conn]`` checks that the array exists, runs ``[soundfiler]`` on file ``<n>.wav`` of its
ticket's folder (``write`` for an input, ``read`` for an output, nothing for ``check``) and answers
``_array <token> <count>``: -1 when the array does not exist.
"""
from __future__ import annotations

import asyncio
import itertools
import logging
import uuid
from typing import TYPE_CHECKING, Optional, Protocol, Sequence

from . import fudi
from .fudi import Atom

if TYPE_CHECKING:  # pragma: no cover
    from .ordering import PdGroup

log = logging.getLogger("pdbridge.hub")

PD_ANSWER_TIMEOUT_S = 5.0
"""Pd answers an array question within a tick or two; one that is silent this long is stuck."""
MAX_UNREAD_BYTES = 16 * 2**20
"""Replies a connection may leave unread before the hub gives up on it (a client that never reads)."""
MAX_RESULT_BYTES = 2 * 2**20
"""Longest result list: it travels in parts of at most 4095 bytes and Pd joins them."""
PRE_AUTH_BYTES = 4096
"""What an unauthenticated connection may send before its hello is complete."""


class PdGone(ConnectionError):
    """The Pd connection closed (or stopped answering) while the hub was waiting for it."""


class ConnectionHost(Protocol):
    """What a connection needs from the hub (implemented by :class:`pdbridge.hub.Hub`)."""

    def on_hello(self, conn: "PdConnection", atoms: list[Atom]) -> Optional[list[Atom]]: ...
    def on_switch(self, conn: "PdConnection", pd_id: int) -> None: ...
    def on_ready(self, conn: "PdConnection") -> None: ...
    def on_request(self, conn: "PdConnection", seq: int, queued: int, message: list[Atom]) -> None: ...
    def on_cancel(self, conn: "PdConnection") -> None: ...
    def on_closed(self, conn: "PdConnection") -> None: ...


class PdConnection(asyncio.Protocol):
    """The hub's end of one ``[pdbridge.conn]``."""

    def __init__(self, host: ConnectionHost, conn_id: int) -> None:
        self.host = host
        self.id = conn_id
        self.session = uuid.uuid4().hex
        self.model: Optional[str] = None
        self.canvas_dir = ""
        self.group: Optional["PdGroup"] = None
        self.state = "hello"  # -> welcomed -> ready -> closed
        self.transport: Optional[asyncio.Transport] = None
        self._decoder = fudi.Decoder(max_bytes=PRE_AUTH_BYTES)
        self._tokens = itertools.count(1)
        self._answers: dict[int, asyncio.Future[float]] = {}
        self.last_written: Optional[asyncio.Future[None]] = None
        """Resolved when the newest request of this object so far has written its outcome."""

    def __repr__(self) -> str:
        return f"<Pd connection {self.id} {self.model or '?'}>"

    @property
    def closed(self) -> bool:
        return self.state == "closed"

    # -- asyncio.Protocol ----------------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        try:
            for atoms in self._decoder.feed(data):
                if self.closed:
                    return
                self._dispatch(atoms)
        except fudi.FudiError as exc:
            if self.state != "ready":
                self.close(f"unreadable data before its hello ({exc})")
                return
            self.error(f"bad message from Pd: {exc}")
            self.data_received(b"")  # go on with what followed the bad message

    def eof_received(self) -> Optional[bool]:
        self.close()
        return False

    def connection_lost(self, exc: Optional[Exception]) -> None:
        self.close()

    def _dispatch(self, atoms: list[Atom]) -> None:
        head = atoms[0]
        if self.state == "hello":
            welcome = self.host.on_hello(self, atoms) if head == "hello" else None
            if welcome is None:
                self.close("no valid hello")
                return
            self.state = "welcomed"
            self._decoder.max_bytes = 1 << 16
            self.send(*welcome)
        elif head == "_array":
            self._answer(atoms)
        elif head == "_pd" and len(atoms) == 2 and isinstance(atoms[1], float):
            self.host.on_switch(self, int(atoms[1]))
        elif self.state == "welcomed":
            if head != "_ready":
                self.close(f"{head} before _ready")
                return
            self.canvas_dir = str(atoms[1]) if len(atoms) > 1 else ""
            self.state = "ready"
            self.host.on_ready(self)
        elif head == "_req" and len(atoms) >= 4 and isinstance(atoms[1], float) and isinstance(atoms[2], float):
            self.host.on_request(self, int(atoms[1]), int(atoms[2]), atoms[3:])
        elif head == "_cancel":
            self.host.on_cancel(self)
        else:
            log.warning("%r: unexpected message %r", self, atoms[:4])

    # -- writing -------------------------------------------------------------------------------
    def write_lines(self, lines: Sequence[Sequence[Atom]]) -> None:
        """Write several messages in one go (Pd then handles them in the same tick)."""
        if self.closed or self.transport is None:
            return
        data = b"".join(_encode_or_error(line) for line in lines)
        self.transport.write(data)
        if self.transport.get_write_buffer_size() > MAX_UNREAD_BYTES:
            self.close(f"it left {MAX_UNREAD_BYTES // 2**20} MiB of replies unread")

    def send(self, *atoms: Atom) -> None:
        self.write_lines([atoms])

    def error(self, text: str) -> None:
        """An error line, outside any request (a request's errors end it: see the hub)."""
        self.send(*fudi.truncate_text(["error"], text))

    def log(self, text: str) -> None:
        self.send(*fudi.truncate_text(["log"], text))

    def progress(self, fraction: float, text: str) -> None:
        self.send(*fudi.truncate_text(["progress", round(fraction, 4)], text))

    # -- array conversations -------------------------------------------------------------------
    def ask(self, name: str, op: str, number: Optional[int] = None) -> tuple[list[Atom], "asyncio.Future[float]"]:
        """An ``_array`` question and the future of Pd's answer (its count; -1: no such array). The
        caller writes the line (with others, in one go); an answer not there within
        :data:`PD_ANSWER_TIMEOUT_S` fails with PdGone and closes the connection. ValueError: a name
        too long to send."""
        token = next(self._tokens) % 999_999 + 1  # Pd answers with it, printed in 6 digits
        line: list[Atom] = ["_array", name, token, op, *([number] if number is not None else [])]
        if len(fudi.encode_atom(name).encode("utf-8")) > fudi.MAX_MESSAGE_BYTES - 64:
            raise ValueError(f"an array name of {len(name.encode())} bytes is too long for Pd")
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[float] = loop.create_future()
        if self.closed:
            fut.set_exception(PdGone("Pd disconnected"))
            return line, fut
        self._answers[token] = fut
        loop.call_later(PD_ANSWER_TIMEOUT_S, self._unanswered, token, name)
        return line, fut

    async def arrays(self, names: Sequence[str], op: str, numbers: Optional[Sequence[int]] = None) -> list[float]:
        """Ask about several arrays in one write; Pd's counts in the same order."""
        asked = [self.ask(name, op, numbers[i] if numbers is not None else None) for i, name in enumerate(names)]
        self.write_lines([line for line, _ in asked])
        return list(await asyncio.gather(*[fut for _, fut in asked]))

    def _unanswered(self, token: int, name: str) -> None:
        fut = self._answers.pop(token, None)
        if fut is not None and not fut.done():
            fut.set_exception(PdGone(f"Pd did not answer about array {name} within {PD_ANSWER_TIMEOUT_S:g} s"))
            self.close(f"no answer about array {name} within {PD_ANSWER_TIMEOUT_S:g} s")

    def _answer(self, atoms: list[Atom]) -> None:
        if len(atoms) != 3 or not all(isinstance(a, float) for a in atoms[1:]):
            log.warning("%r: malformed array answer %r", self, atoms[:4])
            return
        fut = self._answers.pop(int(atoms[1]), None)
        if fut is not None and not fut.done():
            fut.set_result(float(atoms[2]))

    # -- closing -------------------------------------------------------------------------------
    def close(self, why: str = "") -> None:
        """Close the socket (no CLOSE-WAIT left behind) and fail whatever waits on Pd."""
        if self.closed:
            return
        if why:
            log.warning("%r closed: %s", self, why)
        self.state = "closed"
        for fut in self._answers.values():
            if not fut.done():
                fut.set_exception(PdGone("Pd disconnected"))
        self._answers.clear()
        if self.transport is not None:
            self.transport.close()
        self.host.on_closed(self)


def _encode_or_error(line: Sequence[Atom]) -> bytes:
    try:
        return fudi.encode(line)
    except fudi.MessageTooLong as exc:  # a bug in the caller; never let it corrupt Pd's buffer
        log.error("refused to send a message of %d bytes to Pd: %r", exc.size, list(line[:3]))
        return fudi.encode(["log", "pdbridge: a message too long for Pd was dropped (see the hub's log)"])


def result_lines(atoms: Sequence[Atom], head: str = "_ok") -> list[list[Atom]]:
    """A result as FUDI lines: ``<head> <atoms>``, or for a long one ``_part`` lines that Pd joins
    before the last. Raises ValueError when even that would be unreasonable for Pd."""
    whole = [head, *atoms]
    try:
        fudi.encode(whole)
        return [whole]
    except fudi.MessageTooLong as exc:
        if exc.size > MAX_RESULT_BYTES:
            raise ValueError(f"the reply is too long for Pd ({exc.size} bytes; at most {MAX_RESULT_BYTES})") from None
    lines: list[list[Atom]] = []
    chunk: list[Atom] = []
    size = 0
    budget = fudi.MAX_MESSAGE_BYTES - 16
    for atom in atoms:
        width = len(fudi.encode_atom(atom).encode("utf-8")) + 1
        if width > budget:
            raise ValueError("a single word of the reply is too long for Pd")
        if size + width > budget:
            lines.append(["_part", *chunk])
            chunk, size = [], 0
        chunk.append(atom)
        size += width
    lines.append([head, *chunk])
    return lines
