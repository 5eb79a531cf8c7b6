"""Jobs from a handler: start one, and the ``status``, ``stop`` and ``resume`` messages.

A handler that starts long work (training) calls :func:`start_job` and answers at once; the job
runs in a process of its own (:mod:`.jobrun`), and the object that started it hears its progress
as ``job <id> <state> <fraction> <text...>`` lines on its right outlet (the hub watches the job's
folder). A worker that has jobs registers the control messages with :func:`register_job_messages`.
"""
from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping, Optional

from pdwire.jobs import JobError, JobFolder, jobs_root, list_jobs

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
