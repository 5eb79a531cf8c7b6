"""Jobs from a handler: start one, and the ``status``, ``stop`` and ``resume`` messages.

A handler that starts long work (training) calls :func:`start_job` and answers at once; the job
runs in a process of its own (:mod:`.jobrun`), and the object that started it hears its progress
as ``job <id> <state> <fraction> <text...>`` lines on its right outlet (the hub watches the job's
folder). A worker that has jobs registers the control messages with :func:`register_job_messages`.
The same job can be run from a shell (``pdbridge train <model> ...``) with :func:`run_in_foreground`.
"""
from __future__ import annotations

import os
import shutil
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping, Optional

from pdwire.jobs import ENDED, JobError, JobFolder, jobs_root, list_jobs

from .args import symbol
from .errors import PdError
from .request import Request

if TYPE_CHECKING:  # pragma: no cover
    from .worker import Worker

PROJECT_ROOT = Path(__file__).resolve().parents[2]
STATUS_LINES = 20
"""``status`` without a job lists this model's newest jobs, at most this many."""


def start_job(req: Request, kind: str, entry: str, config: Mapping[str, Any], output: Optional[Path] = None
              ) -> JobFolder:
    """Create a job folder and start its process with this worker's interpreter; the object
    that sent ``req`` follows its progress. ``entry`` is ``module:function(JobContext)``."""
    job = JobFolder.create(jobs_root(), req.model, kind, entry, config, output)
    job.launch(sys.executable, os.environ, PROJECT_ROOT)
    req.follow(job)
    return job


def _find(req: Request) -> JobFolder:
    if not req.args:
        raise req.usage()
    try:
        job = JobFolder.find(jobs_root(), str(req.resolve_path(req.args[0])) if "/" in symbol(req.args[0], "job")
                             else symbol(req.args[0], "job"))
    except JobError as exc:
        raise PdError(str(exc)) from exc
    if job.spec().get("model") != req.model:
        raise PdError(f"job {job.id} belongs to {job.spec().get('model')}, not {req.model}")
    return job


def register_job_messages(worker: "Worker") -> None:
    """``status [job]``, ``stop <job>``, ``resume <job>``; a job is named by its id or its folder."""

    @worker.message("status [job]", help="a job's state (or this model's newest jobs); its progress follows",
                    timeout=10)
    def status(req: Request) -> None:
        jobs = [_find(req)] if req.args else [j for j in list_jobs(jobs_root())
                                              if j.spec().get("model") == req.model][-STATUS_LINES:]
        if not jobs:
            req.reply("job", "none")
        for job in jobs:
            req.reply(*job.status_line())
            if job.is_running():
                req.follow(job)

    @worker.message("stop <job>", help="ask a running job to save and stop", timeout=10)
    def stop(req: Request) -> None:
        job = _find(req)
        if not job.stop():
            raise PdError(f"job {job.id} is not running ({job.status().get('state')})")
        req.follow(job)
        req.reply("stopping", job.id)

    @worker.message("resume <job>", help="start a stopped or failed job again from its last checkpoint", timeout=30)
    def resume(req: Request) -> None:
        job = _find(req)
        if job.status().get("state") == "done":
            raise PdError(f"job {job.id} is done; start a new one to train again")
        try:
            job.launch(sys.executable, os.environ, PROJECT_ROOT, resume=True)
        except JobError as exc:
            raise PdError(str(exc)) from exc
        req.follow(job)
        req.reply("resumed", job.id)


FOLLOW_INTERVAL_S = 0.5


def run_in_foreground(job: JobFolder, python: str, env: Mapping[str, str], cwd: Path, resume: bool = False) -> int:
    """Run ``job`` from a shell and follow it there: its log lines, and a progress bar.

    The job runs as its own process exactly as one started from Pd (so ``pdbridge jobs`` lists it
    and ``pdbridge jobs resume`` continues it); Ctrl-C asks it to save a checkpoint and stop.
    Returns 0 when the job is done, 1 otherwise.
    """
    job.launch(python, env, cwd, resume=resume)
    print(f"job {job.id} (Ctrl-C saves and stops; pdbridge jobs resume {job.id} goes on)", flush=True)
    tty = sys.stdout.isatty()
    offset = job.log_path.stat().st_size if job.log_path.exists() else 0
    shown = ""
    while True:
        try:
            status = job.status()
            offset = _print_new_log(job, offset, tty)
            if status.get("state") in ENDED:
                break
            line = _bar(status) if tty else f"{100 * float(status.get('fraction', 0)):5.1f}% {status.get('text', '')}"
            if tty:
                print("\r\033[K" + line[:shutil.get_terminal_size().columns - 1], end="", flush=True)
            elif line != shown:
                print(line, flush=True)
            shown = line
            time.sleep(FOLLOW_INTERVAL_S)
        except KeyboardInterrupt:
            print("\nstopping: the job saves a checkpoint first ...", flush=True)
            job.stop()
    status = job.status()
    print(("\n" if tty else "") + f"job {job.id}: {status.get('state')} - "
          f"{status.get('error') or status.get('text', '')}\nlog: {job.log_path}", flush=True)
    return 0 if status.get("state") == "done" else 1


def _bar(status: Mapping[str, Any], width: int = 30) -> str:
    fraction = min(max(float(status.get("fraction", 0.0)), 0.0), 1.0)
    filled = int(round(fraction * width))
    return f"[{'#' * filled}{'.' * (width - filled)}] {100 * fraction:5.1f}% {status.get('text', '')}"


def _print_new_log(job: JobFolder, offset: int, tty: bool) -> int:
    """Print what the job logged since ``offset`` (above the progress bar); return the new offset."""
    try:
        with open(job.log_path, "rb") as f:
            f.seek(offset)
            data = f.read()
    except OSError:
        return offset
    end = data.rfind(b"\n") + 1  # whole lines only
    if end:
        text = data[:end].decode("utf-8", errors="replace")
        print(("\r\033[K" if tty else "") + text, end="", flush=True)
    return offset + end
