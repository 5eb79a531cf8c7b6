"""pdbridge autostart: one keeper per port, later GUIs join it, a hand-started hub is left alone,
the hub is restarted when it dies and stopped when the last GUI has gone."""
from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Iterator

import pytest

from pdbridge import autostart
from pdbridge.config import PROJECT_ROOT, project_env
from pdbridge.ticket import read_ticket, ticket_path


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("HOME", str(tmp_path))
    return tmp_path


@pytest.fixture
def sleeper() -> Iterator:
    procs: list[subprocess.Popen] = []

    def make() -> subprocess.Popen:
        procs.append(subprocess.Popen(["sleep", "60"]))
        return procs[-1]

    yield make
    for p in procs:
        p.kill()
        p.wait()


def test_first_gui_keeps_later_ones_join(home: Path, sleeper) -> None:
    reg = autostart.Registry(45001)
    gui1, gui2 = sleeper(), sleeper()
    assert autostart.join_or_keep(45001, gui1.pid, reg) == "keeper"
    keeper = subprocess.Popen(["sleep", "60"])  # another process now plays the keeper
    try:
        with reg.locked() as state:
            state.keeper = keeper.pid
        assert autostart.join_or_keep(45001, gui2.pid, reg) == "joined"
        with reg.locked() as state:
            assert state.guis == [gui1.pid, gui2.pid]
    finally:
        keeper.kill()
        keeper.wait()
    # a dead keeper's file is not trusted: the next GUI becomes the keeper
    assert autostart.join_or_keep(45001, gui2.pid, reg) == "keeper"


def test_a_hub_started_by_hand_is_left_alone(home: Path, sleeper) -> None:
    hub = sleeper()
    path = ticket_path(45002)
    path.parent.mkdir(parents=True)
    path.write_text(f"state up;\nrun r1;\npid {hub.pid};\n")
    assert autostart.join_or_keep(45002, sleeper().pid, autostart.Registry(45002)) == "manual"
    hub.kill()
    hub.wait()
    assert autostart.join_or_keep(45002, sleeper().pid, autostart.Registry(45002)) == "keeper"


def test_keep_restarts_a_dead_hub_and_stops_it_after_the_last_gui(home: Path, sleeper) -> None:
    reg = autostart.Registry(45003)
    gui = sleeper()
    assert autostart.join_or_keep(45003, gui.pid, reg) == "keeper"
    started: list[subprocess.Popen] = []
    ticks = 0

    def start() -> subprocess.Popen:
        started.append(subprocess.Popen(["sleep", "60"]))
        return started[-1]

    def tick(_: float) -> None:
        nonlocal ticks
        ticks += 1
        if ticks == 2:
            started[0].kill()  # the hub crashes
            started[0].wait()
        if ticks == 4:
            gui.kill()  # the student quits Pd
            gui.wait()

    autostart.keep(45003, reg, start, sleep=tick)
    assert len(started) == 2 and started[1].poll() is not None  # restarted once, then stopped
    assert not reg.path.exists()


def test_the_real_hub_comes_and_goes_with_the_gui(home: Path, sleeper) -> None:
    gui = sleeper()
    env = project_env(HOME=str(home))
    keeper = subprocess.Popen([sys.executable, "-m", "pdbridge", "autostart", "--gui-pid", str(gui.pid),
                               "--port", "0"], cwd=PROJECT_ROOT, env=env)
    # port 0: the hub picks a free port; find its ticket
    deadline = time.monotonic() + 30
    tickets: list[Path] = []
    while time.monotonic() < deadline and not tickets:
        tickets = [p for p in (home / ".local/state/pdbridge").glob("hub-*.txt")
                   if read_ticket(p).get("state") == "up" and not p.name.endswith("41750.txt")]
        time.sleep(0.1)
    assert tickets, "the keeper's hub wrote no ticket"
    hub_pid = int(float(read_ticket(tickets[0])["pid"]))
    assert autostart.pid_alive(hub_pid)
    gui.kill()
    gui.wait()
    assert keeper.wait(20) == 0
    assert not autostart.pid_alive(hub_pid) and not tickets[0].exists()
    assert not (home / ".local/state/pdbridge/autostart-0.json").exists()
