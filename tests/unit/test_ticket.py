"""The hub's ticket and run folder: private files, what Pd reads, and cleaning up after dead hubs."""
import fcntl
import os
import socket
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from pdbridge import runfolder, ticket
from pdbridge.runfolder import RunFolder, is_dead, remove_stale


@pytest.fixture
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    return tmp_path


def test_the_ticket_is_private_and_readable_by_pd(home, tmp_path):
    t = ticket.Ticket(5555, tmp_path / "arrays", tmp_path)
    path = t.write()
    assert path == home / ".local/state/pdbridge/hub-5555.txt"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600 and stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    fields = ticket.read_ticket(path)
    assert fields["state"] == "up" and fields["pd"] == t.pd_token and fields["hub"] == t.hub_token
    assert fields["dir"] == str(tmp_path / "arrays") and t.pd_token != t.hub_token
    assert t.pd_token[0].isalpha() and t.run[0].isalpha()  # Pd must read them as symbols
    t.retire()
    assert not path.exists()
    ticket.Ticket(ticket.DEFAULT_PD_PORT, tmp_path, tmp_path).write()
    ticket.retire_ticket(ticket.DEFAULT_PD_PORT)
    assert ticket.read_ticket(ticket.ticket_path(ticket.DEFAULT_PD_PORT)) == {"state": "down"}


def test_the_peer_uid_of_a_loopback_connection():
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()
    client = socket.create_connection(server.getsockname())
    accepted, _ = server.accept()
    try:
        assert ticket.peer_uid(accepted) == os.getuid()
    finally:
        for s in (client, accepted, server):
            s.close()


def test_a_run_folder_is_removed_only_when_its_hub_is_gone(home, tmp_path, monkeypatch):
    monkeypatch.setattr(runfolder, "_scratch_parent", lambda: tmp_path)
    monkeypatch.setattr(runfolder.tempfile, "gettempdir", lambda: str(tmp_path))
    alive = RunFolder(tmp_path)
    assert not is_dead(alive.root)
    dead = Path(subprocess.run([sys.executable, "-c", f"""
import os, sys, tempfile, fcntl
root = tempfile.mkdtemp(prefix="pdbridge-", dir={str(tmp_path)!r})
fd = os.open(os.path.join(root, "lock"), os.O_RDWR | os.O_CREAT, 0o600)
fcntl.flock(fd, fcntl.LOCK_EX)
print(root)
os._exit(0)  # dies holding nothing: as a SIGKILLed hub
"""], capture_output=True, text=True).stdout.strip())
    t = ticket.Ticket(6001, dead / "arrays", dead)
    t.write()
    conn_dir = tmp_path / "conn"
    conn_dir.mkdir()
    (conn_dir / "hub-6001.json").write_text(f'{{"run_folder": "{dead}"}}')
    assert is_dead(dead)
    removed = remove_stale([conn_dir])
    assert dead in removed and not dead.exists() and alive.root.exists()
    assert not ticket.ticket_path(6001).exists() and not (conn_dir / "hub-6001.json").exists()
    alive.close()
    assert not alive.root.exists()
