"""Who may talk to whom: the hub's ticket, which only its user can read, and the peer's uid.

A lab machine is shared, and the hub's TCP port on 127.0.0.1 is reachable by every local user. So
each side proves itself to the other with a secret that only the user's own processes can know:

- At start the hub writes a *ticket* — ``~/.local/state/pdbridge/hub-<port>.txt``, mode 600 in a
  700 folder — holding two random tokens made fresh for this run, a run id and its array folder.
  Vanilla Pd reads it with ``[text define]`` (Pd expands ``~``), which needs no compiled code.
- ``[pdbridge.conn]`` opens the connection and sends ``hello <model> <protocol> <pd-token> <pd-id>``.
  The hub closes any connection whose token is wrong (and, on Linux, whose peer is another uid,
  read from /proc/net/tcp), before saying a word: another user gets nothing executed, printed or
  learned.
- The hub answers ``_welcome <hub-token> <pd-id>``; the abstraction compares the token with its
  ticket and talks on (patch folder, requests, array files) only if it matches. A program squatting
  on the port while no hub runs learns at most a dead run's Pd token, which no later hub accepts,
  and cannot make Pd read or write anything: Pd builds every file path itself, from the ticket's
  array folder and a number.

The ticket's folder is fixed (``~/.local/state/pdbridge``, whatever ``$XDG_STATE_HOME`` says)
because Pd cannot read environment variables. For the default port the ticket stays after the hub
stops, saying ``state down``, so Pd can keep reading it (a missing file is an error in Pd's
console); tickets of other ports are removed.
"""
from __future__ import annotations

import ipaddress
import logging
import os
import secrets
import socket
import struct
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

from . import fudi

log = logging.getLogger("pdbridge.hub")

DEFAULT_PD_PORT = 41750


def ticket_dir() -> Path:
    return Path.home() / ".local" / "state" / "pdbridge"


def ticket_path(port: int) -> Path:
    return ticket_dir() / f"hub-{port}.txt"


def token() -> str:
    """A 128-bit secret as a Pd symbol (a letter first, so Pd never reads it as a number)."""
    return "t" + secrets.token_hex(16)


@dataclass(frozen=True)
class Ticket:
    port: int
    array_dir: Path
    run_folder: Path
    run: str = field(default_factory=lambda: "r" + secrets.token_hex(6))
    pd_token: str = field(default_factory=token)
    hub_token: str = field(default_factory=token)

    def lines(self) -> list[list[fudi.Atom]]:
        return [["state", "up"], ["run", self.run], ["pd", self.pd_token], ["hub", self.hub_token],
                ["dir", str(self.array_dir)], ["folder", str(self.run_folder)], ["pid", float(os.getpid())]]

    def write(self) -> Path:
        """Write the ticket atomically, readable by this user only."""
        path = ticket_path(self.port)
        _write_private(path, b"".join(fudi.encode(line) for line in self.lines()))
        return path

    def retire(self) -> None:
        """The hub stops: the default port's ticket says down; any other port's goes."""
        retire_ticket(self.port)


def retire_ticket(port: int) -> None:
    path = ticket_path(port)
    if port == DEFAULT_PD_PORT:
        _write_private(path, fudi.encode(["state", "down"]))
    else:
        path.unlink(missing_ok=True)


def read_ticket(path: Path) -> dict[str, str]:
    """A ticket's fields by name (``state``, ``run``, ``folder``, ...); empty if unreadable."""
    fields: dict[str, str] = {}
    try:
        data = path.read_bytes()
    except OSError:
        return fields
    try:
        for atoms in fudi.Decoder().feed(data):
            if len(atoms) >= 2:
                fields[str(atoms[0])] = atoms[1] if isinstance(atoms[1], str) else f"{atoms[1]:g}"
    except fudi.FudiError:
        return {}
    return fields


def _write_private(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    os.chmod(path.parent, 0o700)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    os.replace(tmp, path)


def peer_uid(sock: socket.socket) -> Optional[int]:
    """The uid owning the other end of a loopback TCP connection (Linux: /proc/net/tcp); None where
    it cannot be told (another system), in which case the tokens alone decide."""
    if not sys.platform.startswith("linux") or sock.family != socket.AF_INET:
        return None
    try:
        local = sock.getsockname()
        peer = sock.getpeername()
    except OSError:
        return None
    key = (_hex4(peer[0], peer[1]), _hex4(local[0], local[1]))
    try:
        with open("/proc/net/tcp", encoding="ascii") as f:
            next(f)
            for line in f:
                parts = line.split()
                # the peer's own socket: its local address is our peer, its remote address is us
                if (parts[1], parts[2]) == key:
                    return int(parts[7])
    except (OSError, ValueError, IndexError, StopIteration):
        return None
    return None


def _hex4(host: str, port: int) -> str:
    """An address as /proc/net/tcp writes it: the IPv4 address as a little-endian word, then the port."""
    packed = ipaddress.IPv4Address(host).packed
    return f"{struct.unpack('<I', packed)[0]:08X}:{port:04X}"
