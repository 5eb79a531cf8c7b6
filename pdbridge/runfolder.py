"""The hub's private folder for one run, and cleaning up after hubs that died.

The folder (on tmpfs where there is one: its files live for milliseconds) is readable by its user
only and holds the array files Pd and the workers exchange (``arrays/``), the Unix socket spawned
workers connect to (``workers.sock``) and a ``lock`` that the hub holds for its whole life. A hub
that is SIGKILLed cannot clean up, so every hub, when it starts, removes what dead hubs left: run
folders whose lock nobody holds, with their tickets and connection files.
"""
from __future__ import annotations

import fcntl
import json
import logging
import os
import shutil
import tempfile
from pathlib import Path
from typing import Iterable, Optional

from pdwire.arrays import ArrayFolder

from .ticket import DEFAULT_PD_PORT, read_ticket, retire_ticket, ticket_dir

log = logging.getLogger("pdbridge.hub")

PREFIX = "pdbridge-"


def _scratch_parent() -> Path:
    shm = Path("/dev/shm")
    return shm if shm.is_dir() and os.access(shm, os.W_OK) else Path(tempfile.gettempdir())


class RunFolder:
    """This hub's folder; :meth:`close` removes it."""

    def __init__(self, parent: Optional[Path] = None) -> None:
        self.root = Path(tempfile.mkdtemp(prefix=PREFIX, dir=parent or _scratch_parent()))
        self._lock = os.open(self.root / "lock", os.O_RDWR | os.O_CREAT, 0o600)
        fcntl.flock(self._lock, fcntl.LOCK_EX)
        (self.root / "arrays").mkdir(mode=0o700)
        self.arrays = ArrayFolder(self.root / "arrays")
        self.ipc_path = self.root / "workers.sock"

    def close(self) -> None:
        shutil.rmtree(self.root, ignore_errors=True)
        os.close(self._lock)


def is_dead(folder: Path) -> bool:
    """Whether ``folder`` is a run folder whose hub is gone (nobody holds its lock)."""
    try:
        fd = os.open(folder / "lock", os.O_RDWR)
    except FileNotFoundError:
        return True
    except OSError:
        return False  # not ours to judge
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    finally:
        os.close(fd)
    return True


def remove_stale(connection_dirs: Iterable[Path] = ()) -> list[Path]:
    """Remove what dead hubs left: their run folders, tickets and connection files."""
    removed: list[Path] = []
    parents = {_scratch_parent(), Path(tempfile.gettempdir())}
    for parent in parents:
        for folder in parent.glob(PREFIX + "*"):
            try:
                ours = folder.is_dir() and folder.stat().st_uid == os.getuid()
            except OSError:
                continue
            if ours and (folder / "lock").exists() and is_dead(folder):
                shutil.rmtree(folder, ignore_errors=True)
                removed.append(folder)
    for ticket in ticket_dir().glob("hub-*.txt"):
        fields = read_ticket(ticket)
        if fields.get("state") == "up" and is_dead(Path(fields.get("folder", "/nonexistent"))):
            try:
                retire_ticket(int(ticket.stem.split("-", 1)[1]))
            except ValueError:
                ticket.unlink(missing_ok=True)
            removed.append(ticket)
    for folder in connection_dirs:
        for conn in Path(folder).glob("hub-*.json"):
            try:
                run = json.loads(conn.read_text()).get("run_folder", "")
            except (OSError, ValueError):
                continue
            if run and is_dead(Path(run)):
                conn.unlink(missing_ok=True)
                removed.append(conn)
    if removed:
        log.info("removed what dead hubs left: %s", ", ".join(map(str, removed)))
    return removed


__all__ = ["RunFolder", "remove_stale", "is_dead", "DEFAULT_PD_PORT"]
