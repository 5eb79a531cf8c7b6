"""What the runtime offers the models to come, through real Pd: events during and after a request,
note lists played on Pd's own clock, long lists, progress text, and jobs that outlive the hub."""
from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Optional

import numpy as np
import pytest

from pdharness import DRIVER, HubProcess, PdDriver, free_port, wait_until
from pdbridge.pd import HEADLESS_FLAGS, PATCH_DIR, find_pd
from pdwire.jobs import JobFolder

ROOT = Path(__file__).resolve().parents[2]


def test_events_come_while_a_request_runs_and_after_it_ended(pd_driver):
    pd = pd_driver("diagnostics")
    pd.send("events", 3)
    assert [pd.next() for _ in range(4)] == [["result", "tick", 0.0], ["result", "tick", 1.0],
                                             ["result", "tick", 2.0], ["result", "events", 3.0]]
    pd.send("later", 0.3, "hello", 7)
    assert pd.result("scheduled") == [0.3]
    assert pd.result("later") == ["hello", 7.0]  # sent by the worker from another thread, afterwards


def test_progress_reports_carry_their_text(pd_driver):
    pd = pd_driver("diagnostics")
    pd.send("sleep", 0.3)
    progress = pd.next()
    assert progress[:2] == ["status", "progress"] and progress[-2:] == ["s", "left"]
    assert pd.result("slept") == [0.3]


def test_an_input_holding_nan_is_named_as_such(pd_driver, tmp_path):
    pd = pd_driver("diagnostics")
    samples = np.zeros(10, np.float32)
    samples[4] = np.nan
    pd.write_array("drv-a", samples)
    pd.send("echo", "drv-a", "drv-b")
    text = pd.error()
    assert "array drv-a holds NaN or infinite values (1 of them, the first at index 4)" in text
    assert "produced" not in text


def test_a_note_list_is_played_on_pds_clock_and_copied_into_a_text(hub, tmp_path):
    out = tmp_path / "notes.txt"
    proc = subprocess.run([str(find_pd()), *HEADLESS_FLAGS, "-path", str(PATCH_DIR), "-send",
                           f"pdbridge-port {hub.port}; notes-out symbol {out}", "-open",
                           str(DRIVER.parent / "notes_clock.pd")], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    events = [[float(x) for x in line.rstrip(";").split()] for line in out.read_text().splitlines() if line.strip()]
    start = events[0][0]
    # melody 6 0.125: note i at i * 125 ms, pitch 60 + i, off after 62.5 ms, in Pd's logical time
    # (which [timer] reports as a float: 1e-3 ms is its rounding, a late note would be whole ms off)
    expected = []
    for i in range(6):
        expected += [(i * 125.0, 60.0 + i, 100.0), (i * 125.0 + 62.5, 60.0 + i, 0.0)]
    assert [(t - start, p, v) for t, p, v in events] == [pytest.approx(e, abs=1e-3) for e in expected]
    copy = [line.rstrip(";").split() for line in Path(f"{out}.copy").read_text().splitlines() if line.strip()]
    assert copy[0] == ["0", "note", "60", "100"] and copy[1] == ["62.5", "note", "60", "0"] and len(copy) == 12


def test_stop_cuts_a_playing_note_list_with_no_hanging_notes(pd_driver):
    pd = pd_driver("diagnostics")
    pd.send("melody", 20, 0.5)
    assert pd.result("note") == [60.0, 100.0]
    assert pd.result("melody") == [20.0]
    pd.send("_stop")
    assert pd.result("note") == [60.0, 0.0]  # the held note is released at once
    with pytest.raises(AssertionError):  # and nothing more plays
        pd.next(timeout=1.0)


def cli(*args: str, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "pdbridge", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=60, env=dict(os.environ, PYTHONPATH=str(ROOT), **env))


def job_lines(pd: PdDriver, job_id: str, state: str, timeout: float = 30, ending: Optional[list] = None) -> list:
    """Job lines of the right outlet until one says ``state`` (and ends with ``ending``, when given)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        msg = pd.next(max(0.1, deadline - time.monotonic()))
        if msg[:4] == ["status", "job", job_id, state] and (ending is None or msg[-len(ending):] == ending):
            return msg
    raise AssertionError(f"no job {job_id} {state} {ending or ''}")


def test_a_job_started_from_pd_outlives_the_hub_and_stops_and_resumes(tmp_path):
    jobs = tmp_path / "jobs"
    port = free_port()
    env = {"PDBRIDGE_JOBS_DIR": str(jobs)}
    hub = HubProcess(tmp_path, port=port, **env)
    pd = PdDriver(port, "diagnostics", timeout=60)
    try:
        assert pd.connected.get(timeout=20) is True
        pd.send("countdown", 4)
        job_id = pd.result("started")[0]
        # the first line may come before the job's first progress; then its text counts down
        job_lines(pd, job_id, "running", ending=["s", "left"])
        hub.kill()  # the job runs in a process of its own
        job = JobFolder(jobs / job_id)
        before = job.status()["fraction"]
        wait_until(lambda: job.status()["fraction"] > before, what="the job going on without its hub")
        hub = HubProcess(tmp_path, port=port, **env)
        assert pd.connected.get(timeout=10) is False and pd.connected.get(timeout=10) is True
        pd.send("status", job_id)
        assert pd.result("job")[:2] == [job_id, "running"]
        job_lines(pd, job_id, "running")  # it is followed again
        pd.send("stop", job_id)
        assert pd.result("stopping") == [job_id]
        job_lines(pd, job_id, "stopped")
        listed = cli("jobs", **env).stdout
        assert job_id in listed and "stopped" in listed
        pd.send("resume", job_id)
        assert pd.result("resumed") == [job_id]
        done = job_lines(pd, job_id, "done")
        assert done[4] == 1.0
        assert "resuming at" in job.log_path.read_text()
        assert "done" in cli("jobs", "show", job_id, **env).stdout
    finally:
        pd.close()
        hub.stop()


def test_open_takes_its_own_port_option_and_gives_pd_flags_after_a_double_dash(tmp_path):
    patch = ROOT / "tests" / "e2e" / "patches" / "open_selftest.pd"
    port = free_port()
    out = cli("open", str(patch), "--headless", "--port", str(port), "--", "-sleepgrain", "2")
    assert out.returncode == 0, out.stdout + out.stderr
