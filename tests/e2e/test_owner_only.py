"""Only the hub's user drives it, both ways: another uid gets nothing executed or printed, a program
squatting on the port learns nothing useful and makes Pd touch no file, and the worker wire refuses
replays, messages passed off as another's, and (over TCP) anyone without the connection file's keys."""
from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import zmq

from pdbridge import fudi
from pdbridge.ticket import Ticket, read_ticket, ticket_path
from pdharness import HubThread, PdDriver, RawClient, free_port, wait_until
from pdwire.messages import Session

ROOT = Path(__file__).resolve().parents[2]
KNOWN = np.linspace(-0.5, 0.5, 300, dtype=np.float32)

CLIENT = r"""
import socket, sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=5)
s.sendall(("hello diagnostics 2 %s 0;\n_ready /tmp;\n_req 1 0 load /etc/hostname;\n" % sys.argv[2]).encode())
data = b""
try:
    while chunk := s.recv(4096):
        data += chunk
except (socket.timeout, ConnectionResetError):
    pass
print(repr(data))
"""


@pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("setpriv"), reason="needs root and setpriv to act as another user")
def test_another_user_is_refused_even_holding_the_token(hub, tmp_path):
    """nobody knows the Pd token (say it leaked): the hub still refuses it, unheard, by its uid."""
    token = read_ticket(ticket_path(hub.port))["pd"]
    before = hub.hub.refused.count
    out = subprocess.run(["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups", sys.executable,
                          "-c", CLIENT, str(hub.port), token], capture_output=True, text=True, timeout=30, cwd="/")
    assert out.stdout.strip() == "b''", out.stdout + out.stderr  # not a byte came back
    assert hub.hub.refused.count == before + 1
    assert not hub.run(lambda: hub.hub.slots["diagnostics"].current)


def test_a_connection_without_the_ticket_is_refused_unheard(hub, pd_driver):
    pd = pd_driver("diagnostics")
    before = hub.hub.refused.count
    stranger = RawClient(hub.port, authenticate=False)
    stranger.send("hello", "diagnostics", 2, "t" + "0" * 32, 0)
    stranger.send("_ready", "/tmp")
    stranger.send("_req", 1, 0, "load", "/etc/hostname")
    assert stranger.closed_by_hub()
    assert hub.hub.refused.count == before + 1
    garbage = RawClient(hub.port, authenticate=False)
    garbage.sock.sendall(b"x" * 10_000)  # no hello at all: closed after the first 4 KiB
    assert garbage.closed_by_hub()
    pd.send("ping", "fine")
    assert pd.result("pong") == ["fine"]
    assert "stranger" not in pd.console and "hostname" not in pd.console


class FakeHub(threading.Thread):
    """A program holding the port while no hub runs: it reads what Pd says and answers like a hub
    would, but without the hub token (it cannot read the user's ticket)."""

    def __init__(self, port: int, send_welcome: bool) -> None:
        super().__init__(daemon=True)
        self.server = socket.socket()
        self.server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.server.bind(("127.0.0.1", port))
        self.server.listen()
        self.send_welcome = send_welcome
        self.heard: list[list[fudi.Atom]] = []

    def run(self) -> None:
        self.server.settimeout(5)
        threads = []
        try:
            while True:  # every pdbridge object of the patch connects
                conn, _ = self.server.accept()
                threads.append(threading.Thread(target=self.serve, args=(conn,), daemon=True))
                threads[-1].start()
        except (socket.timeout, OSError):
            pass
        for t in threads:
            t.join(5)
        self.server.close()

    def serve(self, conn: socket.socket) -> None:
        decoder = fudi.Decoder()
        conn.settimeout(5)
        try:
            while data := conn.recv(65536):
                for msg in decoder.feed(data):
                    self.heard.append(msg)
                    if msg[0] == "hello":
                        lines = [["_welcome", "tnottheticket", 77]] if self.send_welcome else []
                        lines += [["_array", "drv-a", 1, "read", 5], ["_array", "drv-b", 2, "write", 6],
                                  ["_ok", "loaded", 1], ["error", "your", "hub", "is", "mine"]]
                        conn.sendall(b"".join(fudi.encode(line) for line in lines))
        except (socket.timeout, OSError):
            pass
        conn.close()


