"""The long reliability suite (``make test-reliability``, a few minutes): the bridge under load,
abuse and failure, with the figures printed. Run with ``-s`` to see them; the short versions of these
checks are in ``make test`` (tests/e2e)."""
from __future__ import annotations

import os
import random
import signal
import socket
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import zmq

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pdbridge.ticket import read_ticket, ticket_path  # noqa: E402
from pdharness import HubProcess, PdDriver, RawClient, free_port, serves  # noqa: E402
from pdwire.messages import Session, new_key  # noqa: E402


def rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def figure(name: str, value: object) -> None:
    print(f"FIGURE {name}: {value}", flush=True)


@pytest.fixture
def hub_process(tmp_path):
    port = free_port()
    hub = HubProcess(tmp_path, port=port)
    yield hub
    hub.stop()


def test_kill_9_of_a_worker_mid_request_reaches_pd_within_a_second(hub_process):
    pd = PdDriver(hub_process.port, "diagnostics", timeout=60)
    try:
        times = []
        for _ in range(5):
            pd.send("pid")
            pid = int(pd.result("pid")[0])
            pd.send("sleep", 30)
            assert pd.next()[:2] == ["status", "progress"]
            start = time.monotonic()
            os.kill(pid, signal.SIGKILL)
            assert "killed by SIGKILL" in pd.error(timeout=10)
            times.append(time.monotonic() - start)
            pd.send("ping", "recovered")
            assert pd.result("pong") == ["recovered"]
        figure("kill -9 of a worker -> error in Pd, seconds (5 tries)", [round(t, 3) for t in times])
    finally:
        pd.close()


def test_hub_killed_and_restarted_objects_reconnect_by_themselves(tmp_path):
    port = free_port()
    hub = HubProcess(tmp_path, port=port)
    pd = PdDriver(port, "diagnostics", timeout=60)
    try:
        assert pd.connected.get(timeout=20)
        pd.send("ping")
        pd.result("pong")
        times = []
        for _ in range(3):
            hub.kill()
            assert pd.connected.get(timeout=10) is False
            hub = HubProcess(tmp_path, port=port)
            start = time.monotonic()
            assert pd.connected.get(timeout=15) is True
            times.append(time.monotonic() - start)
            pd.send("ping", "again")
            assert pd.result("pong") == ["again"]
        figure("hub restarted -> objects reconnected, seconds (3 tries)", [round(t, 3) for t in times])
    finally:
        pd.close()
        hub.stop()


def malformed_fudi(rng: random.Random) -> bytes:
    kinds = [
        lambda: bytes(rng.getrandbits(8) for _ in range(rng.randint(1, 300))) + b";\n",
        lambda: b"x" * rng.randint(4000, 80_000),  # no terminator, past the limit
        lambda: b"\xff\xfe" * rng.randint(1, 50) + b";\n",
        lambda: b"_req " + str(rng.random()).encode() + b" nan inf -;\n",
        lambda: b"_array " + b"9" * rng.randint(1, 40) + b" x y z;\n",
        lambda: b"hello " * rng.randint(1, 100) + b";\n",
        lambda: b"_req 1 0 " + b"\\" * rng.randint(1, 30) + b";\n",
        lambda: b",,,;;;\\;\\,;\n",
        lambda: b"_req 1 0 echo " + b"a" * rng.randint(3000, 60_000) + b" b;\n",
        lambda: b"_pd 99999999;\n_ready;\n_cancel;\n",
    ]
    return rng.choice(kinds)()


