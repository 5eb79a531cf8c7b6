"""Job folders and the job process: state, lock, stop and resume, a failure, and finding a job."""
import json
import os
import sys
import time
from pathlib import Path

import pytest

from pdbridge.config import PROJECT_ROOT, project_env
from pdwire.jobs import JobError, JobFolder, list_jobs


def wait_for(job: JobFolder, states: tuple[str, ...], timeout: float = 30) -> dict:
    deadline = time.monotonic() + timeout
    while (status := job.status()).get("state") not in states:
        assert time.monotonic() < deadline, f"job stuck in {status}; log: {job.log_path.read_text()}"
        time.sleep(0.05)
    return status


def launch(job: JobFolder, resume: bool = False) -> int:
    return job.launch(sys.executable, project_env(), PROJECT_ROOT, resume=resume)


def test_a_job_runs_in_its_own_process_and_reports(tmp_path):
    job = JobFolder.create(tmp_path, "diagnostics", "countdown", "workers.diagnostics.jobs:countdown", {"seconds": 0.3})
    assert job.status()["state"] == "starting"
    pid = launch(job)
    assert pid != os.getpid()
    status = wait_for(job, ("done",))
    assert status["fraction"] == 1.0 and status["result"] == {"counted": 0.3}
    deadline = time.monotonic() + 5  # it wrote "done" while still holding its lock, then exits
    while job.is_running():
        assert time.monotonic() < deadline
        time.sleep(0.02)
    assert job.status_line()[:4] == ["job", job.id, "done", 1.0]


def test_stop_saves_and_resume_goes_on_from_the_checkpoint(tmp_path):
    job = JobFolder.create(tmp_path, "diagnostics", "countdown", "workers.diagnostics.jobs:countdown", {"seconds": 30})
    launch(job)
    status = wait_for(job, ("running",))
    while job.status().get("fraction", 0) < 0.01:
        time.sleep(0.05)
    assert job.is_running() and status["pid"]
    with pytest.raises(JobError, match="already running"):
        launch(job)
    assert job.stop()
    wait_for(job, ("stopped",))
    done = json.loads((job.output / "checkpoint.json").read_text())["done"]
    assert done > 0
    launch(job, resume=True)
    wait_for(job, ("running",))
    time.sleep(0.3)
    assert job.status()["fraction"] * 30 >= done  # it went on from where it stopped, not from 0
    assert "resuming at" in job.log_path.read_text()
    job.stop()
    wait_for(job, ("stopped",))


def test_a_job_that_fails_says_why_and_a_killed_one_is_failed(tmp_path):
    job = JobFolder.create(tmp_path, "diagnostics", "broken", "workers.diagnostics.jobs:no_such_function", {})
    launch(job)
    status = wait_for(job, ("failed",))
    assert "AttributeError" in status["error"]
    killed = JobFolder.create(tmp_path, "diagnostics", "countdown", "workers.diagnostics.jobs:countdown",
                              {"seconds": 60})
    pid = launch(killed)
    wait_for(killed, ("running",))
    os.kill(pid, 9)
    status = wait_for(killed, ("failed",))
    assert "ended without saying so" in status["error"]


def test_jobs_are_found_by_id_folder_or_output(tmp_path):
    out = tmp_path / "my-model"
    job = JobFolder.create(tmp_path / "jobs", "caw", "train", "x:y", {}, output=out)
    assert JobFolder.find(tmp_path / "jobs", job.id).path == job.path
    assert JobFolder.find(tmp_path / "jobs", str(job.path)).path == job.path
    assert JobFolder.find(tmp_path / "jobs", str(out)).path == job.path
    assert [j.id for j in list_jobs(tmp_path / "jobs")] == [job.id]
    with pytest.raises(JobError, match="no job"):
        JobFolder.find(tmp_path / "jobs", "nothing-like-it")
    assert list_jobs(tmp_path / "none") == []
    assert Path(job.spec()["output"]) == out
