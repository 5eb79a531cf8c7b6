"""Real-Pd test harness: a hub in a background thread, and Pd driven through tests/e2e/patches/driver.pd.

The driver patch wraps one pdbridge abstraction (created from the model name) and is steered over
its own FUDI socket: the test sends the messages a user's patch would send, reads what comes out
of the abstraction's outlets, and reads arrays back through ``soundfiler write -bytes 4`` (exact).
"""
from __future__ import annotations

import asyncio
import queue
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any, Optional, Sequence

import numpy as np
import soundfile

from pdbridge import fudi
from pdbridge.config import Config, load_config, project_env
from pdbridge.hub import Hub
from pdbridge.pd import HEADLESS_FLAGS, PATCH_DIR, find_pd
from pdbridge.ticket import read_ticket, ticket_path

DRIVER = Path(__file__).parent / "e2e" / "patches" / "driver.pd"
SHARED_FIXTURES = Path(__file__).resolve().parents[2] / "shared" / "fixtures"
"""Files made by the original implementations; shared/ sits beside the checkout (locally and in CI)."""


def require_worker(model: str) -> None:
    """Skip (saying how to fix it) when ``model``'s environment is not installed."""
    import pytest

    reason = load_config().worker(model).missing_reason()
    if reason:
        pytest.skip(reason)


class HubThread:
    """A real hub on its own event loop, so tests can talk to it from blocking code."""

    def __init__(self, config: Optional[Config] = None, log_dir: Optional[Path] = None, port: int = 0,
                 worker_bind: Optional[str] = None) -> None:
        self.loop = asyncio.new_event_loop()
        self.hub = Hub(config=config or load_config(), pd_port=port, log_dir=log_dir, worker_bind=worker_bind)
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.call(self.hub.start())

    def call(self, coro: Any, timeout: float = 60) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def run(self, fn: Any, *args: Any) -> Any:
        """Run a plain function on the hub's loop thread (its objects are not thread-safe)."""
        async def wrapper() -> Any:
            return fn(*args)
        return self.call(wrapper())

    @property
    def port(self) -> int:
        return self.hub.pd_port

    def stop(self) -> None:
        self.call(self.hub.stop())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)


class HubProcess:
    """A hub in its own process (``pdbridge serve``), as users run it: for benchmarks, whose own
    process holds a model (and its threads) that must not share an interpreter with the hub."""

    def __init__(self, work: Path, port: int = 0, **env: str) -> None:
        core = load_config().worker("diagnostics")  # the core environment, where the hub runs
        python = core.python if core.missing_reason() is None else Path(sys.executable)
        env = project_env(PDBRIDGE_LOG_DIR=str(work), **env)
        self.connection_file = work / "hub.json"
        self.proc = subprocess.Popen([str(python), "-m", "pdbridge", "serve", "--port", str(port),
                                      "--connection-file", str(self.connection_file)],
                                     env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        assert self.proc.stdout is not None
        first = self.proc.stdout.readline()  # "pdbridge hub: Pd port N; workers connect to ..."
        if "Pd port" not in first:
            self.proc.kill()
            raise RuntimeError(f"pdbridge serve did not start: {first!r}")
        self.port = int(first.split("Pd port")[1].split(";")[0])

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(20)
        except subprocess.TimeoutExpired:
            self.proc.kill()

    def kill(self) -> None:
        """SIGKILL, as the out-of-memory killer would: the hub cannot clean up after itself."""
        self.proc.kill()
        self.proc.wait(10)


def serves(port: int, tag: str) -> bool:
    """Whether a hub on ``port`` still answers a fresh Pd's ping (after something tried to hurt it)."""
    pd = PdDriver(port, "diagnostics", timeout=60)
    try:
        pd.send("ping", tag)
        return pd.result("pong") == [tag]
    finally:
        pd.close()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until(condition: Any, timeout: float = 10, what: str = "the condition") -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} did not happen within {timeout} s")
        time.sleep(0.02)


