"""What a message handler gets: the request's arguments and the ways to answer it.

A handler reads arrays from Pd, reports progress, stages output arrays, notes and result lines,
and may send events or start a job. Outputs are only sent when the handler returns normally, so a
failed request never touches the user's arrays. Reads and writes must stay within the message's
declaration (see :mod:`pdwire.specs`): the hub orders requests by it.
"""
from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterable, Optional, Sequence, Union

import numpy as np

from pdwire.arrays import ArrayFolder, buffers_to_array, read_wav
from pdwire.messages import Message
from pdwire.specs import ArraySet

from .args import Atom, Options, symbol
from .errors import Cancelled, PdError
from .registry import MessageSpec

if TYPE_CHECKING:  # pragma: no cover
    from pdwire.jobs import JobFolder

    from .channel import Channel

PROGRESS_INTERVAL_S = 0.05
"""At most 20 progress messages a second: enough for a progress bar, cheap for Pd."""
CANCEL_POLL_INTERVAL_S = 0.01
ARRAY_REPLY_TIMEOUT_S = 60.0

Note = tuple[float, float, float, float]
"""(onset in seconds, MIDI pitch, velocity 1..127, duration in seconds)."""


@dataclass
class Conversation:
    """One request's traffic with the hub, read and written on the main thread."""

    msg_id: str
    selector: str
    atoms: list
    session: str
    canvas_dir: str
    channel: "Channel"
    files: Optional[ArrayFolder]
    reads: ArraySet
    writes: ArraySet
    pending: list[str] = field(default_factory=list)
    """Declared inputs the hub is having Pd write; they follow the request unasked."""
    prefetched: dict[str, np.ndarray] = field(default_factory=dict)
    cancel_event: threading.Event = field(default_factory=threading.Event)
    shutdown: bool = False
    _last_poll: float = 0.0

    def send(self, msg_type: str, content: dict[str, Any]) -> None:
        self.channel.send(self.channel.session.msg(msg_type, content, parent=self.msg_id, session=self.session))

    def poll(self) -> None:
        """Read what the hub sent meanwhile (at most every 10 ms): a ``cancel`` sets the event."""
        now = time.monotonic()
        if now - self._last_poll >= CANCEL_POLL_INTERVAL_S:
            self._last_poll = now
            self.pump(timeout_ms=0)

    def pump(self, timeout_ms: int, want: Optional[str] = None) -> Optional[Message]:
        """Handle what has arrived for this request; return the reply whose parent is ``want``."""
        while (msg := self.channel.recv(timeout_ms)) is not None:
            if msg.msg_type == "array_reply" and msg.parent_id == self.msg_id:
                self.prefetched.update(arrays_of(msg))
                self.pending = []
            elif want is not None and msg.msg_type == "array_reply" and msg.parent_id == want:
                return msg
            elif msg.msg_type == "cancel" and msg.parent_id == self.msg_id:
                self.cancel_event.set()
            elif msg.msg_type == "shutdown":
                self.shutdown = True
                self.cancel_event.set()
            else:
                housekeeping(msg)
            timeout_ms = 0
        return None

    def arrays(self, op: str, names: list[str]) -> dict[str, np.ndarray]:
        """Check (``op`` "check") or read Pd arrays through the hub; blocks until it answers."""
        bad = [n for n in names if not isinstance(n, str) or not n]
        if bad:
            raise PdError(f"array names must be symbols, got {bad[0]!r}")
        if any(n in self.pending for n in names):
            # the hub's reply to the request itself is on its way: wait for it (50 ms at a time)
            self._wait(lambda: True if not self.pending else self.pump(timeout_ms=50), names)
        have = {n: self.prefetched[n] for n in names if n in self.prefetched}
        names = [n for n in names if n not in have]
        if not names:
            return {} if op == "check" else have
        request = self.channel.session.msg("array_request", {"op": op, "names": names}, parent=self.msg_id,
                                           session=self.session)
        self.channel.send(request)
        reply = self._wait(lambda: self.pump(timeout_ms=50, want=request.msg_id), names)
        if reply.content.get("error"):  # the hub words it: a missing array, or Pd not answering
            raise PdError(str(reply.content["error"]))
        return {} if op == "check" else {**have, **arrays_of(reply)}

    def _wait(self, ready: Callable[[], Any], names: list[str]) -> Any:
        """Call ``ready()`` (which reads the channel) until it returns something; cancel and a hub
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

    Each is either buffers or, for a worker on the hub's machine, the file Pd wrote, read once and
    deleted here.
    """
    arrays, buffers = {}, iter(msg.buffers)
    for meta in msg.content.get("arrays", []):
        if "path" in meta:
            path = Path(meta["path"])
            arrays[meta["name"]] = read_wav(path)
            path.unlink(missing_ok=True)
        else:
            arrays[meta["name"]] = np.array(buffers_to_array(meta, buffers))
    return arrays


