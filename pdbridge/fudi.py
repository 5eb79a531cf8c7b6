"""FUDI, Pd's text message format, as spoken by ``[netsend]`` over TCP.

A message is atoms separated by whitespace and ended by ``;``. Inside a symbol, space, ``;``,
``,``, ``\\`` and ``$`` are escaped with a backslash. Pd reads numbers with ``atof`` into float32,
so floats are written with ``%.9g`` (enough digits to round-trip every normal float32). Pd reads a
symbol that looks like a number (``2024``) as a number even when escaped, so workers accept a
number wherever they expect a name (see ``workers.runtime.args.symbol``).

Pd's TCP receive buffer holds 4096 bytes and silently corrupts anything longer, so
:func:`encode` refuses a message of more than :data:`MAX_MESSAGE_BYTES` instead of sending it.
"""
from __future__ import annotations

import math
from typing import Iterable, Iterator, Union

Atom = Union[str, float]

MAX_MESSAGE_BYTES = 4095
"""Longest message Pd receives intact over TCP, counting the ``;`` and the newline after it."""

_ESCAPED = {" ", "\t", "\n", "\r", ";", ",", "\\", "$"}


class MessageTooLong(ValueError):
    """An encoded message would exceed :data:`MAX_MESSAGE_BYTES`."""

    def __init__(self, size: int) -> None:
        super().__init__(f"message of {size} bytes exceeds Pd's limit of {MAX_MESSAGE_BYTES} bytes")
        self.size = size


class FudiError(ValueError):
    """Input that is not valid FUDI (bad bytes, a message that never ends)."""


def format_float(x: float) -> str:
    """``%.9g``: every normal float32 survives Pd's atof -> float32 round trip."""
    if not math.isfinite(x):
        raise ValueError(f"Pd cannot receive {x!r} as a number")
    text = "%.9g" % x
    return "0" if text == "-0" and x == 0 else text


def escape_symbol(sym: str) -> str:
    """Backslash-escape FUDI's special characters."""
    if sym == "":
        raise ValueError("Pd has no empty symbol")
    return "".join("\\" + c if c in _ESCAPED else c for c in sym)


def encode_atom(atom: Atom) -> str:
    if isinstance(atom, bool):
        return "1" if atom else "0"
    if isinstance(atom, (int, float)):
        return format_float(float(atom))
    return escape_symbol(str(atom))


def encode(atoms: Iterable[Atom]) -> bytes:
    """One FUDI message, ``;`` and newline included; raises :class:`MessageTooLong`."""
    data = (" ".join(encode_atom(a) for a in atoms) + ";\n").encode("utf-8")
    if len(data) > MAX_MESSAGE_BYTES:
        raise MessageTooLong(len(data))
    return data


def truncate_text(prefix: list[Atom], text: str, limit: int = MAX_MESSAGE_BYTES) -> list[Atom]:
    """``prefix`` followed by the words of ``text``, cut (with an ellipsis) to fit ``limit`` bytes."""
    words = [w for w in text.split() if w]
    atoms: list[Atom] = list(prefix) + words
    while atoms and len(_raw(atoms)) > limit:
        words = words[:-1]
        atoms = list(prefix) + words + ["..."]
        if not words:
            break
    return atoms


def _raw(atoms: list[Atom]) -> bytes:
    return (" ".join(encode_atom(a) for a in atoms) + ";\n").encode("utf-8")


class Decoder:
    """Incremental FUDI parser for a byte stream; :meth:`feed` yields complete messages.

    An unescaped ``,`` also ends a message, as it does in Pd. A message still unfinished after
    ``max_bytes`` raises :class:`FudiError` and the parser skips to the next ``;``.
    """

    def __init__(self, max_bytes: int = 1 << 16) -> None:
        self.max_bytes = max_bytes
        self._buf = bytearray()
        self._skipping = False

    def feed(self, data: bytes) -> Iterator[list[Atom]]:
        self._buf += data
        while True:
            end = _find_terminator(self._buf)
            if end < 0:
                if len(self._buf) > self.max_bytes:
                    size = len(self._buf)
                    self._buf.clear()
                    self._skipping = True
                    raise FudiError(f"message longer than {self.max_bytes} bytes (got {size} bytes without ';')")
                return
            raw, self._buf = bytes(self._buf[:end]), self._buf[end + 1:]
            if self._skipping:  # tail of an oversize message
                self._skipping = False
                continue
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise FudiError(f"message is not UTF-8 text: {exc}") from exc
            atoms = parse_atoms(text)
            if atoms:
                yield atoms


def _find_terminator(buf: bytearray) -> int:
    """Index of the first unescaped ``;`` or ``,`` (-1 if none)."""
    escaped = False
    for i, c in enumerate(buf):
        if escaped:
            escaped = False
        elif c == 0x5C:  # backslash
            escaped = True
        elif c in (0x3B, 0x2C):  # ; ,
            return i
    return -1


def parse_atoms(text: str) -> list[Atom]:
    """Atoms of one message body (without its ``;``): floats for numbers, str for symbols."""
    atoms: list[Atom] = []
    token: list[str] = []
    had_escape = False
    in_token = False
    chars = iter(text)
    for c in chars:
        if c == "\\":
            nxt = next(chars, "")
            token.append(nxt)
            had_escape = in_token = True
        elif c.isspace():
            if in_token:
                atoms.append(_atom("".join(token), had_escape))
            token, had_escape, in_token = [], False, False
        else:
            token.append(c)
            in_token = True
    if in_token:
        atoms.append(_atom("".join(token), had_escape))
    return atoms


def _atom(token: str, had_escape: bool) -> Atom:
    if not had_escape:
        try:
            value = float(token)
        except ValueError:
            return token
        # Pd's own reader keeps these as symbols: nan, inf, +1, 0x10.
        if math.isfinite(value) and not token.startswith("+") and not token.lower().lstrip("-").startswith(("nan", "inf", "0x")):
            return value
    return token
