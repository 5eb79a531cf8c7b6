"""Log files that survive hub restarts and never grow without bound.

Each worker's output goes to ``<log dir>/<model>.log``; when that passes :data:`MAX_BYTES` it
becomes ``<model>.log.1`` (the previous ``.1`` becomes ``.2``, and so on, :data:`BACKUPS` kept).
Nothing is wiped when a hub starts, so the log named in a crash error is still there after a restart.
"""
from __future__ import annotations

import datetime
import os
from pathlib import Path
from typing import IO, Optional

MAX_BYTES = 5 * 2**20
BACKUPS = 2


class RotatingLog:
    """Append lines to ``path``, rotating by size."""

    def __init__(self, path: Path, max_bytes: int = MAX_BYTES, backups: int = BACKUPS) -> None:
        self.path = path
        self.max_bytes = max_bytes
        self.backups = backups
        self._file: Optional[IO[str]] = None

    def write(self, line: str) -> None:
        f = self._open()
        f.write(line.rstrip("\n") + "\n")
        f.flush()
        if f.tell() > self.max_bytes:
            self._rotate()

    def mark(self, text: str) -> None:
        """A dated line that says what happened (a worker started, stopped)."""
        self.write(f"--- {datetime.datetime.now().isoformat(timespec='seconds')} {text} ---")

    def _open(self) -> IO[str]:
        if self._file is None or self._file.closed:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._file = open(self.path, "a", encoding="utf-8", errors="replace")
        return self._file

    def _rotate(self) -> None:
        self.close()
        for i in range(self.backups, 0, -1):
            older = self.path.with_name(f"{self.path.name}.{i}")
            newer = self.path.with_name(f"{self.path.name}.{i - 1}") if i > 1 else self.path
            if newer.exists():
                os.replace(newer, older)

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None