def housekeeping(msg: Message) -> None:
    """Messages that arrive for no request in particular and need no answer here."""
    if msg.msg_type == "array_reply":  # for a request that ended without reading it: drop its files
        for meta in msg.content.get("arrays", []):
            if "path" in meta:
                Path(meta["path"]).unlink(missing_ok=True)


class Request:
    """One Pd message being handled. Created by the runtime; handlers only use its methods."""

    def __init__(self, conversation: Conversation, spec: MessageSpec, state: dict[str, Any], device: str,
                 load_hint: str, model: str) -> None:
        self._conv = conversation
        self._spec = spec
        self._load_hint = load_hint
        self.model = model
        self.selector: str = conversation.selector
        self.args: list[Atom] = conversation.atoms
        self.session: str = conversation.session
        self.canvas_dir: str = conversation.canvas_dir
        self.state = state
        self.device = device
        self.results: list[list[Atom]] = []
        self.arrays: dict[str, tuple[np.ndarray, Optional[float]]] = {}
        self.notes: Optional[dict[str, Any]] = None
        self.checked: set[str] = set()
        """Arrays Pd confirmed exist during this request: the hub can land them without asking again."""
        self.jobs: list["JobFolder"] = []
        """Jobs whose progress the object should hear about (started, resumed or asked about here)."""
        self._last_progress = 0.0

    # -- arguments -------------------------------------------------------------------------
    def options(self, known: Optional[Iterable[str]] = None) -> Options:
        """Course-style ``--key value`` options (see :mod:`workers.runtime.args`)."""
        return Options.parse(self.args, known)

    def usage(self, problem: str = "") -> PdError:
        """The error for wrong arguments: ``usage: <the message's signature>`` (``raise req.usage()``)."""
        return PdError(f"{problem + ': ' if problem else ''}usage: {self._spec.signature}")

    def loaded(self, key: str = "model") -> Any:
        """What ``load`` stored under ``key``; a clear error when nothing is loaded yet."""
        value = self.state.get(key)
        if value is None:
            raise PdError(f"no model loaded: send {self._load_hint} first")
        return value

    def resolve_path(self, path: Union[str, float]) -> Path:
        """A path as the user meant it: ``~`` expanded, relative paths from the patch's folder."""
        p = Path(os.path.expanduser(symbol(path, "path")))
        if not p.is_absolute() and self.canvas_dir:
            p = Path(self.canvas_dir) / p
        return p

    def existing_path(self, path: Union[str, float], what: str) -> Path:
        """:meth:`resolve_path`, failing with a message that shows where pdbridge looked."""
        resolved = self.resolve_path(path)
        if not resolved.exists():
            raise PdError(f"{what} not found: {resolved}")
        return resolved

    # -- arrays ----------------------------------------------------------------------------
    def check_arrays(self, names: Iterable[str]) -> None:
        """Fail early, before any work, if an array the request will write does not exist."""
        names = list(names)
        self._conv.arrays("check", names)
        self.checked.update(names)

    def read_array(self, name: str) -> np.ndarray:
        """The contents of Pd array ``name`` as float32 (exact: Pd writes it as a float32 WAV)."""
        return self.read_arrays([name])[name]

    def read_arrays(self, names: Iterable[str]) -> dict[str, np.ndarray]:
        names = list(names)
        self._declared(names, self._conv.reads, "reads", self._spec.reads.text)
        arrays = self._conv.arrays("read", names)
        for name, samples in arrays.items():
            bad = np.flatnonzero(~np.isfinite(samples))
            if bad.size:
                raise PdError(f"array {name} holds NaN or infinite values ({bad.size} of them, the first at "
                              f"index {bad[0]}): fix the array and send the message again")
        return arrays

    def write_array(self, name: str, samples: np.ndarray, sr: Optional[float] = None) -> None:
        """Stage ``samples`` for Pd array ``name``; Pd resizes the array to fit on success."""
        self._declared([name], self._conv.writes, "writes", self._spec.writes.text)
        data = np.asarray(samples, dtype=np.float32)
        if data.ndim != 1:
            raise RuntimeError(f"worker bug: array {name} needs 1-D samples, got shape {data.shape}")
        if not np.isfinite(data).all():
            raise PdError(f"the model produced NaN or infinite samples for array {name}")
        self.arrays[name] = (data, sr)

    def _declared(self, names: Sequence[str], allowed: ArraySet, what: str, spec: str) -> None:
        stray = [n for n in names if not allowed.covers(n)]
        if stray:
            raise RuntimeError(f"worker bug: '{self.selector}' touches array {stray[0]}, which its declaration "
                               f"{what}={spec!r} does not name ({allowed.describe()})")

    def write_notes(self, notes: Iterable[Note], text: Optional[str] = None) -> None:
        """Stage a note list for the object to play on Pd's clock (``note <pitch> <velocity>`` at
        each onset and its note-off, then ``played``); also copied into ``[text define <text>]``."""
        rows = [[float(t), float(p), float(v), float(d)] for t, p, v, d in notes]
        for t, p, v, d in rows:
            if not (t >= 0 and d >= 0 and 0 <= p <= 127 and 0 < v <= 127):
                raise RuntimeError(f"worker bug: bad note (onset {t}, pitch {p}, velocity {v}, duration {d})")
        self.notes = {"notes": rows, **({"text": text} if text else {})}

    # -- answering -------------------------------------------------------------------------
    def reply(self, selector: str, *atoms: Union[str, float, int]) -> None:
        """Add a result line for the left outlet (sent after the arrays have landed)."""
        self.results.append([selector, *[a if isinstance(a, str) else float(a) for a in atoms]])

    def event(self, selector: str, *atoms: Union[str, float, int], outlet: int = 0) -> None:
        """Send a line to the object now, while the request runs (e.g. a note as it is generated):
        out of its left outlet (``outlet`` 0) or its right one (1)."""
        self._conv.send("event", {"outlet": outlet, "atoms": [selector, *atoms]})

    def progress(self, fraction: float, text: str = "") -> None:
        """Report progress (0..1) with an optional text (``12 s left``); raises :class:`Cancelled`
        when the user cancelled."""
        self.check_cancelled()
        now = time.monotonic()
        if now - self._last_progress >= PROGRESS_INTERVAL_S or fraction >= 1.0:
            self._last_progress = now
            self._conv.send("progress", {"fraction": min(max(float(fraction), 0.0), 1.0), "text": text})

    @property
    def cancelled(self) -> bool:
        """True once the user sent ``cancel`` (reads the hub's messages at most every 10 ms)."""
        self._conv.poll()
        return self._conv.cancel_event.is_set()

    def check_cancelled(self) -> None:
        if self.cancelled:
            raise Cancelled(f"{self.selector} cancelled")

    # -- jobs --------------------------------------------------------------------------------
    def follow(self, job: "JobFolder") -> None:
        """Have this object hear about ``job``'s progress from now on (the hub watches its folder)."""
        self.jobs.append(job)
