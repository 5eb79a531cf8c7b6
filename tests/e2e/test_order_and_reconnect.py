"""Order, reconnection and cleanup, through real Pd: results in the order of requests, reads that
see every earlier write, objects that find a (re)started hub by themselves, nothing left behind."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from pdbridge.ticket import read_ticket, ticket_path
from pdharness import HubProcess, HubThread, PdDriver, free_port, serves, wait_until

ROOT = Path(__file__).resolve().parents[2]


def test_one_object_gets_its_results_in_order_and_never_reads_stale(pd_driver):
    """noise a L; echo a b; ping i — sent back to back without waiting: echo must see the noise
    just sent (its length tells), and every result comes in the order of the requests."""
    pd = pd_driver("diagnostics")
    lengths = [100 + 37 * i for i in range(40)]
    for i, n in enumerate(lengths):
        pd.send("noise", "drv-a", n, i)
        pd.send("echo", "drv-a", "drv-b")
        pd.send("ping", i)
    got = [pd.next() for _ in range(3 * len(lengths))]
    expected = []
    for i, n in enumerate(lengths):
        expected += [["result", "noise", "drv-a", float(n)], ["result", "echo", "drv-b", float(n)],
                     ["result", "pong", float(i)]]
    assert got == expected
    rng = np.random.default_rng(len(lengths) - 1)
    assert np.array_equal(pd.read_array("drv-b"), rng.uniform(-1, 1, lengths[-1]).astype(np.float32))


def test_a_read_sees_what_another_object_of_the_same_pd_wrote(pd_driver):
    """Object 1 writes drv-a, object 2 reads it at once: each read sees the write sent before it."""
    pd = pd_driver("diagnostics")
    lengths = [50 + 11 * i for i in range(30)]
    for n in lengths:
        pd.send("noise", "drv-a", n)
        pd.send2("echo", "drv-a", "drv-c")
    results = [pd.next() for _ in range(2 * len(lengths))]
    echoes = [m for m in results if m[0] == "result2"]
    assert echoes == [["result2", "echo", "drv-c", float(n)] for n in lengths]


def test_a_silent_connection_does_not_hold_the_model_for_long(pd_driver, hub):
    from pdharness import RawClient

    silent = RawClient(hub.port, answer_checks=False)
    silent.request("echo", "drv-a", "drv-b")  # the worker asks whether drv-b exists: no answer ever
    pd = pd_driver("diagnostics")
    pd.send("ping", "me")
    assert pd.result("pong", timeout=30) == ["me"]
    assert silent.closed_by_hub(timeout=10)


def test_a_client_that_never_reads_is_closed(hub):
    from pdharness import RawClient

    greedy = RawClient(hub.port)
    ids = hub.run(lambda: set(hub.hub.connections))
    for _ in range(60):  # ~600 KB of replies each, never read
        greedy.request("count", 100_000)
    wait_until(lambda: not hub.run(lambda: ids & set(hub.hub.connections)), timeout=60,
               what="closing a client that reads nothing")
    greedy.close()
    assert serves(hub.port, "still")


def close_wait_sockets(port: int) -> int:
    """Sockets of this machine on ``port`` in CLOSE-WAIT (state 08 in /proc/net/tcp)."""
    with open("/proc/net/tcp") as f:
        rows = [line.split() for line in f.readlines()[1:]]
    return sum(1 for r in rows if int(r[1].split(":")[1], 16) == port and r[3] == "08")


@pytest.mark.skipif(not Path("/proc/net/tcp").exists(), reason="needs Linux /proc")
def test_the_hub_closes_its_end_when_pd_goes(hub):
    drivers = [PdDriver(hub.port, "diagnostics", timeout=30) for _ in range(3)]
    for d in drivers:
        d.send("ping")
        d.result("pong")
        d.close()
    wait_until(lambda: close_wait_sockets(hub.port) == 0, timeout=10, what="the hub closing its sockets")


def test_objects_reconnect_when_the_hub_is_killed_and_started_again(tmp_path):
    port = free_port()
    first = HubProcess(tmp_path, port=port)
    pd = PdDriver(port, "diagnostics", timeout=60)
    try:
        assert pd.connected.get(timeout=20) is True
        pd.send("pid")
        worker = int(pd.result("pid")[0])
        run_folder = Path(read_ticket(ticket_path(port))["folder"])
        pd.send("sleep", 30)
        assert pd.next()[:2] == ["status", "progress"]
        first.kill()
        assert pd.connected.get(timeout=10) is False
        assert "stopped - 1 request(s) in progress were lost" in pd.error()
        wait_until(lambda: not _alive(worker), timeout=5, what="the worker dying with its hub")
        pd.send("ping", "nobody")
        assert "no pdbridge hub is running" in pd.error()  # the dead hub's ticket is not tried twice
        second = HubProcess(tmp_path, port=port)
        try:
            assert not run_folder.exists()  # the new hub removed what the killed one left
            assert pd.connected.get(timeout=10) is True  # found by itself: nobody touched the patch
            pd.send("ping", "back")
            assert pd.result("pong") == ["back"]
        finally:
            second.stop()
        assert read_ticket(ticket_path(port)) == {}  # a hub on another port than the default leaves none
    finally:
        pd.close()


def test_pd_started_before_the_hub_connects_when_it_comes(tmp_path):
    port = free_port()
    ticket_path(port).unlink(missing_ok=True)
    pd = PdDriver(port, "diagnostics", timeout=60)
    try:
        pd.send("ping")
        assert f"no pdbridge hub is running on port {port}" in pd.error()
        hub = HubThread(log_dir=tmp_path, port=port)
        try:
            assert pd.connected.get(timeout=30) is True
            pd.send("ping", "now")
            assert pd.result("pong") == ["now"]
        finally:
            hub.stop()
    finally:
        pd.close()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    with open(f"/proc/{pid}/stat") as f:  # a zombie (not yet reaped) is dead too
        return f.read().split(")")[1].split()[0] != "Z"


def test_a_stopped_worker_does_not_outlive_its_hub(tmp_path):
    hub = HubProcess(tmp_path)
    pd = PdDriver(hub.port, "diagnostics", timeout=60)
    try:
        pd.send("pid")
        worker = int(pd.result("pid")[0])
        os.kill(worker, signal.SIGSTOP)
        hub.kill()
        wait_until(lambda: not _alive(worker), timeout=5, what="the stopped worker dying with its hub")
    finally:
        pd.close()


def test_killing_pdbridge_worker_leaves_nothing_running(lone_hub_file):
    hub, conn = lone_hub_file
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    proc = subprocess.Popen([sys.executable, "-m", "pdbridge", "worker", "diagnostics", "--connection-file", str(conn)],
                            env=env)
    slot = hub.hub.slots["diagnostics"]
    wait_until(lambda: hub.run(lambda: slot.ready.is_set()), timeout=60, what="the worker's hello")
    assert hub.run(lambda: slot.hello["pid"]) == proc.pid  # it became the worker: no child behind it
    proc.kill()
    proc.wait(10)
    wait_until(lambda: not hub.run(lambda: slot.ready.is_set()), timeout=5, what="the hub noticing")


@pytest.fixture
def lone_hub_file(tmp_path):
    h = HubThread(log_dir=tmp_path)
    conn = tmp_path / "hub.json"
    h.run(h.hub.write_connection_file, conn)
    yield h, conn
    h.stop()


def test_the_worker_side_imports_nothing_of_the_hub():
    code = ("import sys, workers.runtime, workers.runtime.jobrun, workers.diagnostics.worker; "
            "bad = [m for m in sys.modules if m == 'pdbridge' or m.startswith('pdbridge.')]; "
            "print(bad); sys.exit(1 if bad else 0)")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True,
                         env=dict(os.environ, PYTHONPATH=str(ROOT)))
    assert out.returncode == 0, out.stdout + out.stderr