def test_ten_thousand_malformed_fudi_messages_and_a_thousand_malformed_zeromq_frames(hub_process, tmp_path):
    rng = random.Random(1)
    before = rss_mb(hub_process.proc.pid)
    sent_pre = sent_post = 0
    for round_ in range(20):  # half before any hello (strangers), half after (a buggy client)
        stranger = RawClient(hub_process.port, authenticate=False)
        try:
            for _ in range(250):
                stranger.sock.sendall(malformed_fudi(rng))
                sent_pre += 1
        except OSError:
            pass  # closed for misbehaving, as it should be
        stranger.close()
        client = RawClient(hub_process.port)
        try:
            for _ in range(250):
                client.sock.sendall(malformed_fudi(rng))
                sent_post += 1
        except OSError:
            pass
        client.close()
    ctx = zmq.Context.instance()
    conn = read_ticket(ticket_path(hub_process.port))
    ipc = f"ipc://{conn['folder']}/workers.sock"
    forged = Session(new_key(), sender="diagnostics:x")
    frames_sent = 0
    for i in range(1000):
        sock = ctx.socket(zmq.DEALER)
        sock.setsockopt(zmq.LINGER, 0)
        sock.setsockopt(zmq.IDENTITY, f"x{i}".encode())
        sock.connect(ipc)
        choice = i % 4
        if choice == 0:
            sock.send_multipart([os.urandom(rng.randint(1, 2000)) for _ in range(rng.randint(1, 8))])
        elif choice == 1:
            sock.send_multipart(forged.serialize(forged.msg("hello", {"model": "diagnostics"})))
        elif choice == 2:
            sock.send_multipart([b"<PDB|MSG>", b"0" * 64, b"{", b"}"])
        else:
            sock.send_multipart([b"<PDB|MSG>", os.urandom(64), os.urandom(8 * 2**20)])  # 8 MiB junk
        frames_sent += 1
        sock.close()
    assert serves(hub_process.port, "alive")
    assert hub_process.proc.poll() is None
    after = rss_mb(hub_process.proc.pid)
    figure("malformed FUDI messages sent (before hello / after hello)", (sent_pre, sent_post))
    figure("malformed ZeroMQ messages sent", frames_sent)
    figure("hub memory before / after, MB", (round(before, 1), round(after, 1)))
    assert after - before < 150  # bounded: nothing of it is kept


def run_mixed(port: int, index: int, count: int, results: dict) -> None:
    """One Pd with two objects: a random mix of requests; every result checked for its place."""
    rng = random.Random(index)
    pd = PdDriver(port, "diagnostics", timeout=120)
    expected1: list[list] = []
    expected2: list[list] = []
    try:
        for i in range(count):
            kind = rng.choice(["pair", "ping", "count", "tone", "cross"])
            if kind == "pair":  # read after write on one object: the length says whether it is stale
                n = rng.randint(1, 5000)
                pd.send("noise", "drv-a", n, i)
                pd.send("echo", "drv-a", "drv-b")
                expected1 += [["result", "noise", "drv-a", float(n)], ["result", "echo", "drv-b", float(n)]]
            elif kind == "cross":  # written by one object, read by the other
                n = rng.randint(1, 5000)
                pd.send("noise", "drv-c", n, i)
                pd.send2("echo", "drv-c", "drv-b")
                expected1.append(["result", "noise", "drv-c", float(n)])
                expected2.append(["result2", "echo", "drv-b", float(n)])
            elif kind == "ping":  # a tag naming this Pd and request: a misrouted one would show
                pd.send("ping", f"pd{index}", i)
                expected1.append(["result", "pong", f"pd{index}", float(i)])
            elif kind == "count":
                n = rng.randint(0, 50)
                pd.send2("count", n)
                expected2.append(["result2", "count", *[float(k) for k in range(n)]])
            else:
                pd.send("tone", "drv-a", 440, 0.01, 8000)
                expected1.append(["result", "tone", "drv-a", 80.0])
        got1, got2 = [], []
        while len(got1) < len(expected1) or len(got2) < len(expected2):
            msg = pd.next(timeout=120)
            (got1 if msg[0] in ("result", "status") else got2).append(msg)
        results[index] = (expected1, got1, expected2, got2)
    except Exception as exc:  # reported by the test
        results[index] = exc
    finally:
        pd.close()


def test_four_pds_times_five_hundred_mixed_requests(hub_process):
    results: dict = {}
    threads = [threading.Thread(target=run_mixed, args=(hub_process.port, k, 500, results)) for k in range(4)]
    start = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join(600)
    lost = misrouted = out_of_order = stale = 0
    total = 0
    for k in range(4):
        outcome = results.get(k)
        assert not isinstance(outcome, Exception), outcome
        expected1, got1, expected2, got2 = outcome
        for expected, got in ((expected1, got1), (expected2, got2)):
            total += len(expected)
            lost += max(0, len(expected) - len(got))
            misrouted += sum(1 for m in got if m[:2] == ["result", "pong"] and m[2] != f"pd{k}")
            stale += sum(1 for e, g in zip(expected, got) if e[1] == "echo" and g[:2] == e[:2] and g != e)
            out_of_order += sum(1 for e, g in zip(expected, got) if g != e)
    figure("4 Pd x 500 mixed requests (results checked)", total)
    figure("lost / misrouted / out of order / stale reads", (lost, misrouted, out_of_order, stale))
    figure("seconds for all of it", round(time.monotonic() - start, 1))
    assert (lost, misrouted, out_of_order, stale) == (0, 0, 0, 0)
