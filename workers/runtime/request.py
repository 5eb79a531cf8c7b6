"""What a message handler gets: the request's arguments and the ways to answer it.

A handler reads arrays from Pd, reports progress, stages output arrays and replies. Output arrays
are only sent when the handler returns normally, so a failed request never touches the user's
arrays.
"""
from __future__ import annotations

import os
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable, Optional, Union

import numpy as np

from .args import Atom, Options, symbol
from .errors import Cancelled, PdError

if TYPE_CHECKING:  # pragma: no cover
    from .worker import Job

PROGRESS_INTERVAL_S = 0.05
"""At most 20 progress messages a second: enough for a progress bar, cheap for Pd."""


class Request:
    """One Pd message being handled. Created by the runtime; handlers only use its methods."""

    def __init__(self, job: "Job", state: dict[str, Any], device: str) -> None:
        self._job = job
        self.selector: str = job.selector
        self.args: list[Atom] = job.atoms
        self.session: str = job.session
        self.canvas_dir: str = job.canvas_dir
        self.state = state
        self.device = device
        self.results: list[list[Atom]] = []
        self.arrays: dict[str, tuple[np.ndarray, Optional[float]]] = {}
        self.checked: set[str] = set()
        """Arrays Pd confirmed exist during this request: the hub can land them without asking again."""
        self._last_progress = 0.0

    # -- arguments -------------------------------------------------------------------------
    def options(self, known: Optional[Iterable[str]] = None) -> Options:
        """Course-style ``--key value`` options (see :mod:`workers.runtime.args`)."""
        return Options.parse(self.args, known)

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
        self._job.array_request("check", names)
        self.checked.update(names)

    def read_array(self, name: str) -> np.ndarray:
        """The contents of Pd array ``name`` as float32 (exact: Pd writes it as a float32 WAV)."""
        return self.read_arrays([name])[name]

    def read_arrays(self, names: Iterable[str]) -> dict[str, np.ndarray]:
        return self._job.array_request("read", list(names))

    def write_array(self, name: str, samples: np.ndarray, sr: Optional[float] = None) -> None:
        """Stage ``samples`` for Pd array ``name``; Pd resizes the array to fit on success."""
        data = np.asarray(samples, dtype=np.float32)
        if data.ndim != 1:
            raise ValueError(f"array {name}: expected 1-D samples, got shape {data.shape}")
        if not np.isfinite(data).all():
            raise PdError(f"the model produced NaN or infinite samples for array {name}")
        self.arrays[name] = (data, sr)

    # -- answering -------------------------------------------------------------------------
    def reply(self, selector: str, *atoms: Union[str, float, int]) -> None:
        """Add a result line for the left outlet (sent after the arrays have landed)."""
        self.results.append([selector, *[a if isinstance(a, str) else float(a) for a in atoms]])

    def progress(self, fraction: float, text: str = "") -> None:
        """Report progress (0..1); raises :class:`Cancelled` when the user cancelled."""
        self.check_cancelled()
        now = time.monotonic()
        if now - self._last_progress >= PROGRESS_INTERVAL_S or fraction >= 1.0:
            self._last_progress = now
            self._job.send_progress(min(max(float(fraction), 0.0), 1.0), text)

    @property
    def cancelled(self) -> bool:
        """True once the user sent ``cancel`` (reads the hub's messages at most every 10 ms)."""
        self._job.poll_cancel()
        return self._job.cancel_event.is_set()

    def check_cancelled(self) -> None:
        if self.cancelled:
            raise Cancelled(f"{self.selector} cancelled")