class RawClient:
    """The Pd side of the protocol spoken by hand, as a program other than [pdbridge.conn] would:
    for tests of what the hub does with odd, hostile or unread traffic."""

    def __init__(self, port: int, model: str = "diagnostics", token: Optional[str] = None,
                 authenticate: bool = True, timeout: float = 10, answer_checks: bool = True) -> None:
        """``answer_checks``: say every array exists when the hub asks (``_array ... check``), as Pd
        would for the arrays a test names; a client that does not answer is closed by the hub."""
        self.answer_checks = answer_checks
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self.decoder = fudi.Decoder(max_bytes=1 << 22)
        self.inbox: list[list[fudi.Atom]] = []
        self.seq = 0
        if authenticate:
            pd_token = token or read_ticket(ticket_path(port))["pd"]
            self.send("hello", model, 2, pd_token, 0)
            self.welcome = self.expect("_welcome")
            self.send("_ready", "/tmp")

    def send(self, *atoms: fudi.Atom) -> None:
        """One message; may be longer than Pd itself could send (the hub reads up to 64 KiB)."""
        self.sock.sendall((" ".join(fudi.encode_atom(a) for a in atoms) + ";\n").encode())

    def request(self, *atoms: fudi.Atom) -> None:
        self.seq += 1
        self.send("_req", self.seq, 0, *atoms)

    def read(self, timeout: float = 10) -> Optional[list[fudi.Atom]]:
        """The next message, or None when the hub closed the connection."""
        deadline = time.monotonic() + timeout
        while not self.inbox:
            self.sock.settimeout(max(0.01, deadline - time.monotonic()))
            try:
                data = self.sock.recv(65536)
            except socket.timeout:
                raise AssertionError("the hub said nothing") from None
            except ConnectionResetError:
                return None
            if not data:
                return None
            for msg in self.decoder.feed(data):
                if self.answer_checks and msg[0] == "_array" and msg[3:4] == ["check"]:
                    self.send("_array", msg[2], 0)
                else:
                    self.inbox.append(msg)
        return self.inbox.pop(0)

    def expect(self, head: str, timeout: float = 10) -> list[fudi.Atom]:
        seen = []
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            msg = self.read(max(0.01, deadline - time.monotonic()))
            if msg is None:
                raise AssertionError(f"closed before {head}; got {seen}")
            if msg[0] == head:
                return msg[1:]
            seen.append(msg)
        raise AssertionError(f"no {head}; got {seen}")

    def closed_by_hub(self, timeout: float = 5) -> bool:
        """True once the hub has closed the connection (anything it sent first is skipped)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                if self.read(max(0.01, deadline - time.monotonic())) is None:
                    return True
            except AssertionError:
                return False
        return False

    def close(self) -> None:
        self.sock.close()


class PdDriver:
    """One headless Pd process running the driver patch around ``[pdbridge.<model>]``."""

    def __init__(self, hub_port: int, model: str, timeout: float = 120.0, sleepgrain: Optional[float] = None,
                 extra_patches: Sequence[Path] = ()) -> None:
        """``extra_patches`` open beside the driver (e.g. one defining the arrays a test needs)."""
        pd = find_pd()
        if pd is None:
            raise RuntimeError("Pure Data is not installed (apt-get install puredata-core)")
        self.tmp = Path(tempfile.mkdtemp(prefix="pdbridge-test-"))
        self.server = socket.socket()
        self.server.bind(("127.0.0.1", 0))
        self.server.listen(1)
        self.server.settimeout(timeout)
        ctl_port = self.server.getsockname()[1]
        flags = list(HEADLESS_FLAGS) + (["-sleepgrain", str(sleepgrain)] if sleepgrain is not None else [])
        opens = [arg for patch in extra_patches for arg in ("-open", str(patch))]
        cmd = [str(pd), *flags, "-path", str(PATCH_DIR), *opens,
               "-send", f"drv-model symbol {model}; pdbridge-port {hub_port}; drv-port {ctl_port}", "-open", str(DRIVER)]
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        self.console_lines: list[str] = []
        self._console_thread = threading.Thread(target=self._read_console, daemon=True)
        self._console_thread.start()
        self.sock, _ = self.server.accept()
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.timeout = timeout
        self.inbox: "queue.Queue[list[fudi.Atom]]" = queue.Queue()
        self.connected: "queue.Queue[bool]" = queue.Queue()
        """connected 1 / connected 0 from the right outlet, in order."""
        self._reader = threading.Thread(target=self._read_socket, daemon=True)
        self._reader.start()

    # -- plumbing --------------------------------------------------------------------------------
    def _read_console(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.console_lines.append(line.decode("utf-8", errors="replace").rstrip())

    def _read_socket(self) -> None:
        decoder = fudi.Decoder(max_bytes=1 << 20)
        while True:
            try:
                data = self.sock.recv(65536)
            except OSError:
                return
            if not data:
                return
            for atoms in decoder.feed(data):
                if atoms[:2] == ["status", "connected"]:  # kept apart: tests of reconnecting read them
                    self.connected.put(bool(atoms[2]))
                elif atoms[:2] == ["status2", "connected"]:
                    pass
                else:
                    self.inbox.put(atoms)

    def _send(self, *atoms: fudi.Atom) -> None:
        self.sock.sendall(fudi.encode(atoms))

    @property
    def console(self) -> str:
        return "\n".join(self.console_lines)

    def wait_console(self, text: str, timeout: float = 10.0) -> bool:
        """True once ``text`` has appeared in Pd's console (stderr arrives on its own pipe, a bit later)."""
        deadline = time.monotonic() + timeout
        while text not in self.console:
            if time.monotonic() > deadline:
                return False
            time.sleep(0.02)
        return True

    # -- what a test does --------------------------------------------------------------------------
    def send(self, *atoms: fudi.Atom) -> None:
        """A message into the abstraction's inlet, as a message box would send it."""
        self._send("obj", *atoms)

    def send2(self, *atoms: fudi.Atom) -> None:
        """A message into the second object of the same model in this Pd (its outlets come back
        as ``result2`` / ``status2``)."""
        self._send("obj2", *atoms)

    def next(self, timeout: Optional[float] = None) -> list[fudi.Atom]:
        """The next thing out of an outlet: ['result', ...] (left) or ['status', ...] (right)."""
        try:
            return self.inbox.get(timeout=timeout or self.timeout)
        except queue.Empty:
            raise AssertionError(f"nothing from Pd within {timeout or self.timeout} s; console:\n{self.console}") from None

    def expect(self, outlet: str, selector: str, timeout: Optional[float] = None) -> list[fudi.Atom]:
        """Wait for ``selector`` on ``outlet`` ('result' or 'status'), skipping progress reports."""
        deadline = time.monotonic() + (timeout or self.timeout)
        seen = []
        while time.monotonic() < deadline:
            msg = self.next(max(0.01, deadline - time.monotonic()))
            if msg[:2] == [outlet, selector]:
                return msg[2:]
            if msg[:2] != ["status", "progress"]:
                seen.append(msg)
        raise AssertionError(f"no {outlet} {selector}; got {seen}; console:\n{self.console}")

    def result(self, selector: str, timeout: Optional[float] = None) -> list[fudi.Atom]:
        return self.expect("result", selector, timeout)

    def error(self, timeout: Optional[float] = None) -> str:
        """The text of the next error on the right outlet."""
        return " ".join(str(a) if isinstance(a, str) else f"{a:g}" for a in self.expect("status", "error", timeout))

    def read_array(self, name: str) -> np.ndarray:
        """The array's contents, exactly, via ``soundfiler write -bytes 4``."""
        path = self.tmp / f"{name}-{time.monotonic_ns()}.wav"
        self._send("write", str(path), name)
        n = self._expect_raw("written")
        data, _ = soundfile.read(path, dtype="float32", always_2d=False)
        assert len(data) == int(n[0]), (len(data), n)
        return data

    def write_array(self, name: str, samples: np.ndarray) -> None:
        """Fill (and resize) a driver array, as a user loading a sound file would."""
        path = self.tmp / f"in-{name}-{time.monotonic_ns()}.wav"
        soundfile.write(path, np.asarray(samples, dtype=np.float32), 44100, subtype="FLOAT")
        self._send("read", str(path), name)
        self._expect_raw("read")

    def _expect_raw(self, selector: str) -> list[fudi.Atom]:
        deadline = time.monotonic() + self.timeout
        while time.monotonic() < deadline:
            msg = self.next(max(0.01, deadline - time.monotonic()))
            if msg[0] == selector:
                return msg[1:]
        raise AssertionError(f"Pd did not report {selector}")

    def quit(self, code: int = 0) -> int:
        self._send("quit", code)
        try:
            return self.proc.wait(timeout=20)
        finally:
            self.close()

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self.sock.close()
        self.server.close()
