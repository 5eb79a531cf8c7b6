"""Job progress to the Pd objects that follow a job, read from the job's folder.

A job runs in a process of its own and writes how it goes into its folder (:mod:`pdwire.jobs`);
it knows nothing of Pd. The objects that started a job, or asked for its ``status``, follow it:
the hub looks at the folders they follow a few times a second and sends each change to them as
``job <id> <state> <fraction> <text...>`` out of their right outlet, until the job has ended. After
a hub restart nobody follows anything until an object asks ``status`` again.
"""
from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import Any, Callable

from pdwire.jobs import ENDED, JobFolder, jobs_root

log = logging.getLogger("pdbridge.hub")

POLL_S = 0.25


class JobWatch:
    """Which sessions follow which job folders, and the loop that tells them what changed."""

    def __init__(self, tell: Callable[[str, list[Any]], None]) -> None:
        self.tell = tell
        self.followers: dict[Path, set[str]] = {}
        self._seen: dict[Path, float] = {}

    def follow(self, session: str, folder: str) -> None:
        """``session`` hears about the job in ``folder`` from now on (folders outside the jobs root are
        refused: a worker cannot make the hub read arbitrary files)."""
        path = Path(folder).resolve()
        if path.parent != jobs_root().resolve() or not (path / "job.json").is_file():
            log.warning("not following %s: not a job folder under %s", folder, jobs_root())
            return
        self.followers.setdefault(path, set()).add(session)

    def forget(self, session: str) -> None:
        for path in list(self.followers):
            self.followers[path].discard(session)
            if not self.followers[path]:
                del self.followers[path]
                self._seen.pop(path, None)

    def poll(self) -> None:
        """Tell the followers of every job whose status changed since the last look."""
        for path in list(self.followers):
            try:
                stamp = (path / "status.json").stat().st_mtime_ns
            except OSError:
                stamp = -1
            job = JobFolder(path)
            line = job.status_line()
            state = line[2]
            if stamp == self._seen.get(path) and state not in ENDED:
                continue
            self._seen[path] = stamp
            for session in self.followers[path]:
                self.tell(session, line)
            if state in ENDED:
                del self.followers[path]
                self._seen.pop(path, None)

    async def run(self) -> None:
        while True:
            await asyncio.sleep(POLL_S)
            try:
                self.poll()
            except Exception:  # a job folder half-deleted by hand must not stop the watch
                log.exception("watching jobs failed")
