"""``pdbridge autostart``: a hub runs whenever Pd's GUI does, however the student started Pd.

The installer's Pd GUI plugin (install/pdbridge-plugin.tcl) runs ``pdbridge autostart --gui-pid
<its own pid>`` each time Pd's GUI starts - from the menu, a terminal, or a double-click on a
patch. The first such call becomes the *keeper*: it starts ``pdbridge serve`` (which writes the
ticket Pd's objects read), restarts it if it dies, and stops it once every GUI it serves has quit,
so no hub and no multi-GB model worker is left running after the student closes Pd. A second Pd
only adds its GUI to the keeper's list. A hub someone started by hand (``pdbridge serve``,
``pdbridge open``) is left alone.

Why a GUI plugin and not a systemd socket unit, with the measurements: docs/install.md.
Nothing here widens who can talk to the hub: the keeper, the hub and the plugin all run as the
user, and the hub keeps its per-run ticket (mode 600) exactly as when started by hand.
"""
from __future__ import annotations

import fcntl
import json
import os
import signal
import subprocess
import sys
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator, Optional

from .config import PROJECT_ROOT, STATE_DIR, project_env
from .ticket import read_ticket, ticket_dir, ticket_path

POLL_S = 1.0
STOP_WAIT_S = 10.0
RESTARTS_PER_MINUTE = 5


def pid_alive(pid: int) -> bool:
    """Whether a process with this pid exists (and is not a zombie) - ours or anyone's."""
    if pid <= 0:
        return False
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return True


@dataclass
class KeeperState:
    """``autostart-<port>.json`` beside the ticket: the keeper's pid and the GUIs it serves."""
    keeper: int = 0
    guis: list[int] = field(default_factory=list)


class Registry:
    """The keeper state for one port, changed only under an exclusive lock (two Pds may start at once)."""

    def __init__(self, port: int, folder: Optional[Path] = None) -> None:
        self.folder = folder or ticket_dir()
        self.path = self.folder / f"autostart-{port}.json"
        self.lock_path = self.folder / f"autostart-{port}.lock"

    @contextmanager
    def locked(self) -> Iterator[KeeperState]:
        """The current state, written back when the block ends (removed when nobody is left)."""
        self.folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        with open(self.lock_path, "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                data = json.loads(self.path.read_text())
                state = KeeperState(int(data.get("keeper", 0)), [int(p) for p in data.get("guis", [])])
            except (OSError, ValueError):
                state = KeeperState()
            yield state
            if state.keeper and pid_alive(state.keeper):
                tmp = self.path.with_suffix(".tmp")
                tmp.write_text(json.dumps({"keeper": state.keeper, "guis": state.guis}))
                tmp.replace(self.path)
            else:
                self.path.unlink(missing_ok=True)

    def release(self) -> None:
        """The keeper is done: its state file goes (the lock file stays, so that two processes can
        never lock two different files; the uninstaller removes it)."""
        with self.locked() as state:
            state.keeper = 0


def other_hub_pid(port: int, ours: Optional[int] = None) -> Optional[int]:
    """The pid of a live hub on ``port`` that this keeper did not start, from the port's ticket."""
    fields = read_ticket(ticket_path(port))
    if fields.get("state") != "up":
        return None
    try:
        pid = int(float(fields.get("pid", "0")))
    except ValueError:
        return None
    return pid if pid != ours and pid_alive(pid) else None


def join_or_keep(port: int, gui: int, registry: Registry) -> str:
    """Register ``gui``: "joined" a running keeper, "manual" (a hub not started by a keeper runs),
    or "keeper" (this process must start and keep the hub)."""
    with registry.locked() as state:
        if state.keeper and state.keeper != os.getpid() and pid_alive(state.keeper):
            if gui not in state.guis:
                state.guis.append(gui)
            return "joined"
        if other_hub_pid(port) is not None:
            return "manual"
        state.keeper, state.guis = os.getpid(), [gui]
        return "keeper"


def live_guis(registry: Registry) -> list[int]:
    """The GUIs still running (the dead are dropped from the state file)."""
    with registry.locked() as state:
        state.guis = [pid for pid in state.guis if pid_alive(pid)]
        if not state.guis:
            state.keeper = 0  # leaving the block removes the file: a new Pd now starts its own keeper
        return list(state.guis)


def hub_command(port: int) -> list[str]:
    return [sys.executable, "-m", "pdbridge", "serve", "--port", str(port)]


def keep(port: int, registry: Registry, start: Callable[[], subprocess.Popen],
         sleep: Callable[[float], None] = time.sleep) -> None:
    """Run the hub while any registered GUI lives; restart it when it dies (at most
    RESTARTS_PER_MINUTE a minute, so a hub that cannot start does not spin); stop it at the end."""
    hub: Optional[subprocess.Popen] = None
    starts: list[float] = []
    try:
        while live_guis(registry):
            if hub is None or hub.poll() is not None:
                recent = [t for t in starts if time.monotonic() - t < 60]
                if other_hub_pid(port, hub.pid if hub else None) is None and len(recent) < RESTARTS_PER_MINUTE:
                    hub = start()
                    starts = recent + [time.monotonic()]
            sleep(POLL_S)
    finally:
        if hub is not None and hub.poll() is None:
            hub.send_signal(signal.SIGTERM)  # the hub retires its ticket and stops its workers
            try:
                hub.wait(STOP_WAIT_S)
            except subprocess.TimeoutExpired:
                hub.kill()
                hub.wait()
        registry.release()


def run_autostart(port: int, gui: int) -> int:
    """The ``pdbridge autostart`` command (what the Pd GUI plugin runs)."""
    registry = Registry(port)
    role = join_or_keep(port, gui, registry)
    if role != "keeper":
        return 0
    try:
        os.setsid()  # a Ctrl-C in Pd's terminal reaches Pd; the keeper then sees its GUI go and stops the hub
    except OSError:
        pass  # already a session leader
    log = STATE_DIR / "logs" / "hub-autostart.log"
    log.parent.mkdir(parents=True, exist_ok=True)

    def start() -> subprocess.Popen:
        with open(log, "ab") as out:
            return subprocess.Popen(hub_command(port), stdin=subprocess.DEVNULL, stdout=out, stderr=out,
                                    cwd=PROJECT_ROOT, env=project_env())

    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))  # stop the hub on the way out (keep's finally)
    keep(port, registry, start)
    return 0
