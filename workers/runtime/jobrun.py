"""``python -m workers.runtime.jobrun <job folder> [--resume]``: the process a job runs in.

It takes the job's lock (so everyone can tell it runs), imports the job's entry function
(``module:function`` in job.json) and calls it with a :class:`JobContext`. SIGTERM (``stop``)
does not kill it: it sets :attr:`JobContext.should_stop`, and the entry saves a checkpoint and
returns. Whatever happens ends up in status.json, and the traceback of a failure in log.txt.
"""
from __future__ import annotations

import argparse
import importlib
import os
import signal
import sys
import time
import traceback
from pathlib import Path
from typing import Any, Callable

from pdwire.jobs import JobError, JobFolder

STATUS_INTERVAL_S = 0.2
"""status.json is rewritten at most 5 times a second (the hub polls it 4 times a second)."""


class JobContext:
    """What a job's entry function gets: its config, where to write, and how to report."""

    def __init__(self, folder: JobFolder, resume: bool) -> None:
        self.folder = folder
        spec = folder.spec()
        self.config: dict[str, Any] = spec.get("config", {})
        self.output = Path(spec.get("output") or folder.path / "work")
        self.resume = resume
        self.should_stop = False
        self._last = 0.0

    def progress(self, fraction: float, text: str = "") -> None:
        """Report how far the job is (0..1) and what it does (``scale 3 of 12, 40 s left``)."""
        now = time.monotonic()
        if now - self._last >= STATUS_INTERVAL_S or fraction >= 1.0:
            self._last = now
            self.folder.write_status(fraction=min(max(float(fraction), 0.0), 1.0), text=text)

    def log(self, text: str) -> None:
        print(text, flush=True)

    def result(self, **fields: Any) -> None:
        """Facts for whoever looks at the finished job (e.g. the model folder it wrote)."""
        self.folder.write_status(result=fields)

    def _on_term(self, signum: int, frame: Any) -> None:
        self.should_stop = True
        self.log("stop requested: saving and stopping")


def entry_function(entry: str) -> Callable[[JobContext], None]:
    module, _, name = entry.partition(":")
    return getattr(importlib.import_module(module), name)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="jobrun", description=__doc__.split("\n")[0])
    parser.add_argument("folder")
    parser.add_argument("--resume", action="store_true")
    args = parser.parse_args(argv)
    folder = JobFolder(Path(args.folder))
    try:
        folder.hold_lock()
    except JobError as exc:
        print(exc, flush=True)
        return 2
    ctx = JobContext(folder, args.resume)
    signal.signal(signal.SIGTERM, ctx._on_term)
    folder.write_status(state="running", pid=os.getpid(), started=time.time(), text="running", error=None,
                        ended=None)
    print(f"--- job {folder.id} {'resumed' if args.resume else 'started'} (pid {os.getpid()}) ---", flush=True)
    try:
        entry_function(folder.spec()["entry"])(ctx)
    except Exception as exc:
        traceback.print_exc()
        folder.write_status(state="failed", error=f"{type(exc).__name__}: {exc}", ended=time.time())
        return 1
    if ctx.should_stop:
        folder.write_status(state="stopped", text="stopped", ended=time.time())
    else:
        folder.write_status(state="done", fraction=1.0, text="done", ended=time.time())
    return 0


if __name__ == "__main__":
    sys.exit(main())
