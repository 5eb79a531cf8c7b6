"""Signed multipart messages between the hub and its workers (docs/protocol.md, section 2).

Frames, after any ZeroMQ routing identities::

    b"<PDB|MSG>"  signature  header  content  buffer0  buffer1 ...

``header`` and ``content`` are UTF-8 JSON. ``signature`` is the hex HMAC-SHA256, under a key made
fresh for each hub run, of header, content and every buffer in order, so no frame can be changed or
forged without the key. As in jupyter_client's ``session.py`` a :class:`Session` also refuses a
message it has already seen (a bounded history of signatures) and one whose ``date`` lies outside
a window around now, so a message captured on the network cannot be replayed later; the header
names the ``sender`` and the recipient (``to``), so a captured message cannot be passed off as
another worker's or delivered to another worker. This module is the only place that knows frames:
everything else sends and receives :class:`Message` objects.
"""
from __future__ import annotations

import collections
import hashlib
import hmac
import json
import os
import secrets
import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import Any, Optional, Sequence, Union

import numpy as np

PROTOCOL_VERSION = "2.0"
DELIMITER = b"<PDB|MSG>"
KEY_ENV = "PDBRIDGE_KEY"
REPLAY_WINDOW_S = 300.0
"""How far a message's date may lie from the receiver's clock (machines of a lab agree to seconds)."""
MAX_HISTORY = 1_000_000
"""Signatures remembered at most; a hub and its workers exchange far fewer within the window."""

Buffer = Union[bytes, memoryview, np.ndarray]


class InvalidMessage(ValueError):
    """Frames that are not a pdbridge message, fail verification, or were seen before."""


def new_key() -> bytes:
    """A fresh 256-bit signing key, as hex text (so it can travel in a file or an environment variable)."""
    return secrets.token_hex(32).encode("ascii")


def key_from_environment() -> Optional[bytes]:
    value = os.environ.get(KEY_ENV)
    return value.encode("ascii") if value else None


@dataclass
class Message:
    """One protocol message. ``parent_id`` links a reply, progress or error to its request;
    ``session`` names the Pd object a message is about (events are routed by it)."""

    msg_type: str
    content: dict[str, Any]
    msg_id: str = field(default_factory=lambda: uuid.uuid4().hex)
    parent_id: Optional[str] = None
    sender: str = ""
    to: str = ""
    session: str = ""
    date: float = 0.0
    version: str = PROTOCOL_VERSION
    buffers: list[Buffer] = field(default_factory=list)

    def header(self) -> dict[str, Any]:
        return {"msg_id": self.msg_id, "msg_type": self.msg_type, "version": self.version,
                "parent_id": self.parent_id, "sender": self.sender, "to": self.to,
                "session": self.session, "date": self.date}


class Session:
    """Signs, serialises and verifies messages for one endpoint (the hub or one worker).

    Thread-safe: a worker's main thread and heartbeat thread share one.
    """

    def __init__(self, key: bytes, sender: str, window_s: float = REPLAY_WINDOW_S) -> None:
        if not key:
            raise ValueError("an empty signing key would make every message trusted")
        self.key = key
        self.sender = sender
        self.window_s = window_s
        self._seen: "collections.OrderedDict[bytes, float]" = collections.OrderedDict()
        self._lock = threading.Lock()

    def msg(self, msg_type: str, content: Optional[dict[str, Any]] = None,
            parent: Union["Message", str, None] = None, buffers: Sequence[Buffer] = (), to: str = "",
            session: str = "") -> Message:
        parent_id = parent.msg_id if isinstance(parent, Message) else parent
        return Message(msg_type, content or {}, parent_id=parent_id, sender=self.sender, to=to,
                       session=session, buffers=list(buffers))

    def sign(self, parts: Sequence[Buffer]) -> bytes:
        mac = hmac.new(self.key, digestmod=hashlib.sha256)
        for part in parts:
            mac.update(part)
        return mac.hexdigest().encode("ascii")

    def serialize(self, msg: Message) -> list[Buffer]:
        """The frames of ``msg``, dated now (a message is serialised once, just before sending)."""
        msg.date = time.time()
        header = json.dumps(msg.header()).encode("utf-8")
        content = json.dumps(msg.content).encode("utf-8")
        buffers = [_as_buffer(b) for b in msg.buffers]
        return [DELIMITER, self.sign([header, content, *buffers]), header, content, *buffers]

    def deserialize(self, frames: Sequence[Any]) -> tuple[list[bytes], Message]:
        """Split routing identities from the message; verify signature, freshness and version.

        ``frames`` may be bytes or zmq.Frame objects (buffers then stay zero-copy).
        """
        raw = [f.buffer if hasattr(f, "buffer") else memoryview(f) for f in frames]
        try:
            idx = next(i for i, f in enumerate(raw) if len(f) == len(DELIMITER) and bytes(f) == DELIMITER)
        except StopIteration:
            raise InvalidMessage("no pdbridge delimiter frame") from None
        identities = [bytes(f) for f in raw[:idx]]
        parts = raw[idx + 1:]
        if len(parts) < 3:
            raise InvalidMessage("too few frames")
        signature, header_b, content_b, buffers = bytes(parts[0]), parts[1], parts[2], list(parts[3:])
        if not hmac.compare_digest(signature, self.sign([header_b, content_b, *buffers])):
            raise InvalidMessage("bad signature")
        try:
            header = json.loads(bytes(header_b))
            content = json.loads(bytes(content_b))
            msg = Message(str(header["msg_type"]), content, msg_id=str(header["msg_id"]),
                          parent_id=header.get("parent_id"), sender=str(header.get("sender", "")),
                          to=str(header.get("to", "")), session=str(header.get("session", "")),
                          date=float(header.get("date", 0.0)), version=str(header.get("version", "")),
                          buffers=buffers)
        except (ValueError, KeyError, TypeError) as exc:
            raise InvalidMessage(f"malformed header or content: {exc}") from exc
        if not isinstance(content, dict):
            raise InvalidMessage("content is not a JSON object")
        if msg.version.split(".")[0] != PROTOCOL_VERSION.split(".")[0]:
            raise InvalidMessage(f"protocol version {msg.version!r}, expected {PROTOCOL_VERSION}")
        self._check_fresh(signature, msg.date)
        return identities, msg

    def _check_fresh(self, signature: bytes, date: float) -> None:
        """Refuse a replay: a signature seen before, or a date outside the window around now."""
        now = time.time()
        if abs(now - date) > self.window_s:
            raise InvalidMessage(f"dated {now - date:+.0f} s from now (outside the {self.window_s:g} s window: "
                                 "a replayed message, or clocks that disagree)")
        with self._lock:
            if signature in self._seen:
                raise InvalidMessage("replayed (this signature was seen before)")
            self._seen[signature] = now
            while self._seen:  # forget signatures once their dates could no longer pass the window
                oldest, seen_at = next(iter(self._seen.items()))
                if now - seen_at <= 2 * self.window_s and len(self._seen) <= MAX_HISTORY:
                    break
                del self._seen[oldest]


def _as_buffer(b: Buffer) -> Buffer:
    if isinstance(b, np.ndarray):
        return memoryview(np.ascontiguousarray(b, dtype="<f4")).cast("B")
    return b
