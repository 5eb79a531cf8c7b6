"""Job folders: long work (training) that runs in a process of its own and outlives Pd and the hub.

A request that starts a job answers at once; the job's process writes how it goes into its folder,
which the hub watches to send progress to the Pd objects that asked, and which ``pdbridge jobs``
lists. Everything about a job is in its folder, so a job survives Pd, the hub and its worker being
restarted, and can be stopped and resumed from any of them::

    <jobs root>/<id>/
      job.json     what to run: id, model, kind, entry ("module:function"), config, output, created
      status.json  how it goes: state, fraction, text, pid, started, updated, ended, error, result
      log.txt      the job process's output
      lock         held (flock) by the running job process: when it is free, nobody runs the job
      work/        the job's own files (checkpoints, plots) unless its config names an output folder
"""
from __future__ import annotations

import datetime
import fcntl
import json
import os
import secrets
import signal
import subprocess
import time
from pathlib import Path
from typing import Any, Mapping, Optional, Sequence

ENDED = ("stopped", "done", "failed")
"""States after which nothing runs; ``resume`` may start the job again from its last checkpoint."""
START_GRACE_S = 60.0
"""A job whose process has not yet taken its lock is 'starting' for this long (imports are slow)."""


def state_dir() -> Path:
    """Where pdbridge keeps what outlives a hub run (logs, jobs, hub tickets' defaults)."""
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "pdbridge"


def jobs_root() -> Path:
    return Path(os.environ["PDBRIDGE_JOBS_DIR"]) if os.environ.get("PDBRIDGE_JOBS_DIR") else state_dir() / "jobs"


class JobError(Exception):
    """No such job, or it cannot do what was asked now; the text is for the student."""