@pytest.mark.parametrize("send_welcome", [True, False], ids=["wrong-welcome", "no-welcome"])
def test_a_program_squatting_on_the_port_makes_pd_touch_no_file(tmp_path, send_welcome):
    port = free_port()
    folder = tmp_path / "arrays"
    folder.mkdir()
    (folder / "5.wav").write_bytes(b"RIFF not a sound")  # what Pd would read if it obeyed
    stale = Ticket(port, folder, tmp_path)  # a dead hub's ticket, still saying up
    stale.write()
    fake = FakeHub(port, send_welcome)
    fake.start()
    pd = PdDriver(port, "diagnostics", timeout=30)
    try:
        pd.write_array("drv-a", KNOWN)
        pd.write_array("drv-b", KNOWN)
        pd.send("ping")
        fake.join(20)
        assert {m[0] for m in fake.heard} == {"hello"}  # no _ready (no patch folder), no request
        assert fake.heard[0][:3] == ["hello", "diagnostics", 2]
        if send_welcome:
            assert pd.wait_console("is held by a program that is not your pdbridge hub")
        assert sorted(p.name for p in folder.iterdir()) == ["5.wav"]  # nothing written by Pd
        assert np.array_equal(pd.read_array("drv-a"), KNOWN) and np.array_equal(pd.read_array("drv-b"), KNOWN)
        assert "your hub is mine" not in pd.console
    finally:
        pd.close()
        ticket_path(port).unlink(missing_ok=True)


def signed_worker(hub: HubThread, identity: str) -> tuple[zmq.Socket, Session]:
    session = Session(hub.hub.key, sender=f"diagnostics:{identity}")
    sock = zmq.Context.instance().socket(zmq.DEALER)
    sock.setsockopt(zmq.IDENTITY, identity.encode())
    sock.setsockopt(zmq.LINGER, 0)
    sock.connect(hub.hub.local_worker_url)
    return sock, session


def test_replayed_and_misattributed_worker_messages_are_refused(tmp_path):
    hub = HubThread(log_dir=tmp_path)
    try:
        real, session = signed_worker(hub, "diagnostics-real")
        hello = [bytes(f) for f in session.serialize(session.msg("hello", {"model": "diagnostics", "messages": {}}))]
        real.send_multipart(hello)
        slot = hub.hub.slots["diagnostics"]
        wait_until(lambda: hub.run(slot.ready.is_set), what="the worker's hello")
        real.close()
        hub.run(slot.on_exit, "gone")  # the real worker went away
        before = hub.hub.dropped.count
        other, _ = signed_worker(hub, "diagnostics-other")  # the captured frames under another name
        other.send_multipart(hello)
        wait_until(lambda: hub.hub.dropped.count == before + 1, what="the misattributed copy being dropped")
        time.sleep(0.5)  # the real worker's connection is gone from the hub's socket
        ghost, _ = signed_worker(hub, "diagnostics-real")  # the same identity, later: a replay
        ghost.send_multipart(hello)
        wait_until(lambda: hub.hub.dropped.count == before + 2, what="the replay being dropped")
        assert not hub.run(slot.ready.is_set)  # no ghost worker registered
        ghost.close()
        other.close()
    finally:
        hub.stop()


def test_a_worker_on_another_machine_connects_over_encrypted_tcp(tmp_path):
    hub = HubThread(log_dir=tmp_path, worker_bind="tcp://127.0.0.1:*")
    conn = tmp_path / "hub.json"
    hub.run(hub.hub.write_connection_file, conn)
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    remote = subprocess.Popen([sys.executable, "-m", "workers.diagnostics.worker", "--connect", hub.hub.worker_url,
                               "--connection-file", str(conn)], env=env, cwd=ROOT)
    try:
        slot = hub.hub.slots["diagnostics"]
        wait_until(lambda: hub.run(lambda: slot.remote and slot.ready.is_set()), timeout=60,
                   what="the TCP worker's hello")
        before = hub.hub.dropped.count
        plain = zmq.Context.instance().socket(zmq.DEALER)  # no CURVE keys: the handshake fails
        plain.setsockopt(zmq.LINGER, 0)
        plain.connect(hub.hub.worker_url)
        plain.send_multipart([b"x" * 1000], zmq.NOBLOCK)
        time.sleep(0.5)
        assert hub.hub.dropped.count == before  # it never got as far as sending a message
        plain.close()
        pd = PdDriver(hub.port, "diagnostics", timeout=60)
        try:
            pd.send("pid")
            assert int(pd.result("pid")[0]) == remote.pid
        finally:
            pd.close()
    finally:
        remote.terminate()
        remote.wait(10)
        hub.stop()
