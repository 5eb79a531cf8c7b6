"""The hub <-> worker wire format: signed multipart ZeroMQ messages (see docs/protocol.md).

Frames, after any ZeroMQ routing identities::

    b"<PDB|MSG>"  signature  header  content  buffer0  buffer1 ...

``header`` and ``content`` are UTF-8 JSON. ``signature`` is the hex HMAC-SHA256, under a key made
fresh for each hub run, of header, content and every buffer in order, so no frame can be changed or
forged without the key. Buffers carry arrays as raw little-endian float32 and are sent without
copying. Like jupyter_client's ``session.py``, this module is the only place that knows frames:
everything else sends and receives :class:`Message` objects.
"""
from __future__ import annotations

import hashlib
import hmac
import json
import os
import secrets
import uuid
from dataclasses import dataclass, field
from typing import Any, Optional, Sequence, Union

import numpy as np

PROTOCOL_VERSION = "1.0"
DELIMITER = b"<PDB|MSG>"
KEY_ENV = "PDBRIDGE_KEY"

Buffer = Union[bytes, memoryview, np.ndarray]


class InvalidMessage(ValueError):
    """Frames that are not a pdbridge message or whose signature does not verify."""


def new_key() -> bytes:
    """A fresh 256-bit signing key, as hex text (so it can travel in a file or an environment variable)."""
    return secrets.token_hex(32).encode("ascii")


@dataclass
class Message:
    """One protocol message. ``parent_id`` links a reply, progress or error to its request."""

    msg_type: str
    content: dict[str, Any]
    msg_id: str = field(default_factory=lambda: uuid.uuid4().hex)
    parent_id: Optional[str] = None
    sender: str = ""
    version: str = PROTOCOL_VERSION
    buffers: list[Buffer] = field(default_factory=list)

    def header(self) -> dict[str, Any]:
        return {"msg_id": self.msg_id, "msg_type": self.msg_type, "version": self.version,
                "parent_id": self.parent_id, "sender": self.sender}


class Session:
    """Signs, serialises and verifies messages for one endpoint (the hub or one worker)."""

    def __init__(self, key: bytes, sender: str) -> None:
        if not key:
            raise ValueError("an empty signing key would make every message trusted")
        self.key = key
        self.sender = sender

    def msg(self, msg_type: str, content: Optional[dict[str, Any]] = None,
            parent: Union["Message", str, None] = None, buffers: Sequence[Buffer] = ()) -> Message:
        parent_id = parent.msg_id if isinstance(parent, Message) else parent
        return Message(msg_type, content or {}, parent_id=parent_id, sender=self.sender,
                       buffers=list(buffers))

    def sign(self, parts: Sequence[Buffer]) -> bytes:
        mac = hmac.new(self.key, digestmod=hashlib.sha256)
        for part in parts:
            mac.update(part)
        return mac.hexdigest().encode("ascii")

    def serialize(self, msg: Message) -> list[Buffer]:
        header = json.dumps(msg.header()).encode("utf-8")
        content = json.dumps(msg.content).encode("utf-8")
        buffers = [_as_buffer(b) for b in msg.buffers]
        return [DELIMITER, self.sign([header, content, *buffers]), header, content, *buffers]

    def deserialize(self, frames: Sequence[Any]) -> tuple[list[bytes], Message]:
        """Split routing identities from the message; verify the signature first.

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
            msg = Message(header["msg_type"], content, msg_id=header["msg_id"],
                          parent_id=header.get("parent_id"), sender=header.get("sender", ""),
                          version=header.get("version", ""), buffers=buffers)
        except (ValueError, KeyError, TypeError) as exc:
            raise InvalidMessage(f"malformed header or content: {exc}") from exc
        if msg.version.split(".")[0] != PROTOCOL_VERSION.split(".")[0]:
            raise InvalidMessage(f"protocol version {msg.version!r}, expected {PROTOCOL_VERSION}")
        return identities, msg


def _as_buffer(b: Buffer) -> Buffer:
    if isinstance(b, np.ndarray):
        return memoryview(np.ascontiguousarray(b, dtype="<f4")).cast("B")
    return b


def array_to_buffer(samples: np.ndarray) -> tuple[dict[str, Any], np.ndarray]:
    """Describe and prepare a (frames,) or (channels, frames) float32 array for the wire."""
    data = np.ascontiguousarray(samples, dtype="<f4")
    if data.ndim not in (1, 2):
        raise ValueError(f"arrays are 1-D (mono) or 2-D (channels, frames), got shape {data.shape}")
    return {"shape": list(data.shape), "dtype": "float32"}, data


def buffer_to_array(meta: dict[str, Any], buf: Buffer) -> np.ndarray:
    """The inverse of :func:`array_to_buffer` (a read-only view on the frame when possible)."""
    shape = tuple(int(n) for n in meta["shape"])
    if meta.get("dtype") != "float32":
        raise InvalidMessage(f"unsupported array dtype {meta.get('dtype')!r}")
    arr = np.frombuffer(buf, dtype="<f4")
    if arr.size != int(np.prod(shape)):
        raise InvalidMessage(f"array buffer has {arr.size} values, header says {shape}")
    return arr.reshape(shape)


def key_from_environment() -> Optional[bytes]:
    value = os.environ.get(KEY_ENV)
    return value.encode("ascii") if value else None


def reads_slice(spec: str) -> slice:
    """Parse a message's ``reads`` declaration: Python slice syntax over the request's atoms.

    A worker declares which arguments name arrays its handler reads (``"0:1"``: the first one,
    ``"0::3"``: every third from the first), so the hub can fetch them from Pd before the request
    starts, saving the handler a round trip. Raises ValueError for anything else.
    """
    parts = spec.split(":")
    if not 2 <= len(parts) <= 3:
        raise ValueError(f"reads must look like a slice (e.g. '0:1' or '0::3'), got {spec!r}")
    try:
        start, stop, *step = [int(p) if p.strip() else None for p in parts]
    except ValueError:
        raise ValueError(f"reads must look like a slice (e.g. '0:1' or '0::3'), got {spec!r}") from None
    if step and step[0] is not None and step[0] <= 0:
        raise ValueError(f"reads: the step must be positive, got {spec!r}")
    return slice(start, stop, step[0] if step else None)


def read_names(spec: Optional[str], atoms: Sequence[Any]) -> list[str]:
    """The distinct symbols among ``atoms`` that ``spec`` (see :func:`reads_slice`) selects."""
    if not spec:
        return []
    return list(dict.fromkeys(a for a in atoms[reads_slice(spec)] if isinstance(a, str) and a))