class JobFolder:
    """One job's folder (see the module docstring)."""

    def __init__(self, path: Path) -> None:
        self.path = path

    # -- creating and finding ------------------------------------------------------------------
    @classmethod
    def create(cls, root: Path, model: str, kind: str, entry: str, config: Mapping[str, Any],
               output: Optional[Path] = None) -> "JobFolder":
        """A new job folder; ``entry`` is the ``module:function`` the job process runs."""
        stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
        job_id = f"{model}-{kind}-{stamp}-{secrets.token_hex(2)}"
        path = root / job_id
        path.mkdir(parents=True, mode=0o700)
        (path / "work").mkdir()
        job = cls(path)
        _write_json(path / "job.json", {"id": job_id, "model": model, "kind": kind, "entry": entry,
                                        "config": dict(config), "output": str(output or path / "work"),
                                        "created": time.time()})
        job.write_status(state="starting", fraction=0.0, text="starting")
        return job

    @classmethod
    def find(cls, root: Path, ref: str) -> "JobFolder":
        """A job by id, by its folder, or by the output folder it writes (e.g. a model folder)."""
        for candidate in (root / ref, Path(ref)):
            if (candidate / "job.json").is_file():
                return cls(candidate)
        wanted = Path(ref).expanduser().resolve()
        matches = [job for job in list_jobs(root) if Path(job.spec().get("output", "")).resolve() == wanted]
        if matches:
            return max(matches, key=lambda j: j.spec().get("created", 0))
        raise JobError(f"no job {ref} (pdbridge jobs lists them)")

    # -- reading -------------------------------------------------------------------------------
    @property
    def id(self) -> str:
        return self.path.name

    def spec(self) -> dict[str, Any]:
        return _read_json(self.path / "job.json")

    @property
    def output(self) -> Path:
        return Path(self.spec().get("output") or self.path / "work")

    @property
    def log_path(self) -> Path:
        return self.path / "log.txt"

    def status(self) -> dict[str, Any]:
        """status.json, with the state corrected when the process it names is gone."""
        status = _read_json(self.path / "status.json")
        state = status.get("state", "failed")
        if state not in ENDED and not self.is_running():
            if state == "starting" and time.time() - float(status.get("updated", 0)) < START_GRACE_S:
                return status
            status = {**status, "state": "failed",
                      "error": status.get("error") or f"the job process ended without saying so (see {self.log_path})"}
        return status

    def status_line(self) -> list[Any]:
        """``job <id> <state> <fraction> <text...>``: how Pd hears about a job, asked or told."""
        status = self.status()
        text = status.get("error") if status.get("state") == "failed" else status.get("text")
        return ["job", self.id, str(status.get("state", "?")), float(status.get("fraction", 0.0)),
                *str(text or "").split()]

    def is_running(self) -> bool:
        """Whether a process holds the job's lock (robust to a reused pid, and to SIGKILL)."""
        try:
            fd = os.open(self.path / "lock", os.O_RDWR | os.O_CREAT, 0o600)
        except OSError:
            return False
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        finally:
            os.close(fd)  # closing also releases a lock we just took
        return False

    # -- writing (the job process, and the launcher) -------------------------------------------
    def write_status(self, **fields: Any) -> dict[str, Any]:
        """Merge ``fields`` into status.json atomically (readers never see half a file)."""
        path = self.path / "status.json"
        status = _read_json(path) if path.exists() else {}
        status.update(fields, updated=time.time())
        _write_json(path, status)
        return status

    def hold_lock(self) -> int:
        """Take the job's lock for the life of this process; raises JobError if another holds it."""
        fd = os.open(self.path / "lock", os.O_RDWR | os.O_CREAT, 0o600)
        deadline = time.monotonic() + 2.0  # a reader checking is_running holds it for microseconds
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return fd
            except BlockingIOError:
                if time.monotonic() > deadline:
                    os.close(fd)
                    raise JobError(f"job {self.id} is already running") from None
                time.sleep(0.02)

    # -- control -------------------------------------------------------------------------------
    def launch(self, python: str, env: Mapping[str, str], cwd: Path, resume: bool = False) -> int:
        """Start the job process detached (its own session: it outlives whoever started it)."""
        if self.is_running() and _raw_state(self) in ENDED:  # it said so and is exiting: give it a moment
            deadline = time.monotonic() + 3.0
            while self.is_running() and time.monotonic() < deadline:
                time.sleep(0.02)
        if self.is_running():
            raise JobError(f"job {self.id} is already running")
        self.write_status(state="starting", text="resuming" if resume else "starting", error=None, ended=None)
        args: Sequence[str] = [python, "-m", "workers.runtime.jobrun", str(self.path), *(["--resume"] if resume else [])]
        with open(self.log_path, "ab") as log:
            proc = subprocess.Popen(args, cwd=str(cwd), env=dict(env), stdin=subprocess.DEVNULL, stdout=log,
                                    stderr=subprocess.STDOUT, start_new_session=True)
        self.write_status(pid=proc.pid)
        return proc.pid

    def stop(self) -> bool:
        """Ask the running job to stop (SIGTERM: it saves a checkpoint first); False if not running."""
        pid = self.status().get("pid")
        if not self.is_running() or not pid:
            return False
        try:
            os.killpg(int(pid), signal.SIGTERM)
        except (ProcessLookupError, PermissionError):
            return False
        self.write_status(state="stopping", text="stopping")
        return True


def _raw_state(job: JobFolder) -> str:
    return str(_read_json(job.path / "status.json").get("state", ""))


def list_jobs(root: Path) -> list[JobFolder]:
    """Every job folder under ``root``, oldest first."""
    if not root.is_dir():
        return []
    jobs = [JobFolder(p) for p in root.iterdir() if (p / "job.json").is_file()]
    return sorted(jobs, key=lambda j: j.spec().get("created", 0))


def _read_json(path: Path) -> dict[str, Any]:
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _write_json(path: Path, data: Mapping[str, Any]) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(data, f, indent=1)
    os.replace(tmp, path)
