"""The worker slot's policy, against a fake hub: start on demand, one at a time, timeouts, cancel,
death and restart, a missing environment."""
import asyncio
import sys
from pathlib import Path

import pytest

from pdbridge import supervisor
from pdbridge.config import WorkerConfig
from pdbridge.request import Request
from pdbridge.supervisor import WorkerSlot


class Conn:
    closed = False


class FakeHub:
    """Records what the slot asks of the hub; its 'worker' is a process that sleeps."""

    def __init__(self) -> None:
        self.spawned: list[asyncio.subprocess.Process] = []
        self.sent: list[tuple[str, object]] = []
        self.dispatched: list[Request] = []
        self.ended: list[tuple[str, object]] = []
        self.forgotten = 0

    async def spawn(self, slot, identity):
        proc = await asyncio.create_subprocess_exec(sys.executable, "-c", "import time; time.sleep(60)",
                                                    stdout=asyncio.subprocess.PIPE)
        self.spawned.append(proc)
        return proc

    def send(self, slot, msg_type, content=None, parent=None):
        self.sent.append((msg_type, parent))

    def dispatch(self, slot, req):
        self.dispatched.append(req)

    def conclude(self, req, ending):
        req.ended = True
        self.ended.append((req.selector, ending))

    def refine(self, slot, req):
        pass

    def forget(self, slot):
        self.forgotten += 1

    def console(self, slot, text):
        pass


def make_slot(tmp_path: Path, python: str = sys.executable) -> tuple[FakeHub, WorkerSlot]:
    host = FakeHub()
    config = WorkerConfig("fake", "core", Path(python), "workers.fake", "env-core")
    return host, WorkerSlot(host, config, tmp_path)


async def started(host: FakeHub, slot: WorkerSlot, timeouts: dict) -> None:
    while not host.spawned:
        await asyncio.sleep(0.01)
    slot.on_hello(slot.identity, {"messages": {k: {"timeout": v} for k, v in timeouts.items()}}, spawned=True)
    await asyncio.sleep(0.01)


def test_requests_run_one_at_a_time_in_arrival_order(tmp_path):
    async def main():
        host, slot = make_slot(tmp_path)
        conn = Conn()
        first, second = Request(conn, "a", []), Request(conn, "b", [])
        slot.submit(first)
        slot.submit(second)
        await started(host, slot, {"a": None, "b": None})
        assert host.dispatched == [first]
        slot.finish(first)
        assert host.dispatched == [first, second]
        await slot.stop()
    asyncio.run(main())


def test_a_timeout_asks_first_then_restarts_the_worker(tmp_path, monkeypatch):
    monkeypatch.setattr(supervisor, "TIMEOUT_GRACE_S", 0.05)
    async def main():
        host, slot = make_slot(tmp_path)
        req = Request(Conn(), "slow", [])
        slot.submit(req)
        await started(host, slot, {"slow": 0.05})
        await asyncio.sleep(0.3)
        assert ("cancel", req.msg_id) in host.sent
        assert host.ended and "timed out after 0.05 s and did not stop" in host.ended[0][1]
        assert host.spawned[0].returncode is not None  # killed
        slot.submit(Request(Conn(), "next", []))  # the next request starts a fresh worker
        await asyncio.sleep(0.2)
        assert len(host.spawned) == 2
        await slot.stop()
    asyncio.run(main())


def test_cancel_ends_queued_requests_and_asks_the_running_one(tmp_path):
    async def main():
        host, slot = make_slot(tmp_path)
        mine, other = Conn(), Conn()
        running, queued, theirs = Request(mine, "a", []), Request(mine, "b", []), Request(other, "c", [])
        for r in (running, queued, theirs):
            slot.submit(r)
        await started(host, slot, {"a": None, "b": None, "c": None})
        slot.cancel(mine)
        assert host.ended == [("b", ["cancelled", "b"])]
        assert ("cancel", running.msg_id) in host.sent
        assert list(slot.queue) == [theirs]
        await slot.stop()
    asyncio.run(main())


def test_a_dead_worker_fails_only_its_request_and_restarts(tmp_path):
    async def main():
        host, slot = make_slot(tmp_path)
        running, waiting = Request(Conn(), "a", []), Request(Conn(), "b", [])
        slot.submit(running)
        slot.submit(waiting)
        await started(host, slot, {"a": None, "b": None})
        host.spawned[0].kill()
        await asyncio.sleep(0.2)
        assert host.ended[0][0] == "a" and "worker died (killed by SIGKILL)" in host.ended[0][1]
        assert len(host.spawned) == 2 and host.forgotten == 1
        await started(host, slot, {"a": None, "b": None})
        assert host.dispatched[-1] is waiting
        await slot.stop()
    asyncio.run(main())


def test_a_missing_environment_says_how_to_install_it(tmp_path):
    async def main():
        host, slot = make_slot(tmp_path, python="/nonexistent/python")
        slot.submit(Request(Conn(), "load", []))
        await asyncio.sleep(0.05)
        assert "make env-core" in host.ended[0][1] and not host.spawned
    asyncio.run(main())


def test_a_worker_started_by_hand_is_dead_after_a_silent_second(tmp_path):
    async def main():
        host, slot = make_slot(tmp_path)
        slot.on_hello(b"remote-1", {"messages": {"a": {"timeout": None}}}, spawned=False)
        req = Request(Conn(), "a", [])
        slot.submit(req)
        assert host.dispatched == [req]
        slot.check_silence(slot.last_heard + supervisor.REMOTE_SILENCE_S + 0.1)
        assert "no heartbeat" in host.ended[0][1]
    asyncio.run(main())


def test_the_queue_is_bounded(tmp_path, monkeypatch):
    monkeypatch.setattr(supervisor, "MAX_QUEUE", 2)
    async def main():
        host, slot = make_slot(tmp_path)
        slot.on_hello(b"remote-1", {"messages": {}}, spawned=False)
        for name in "abcd":
            slot.submit(Request(Conn(), name, []))
        assert [e[0] for e in host.ended] == ["d"] and "2 requests are already waiting" in host.ended[0][1]
    asyncio.run(main())


@pytest.fixture(autouse=True)
def _quiet_logs(caplog):
    caplog.set_level("ERROR")
