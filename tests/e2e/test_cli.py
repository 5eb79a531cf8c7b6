"""The pdbridge command: open a patch headless, and a worker started by hand joining a hub."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from pdharness import HubThread, PdDriver

ROOT = Path(__file__).resolve().parents[2]
PATCHES = Path(__file__).parent / "patches"


def pdbridge(*args: str, **kwargs) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    return subprocess.run([sys.executable, "-m", "pdbridge", *args], env=env, capture_output=True, text=True,
                          timeout=120, **kwargs)


def test_open_runs_a_regression_patch_and_returns_its_exit_code(tmp_path):
    out = pdbridge("open", "--headless", "--port", "0", str(PATCHES / "open_selftest.pd"))
    assert out.returncode == 0, out.stdout + out.stderr


def test_open_reports_a_missing_patch():
    out = pdbridge("open", "--headless", "nothere.pd")
    assert out.returncode == 2 and "no such patch" in out.stderr


@pytest.fixture
def lone_hub(tmp_path):
    h = HubThread(log_dir=tmp_path)
    yield h
    h.stop()


def start_worker_by_hand(hub: HubThread, *args: str) -> subprocess.Popen:
    """``pdbridge worker diagnostics --connect <hub> ARGS``, once the hub has heard its hello."""
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    remote = subprocess.Popen([sys.executable, "-m", "pdbridge", "worker", "diagnostics", *args], env=env)
    slot = hub.hub.slots["diagnostics"]
    deadline = time.monotonic() + 60
    while not hub.run(lambda: slot.remote and slot.ready.is_set()):
        assert time.monotonic() < deadline, "the hand-started worker never said hello"
        time.sleep(0.1)
    return remote


def test_worker_started_by_hand_serves_pd_and_its_death_is_noticed(lone_hub, tmp_path):
    conn = tmp_path / "hub.json"
    lone_hub.run(lone_hub.hub.write_connection_file, conn)
    remote = start_worker_by_hand(lone_hub, "--connection-file", str(conn))
    slot = lone_hub.hub.slots["diagnostics"]
    pd = PdDriver(lone_hub.port, "diagnostics", timeout=60)
    try:
        pd.send("pid")
        worker_pid = int(pd.result("pid")[0])
        assert lone_hub.run(lambda: slot.process) is None  # nothing spawned: the remote one answered
        pd.send("sleep", 60)
        assert pd.next()[:2] == ["status", "progress"]
        os.kill(worker_pid, signal.SIGKILL)
        assert "no heartbeat for 1 s" in pd.error(timeout=10)
        pd.send("pid")  # the hub now starts its own worker
        assert int(pd.result("pid")[0]) != worker_pid
        assert pd.quit() == 0
    finally:
        pd.close()
        remote.wait(timeout=10)


def test_a_worker_that_cannot_see_the_array_folder_gets_arrays_as_buffers(lone_hub):
    """A worker on another machine (here: started with only the key) has no access to the hub's
    array folder: its arrays travel inside the messages, still bit for bit."""
    remote = start_worker_by_hand(lone_hub, "--connect", lone_hub.hub.local_worker_url, "--key",
                                  lone_hub.hub.key.decode())
    slot = lone_hub.hub.slots["diagnostics"]
    pd = PdDriver(lone_hub.port, "diagnostics", timeout=60)
    try:
        assert not lone_hub.run(lone_hub.hub.shares_files, slot)
        samples = np.random.default_rng(4).uniform(-1, 1, 50_000).astype(np.float32)
        pd.write_array("drv-a", samples)
        pd.send("echo", "drv-a", "drv-b")
        assert pd.result("echo") == ["drv-b", 50_000.0]
        assert np.array_equal(pd.read_array("drv-b"), samples)
        assert lone_hub.run(lambda: slot.process) is None  # the hand-started worker did it
    finally:
        pd.close()
        remote.terminate()
        remote.wait(timeout=10)


def test_ganspace_runs_in_the_tensorflow_environment():
    out = pdbridge("ganspace", "--help")
    assert out.returncode == 0, out.stderr
    assert "compute" in out.stdout and "convert" in out.stdout
