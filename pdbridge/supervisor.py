"""One model's worker: start it on demand, queue requests, enforce timeouts, notice death, restart.

Requests for a model run one at a time, in arrival order, whichever patch sent them. A worker that
dies (or is killed after a timeout) fails only the request it was running; the queue goes on with a
fresh worker, so the next request restarts it. The slot decides policy and talks to the rest of the
hub only through :class:`SlotHost` (as jupyter_client's restarter does through callbacks), so it can
be tested against a fake.
"""
from __future__ import annotations

import asyncio
import collections
import logging
import time
import uuid
from pathlib import Path
from typing import Any, Optional, Protocol

from pdwire.specs import DEFAULT_TIMEOUT_S

from . import outcome
from .config import WorkerConfig
from .launcher import exit_description
from .logs import RotatingLog
from .request import Request

log = logging.getLogger("pdbridge.hub")

START_TIMEOUT_S = 180.0
"""Importing TensorFlow and building a graph on 2 slow cores can take a minute."""
CANCEL_GRACE_S = 2.0
TIMEOUT_GRACE_S = 1.0
REMOTE_SILENCE_S = 1.0
LOG_LINES_PER_S = 10
MAX_QUEUE = 8192
"""Requests waiting for one model, from all patches together."""


class SlotHost(Protocol):
    """What a slot needs from the hub."""

    async def spawn(self, slot: "WorkerSlot", identity: str) -> asyncio.subprocess.Process: ...
    def send(self, slot: "WorkerSlot", msg_type: str, content: Optional[dict[str, Any]] = None,
             parent: Optional[str] = None) -> None: ...
    def dispatch(self, slot: "WorkerSlot", req: Request) -> None: ...
    def conclude(self, req: Request, ending: outcome.Ending) -> None: ...
    def refine(self, slot: "WorkerSlot", req: Request) -> None: ...
    def forget(self, slot: "WorkerSlot") -> None: ...
    def console(self, slot: "WorkerSlot", text: str) -> None: ...


class WorkerSlot:
    def __init__(self, host: SlotHost, config: WorkerConfig, log_dir: Path) -> None:
        self.host = host
        self.config = config
        self.model = config.model
        self.identity: Optional[bytes] = None
        self.process: Optional[asyncio.subprocess.Process] = None
        self.remote = False
        self.ready = asyncio.Event()
        self.hello: dict[str, Any] = {}
        self.queue: collections.deque[Request] = collections.deque()
        self.current: Optional[Request] = None
        self.last_heard = 0.0
        self.log_path = log_dir / f"{self.model}.log"
        self.log = RotatingLog(self.log_path)
        self._starting: Optional[asyncio.Task[None]] = None
        self._recent_output: collections.deque[str] = collections.deque(maxlen=6)
        self._log_budget = (0.0, 0)

    @property
    def messages(self) -> dict[str, Any]:
        """What the worker's hello said about each message (signature, timeout, arrays)."""
        return self.hello.get("messages", {})

    # -- queue -----------------------------------------------------------------------------------
    def submit(self, req: Request) -> None:
        if len(self.queue) >= MAX_QUEUE:
            self.host.conclude(req, outcome.refused(req.selector, f"{MAX_QUEUE} requests are already waiting for "
                                                    f"{self.model}; wait for some to finish"))
            return
        self.queue.append(req)
        self._pump()

    def _pump(self) -> None:
        if self.current is not None or not self.queue:
            return
        if not self.ready.is_set():
            if self._starting is None or self._starting.done():
                self._starting = asyncio.create_task(self._start_or_fail())
            return
        req = self.queue.popleft()
        if req.client.closed or req.ended:
            self._drop(req)
            self._pump()
            return
        self.current = req
        timeout = self.timeout_for(req.selector)
        if timeout is not None:
            req.timer = asyncio.get_running_loop().call_later(timeout, self._on_timeout, req, timeout)
        self.host.dispatch(self, req)

    def timeout_for(self, selector: str) -> Optional[float]:
        spec = self.messages.get(selector)
        return spec.get("timeout") if spec else DEFAULT_TIMEOUT_S

    def finish(self, req: Request) -> None:
        """The worker answered ``req``: free the worker for the next request."""
        if req.timer:
            req.timer.cancel()
        if self.current is req:
            self.current = None
        self._pump()

    def request_for(self, parent_id: Optional[str]) -> Optional[Request]:
        if self.current and parent_id == self.current.msg_id:
            return self.current
        return None

    def _drop(self, req: Request) -> None:
        """A queued request whose object went away (or that already ended): end it quietly."""
        if not req.ended:
            self.host.conclude(req, outcome.cancelled(req.selector))

    # -- cancel / timeout ------------------------------------------------------------------------
    def cancel(self, client: Any) -> None:
        """Drop ``client``'s queued requests and stop its running one."""
        for req in [r for r in self.queue if r.client is client]:
            self.queue.remove(req)
            self.host.conclude(req, outcome.cancelled(req.selector))
        req = self.current
        if req and req.client is client and not req.cancel_requested:
            req.cancel_requested = True
            self._stop(req, CANCEL_GRACE_S, "did not stop after cancel")

    def _on_timeout(self, req: Request, timeout: float) -> None:
        if self.current is req:
            req.timed_out = timeout
            self._stop(req, TIMEOUT_GRACE_S, f"timed out after {timeout:g} s")

    def _stop(self, req: Request, grace: float, why: str) -> None:
        """Ask the worker to cancel ``req``; kill it if ``req`` is still running ``grace`` s later."""
        self.host.send(self, "cancel", parent=req.msg_id)
        asyncio.get_running_loop().call_later(grace, self._kill_if_still, req, why)

    def _kill_if_still(self, req: Request, why: str) -> None:
        if self.current is not req:
            return
        log.warning("%s: '%s' %s: stopping the worker", self.model, req.selector, why)
        self.kill()

    def kill(self) -> None:
        if self.process and self.process.returncode is None:
            self.process.kill()
        elif self.remote:
            self.host.send(self, "shutdown")
            self.on_exit("stopped by the hub")

    # -- lifecycle -------------------------------------------------------------------------------
    async def _start_or_fail(self) -> None:
        """Start the worker; whatever goes wrong, the waiting requests hear about it."""
        try:
            await self._start()
        except Exception as exc:  # an unexpected failure must not leave requests waiting forever
            log.exception("starting the %s worker failed", self.model)
            self._fail_queue(f"could not start the {self.model} worker: {type(exc).__name__}: {exc}")

    async def _start(self) -> None:
        reason = self.config.missing_reason()
        if reason:
            self._fail_queue(reason)
            return
        identity = f"{self.model}-{uuid.uuid4().hex[:8]}"
        self.identity = identity.encode()
        self._recent_output.clear()
        log.info("starting %s worker (%s)", self.model, self.config.python)
        try:
            self.process = await self.host.spawn(self, identity)
        except OSError as exc:
            self._fail_queue(f"could not start the {self.model} worker: {exc}")
            return
        proc = self.process
        self.log.mark(f"{self.model} worker started (pid {proc.pid})")
        asyncio.create_task(self._read_output(proc))
        waiter = asyncio.create_task(proc.wait())
        ready = asyncio.create_task(self.ready.wait())
        done, _ = await asyncio.wait({waiter, ready}, timeout=START_TIMEOUT_S, return_when=asyncio.FIRST_COMPLETED)
        ready.cancel()
        if ready in done or self.ready.is_set():
            waiter.add_done_callback(lambda _: self.process is proc and self.on_exit(exit_description(proc.returncode)))
            self._pump()
            return
        if waiter not in done:
            proc.kill()
            await waiter
        tail = " | ".join(self._recent_output) or "no output"
        self.process = None
        self._fail_queue(f"the {self.model} worker did not start ({exit_description(proc.returncode)}): "
                         f"{tail} (log: {self.log_path})")

    def _fail_queue(self, text: str) -> None:
        while self.queue:
            req = self.queue.popleft()
            self.host.conclude(req, outcome.not_started(req.selector, text))

    def on_hello(self, identity: bytes, content: dict[str, Any], spawned: bool) -> None:
        self.identity = identity
        self.remote = not spawned
        self.hello = content
        self.last_heard = time.monotonic()
        self.ready.set()
        log.info("%s worker ready: pid %s on %s, device %s", self.model, content.get("pid"),
                 content.get("host"), content.get("device"))
        for req in self.queue:  # now their arrays are known
            self.host.refine(self, req)
        if self.remote:
            self._pump()

    def on_exit(self, how: str) -> None:
        """The worker is gone: end its running request (within the second), then carry on."""
        if not self.ready.is_set() and not self.remote:
            return
        self.ready.clear()
        self.identity = None
        self.process = None
        self.remote = False
        self.log.mark(f"{self.model} worker ended ({how})")
        req, self.current = self.current, None
        if req:
            if req.timer:
                req.timer.cancel()
            if req.timed_out is not None:
                self.host.conclude(req, outcome.timed_out(req.selector, req.timed_out, self.model, killed=True))
            elif req.cancel_requested:
                self.host.conclude(req, outcome.cancelled(req.selector))
            else:
                self.host.conclude(req, outcome.worker_died(req.selector, self.model, how, self.log_path))
        self.host.forget(self)
        self._pump()

    def check_silence(self, now: float) -> None:
        """Workers started by hand are declared dead after a second without a heartbeat."""
        if self.remote and self.ready.is_set() and now - self.last_heard > REMOTE_SILENCE_S:
            self.on_exit(f"no heartbeat for {REMOTE_SILENCE_S:g} s")

    async def stop(self) -> None:
        """The hub stops: ask the worker to exit, then make sure it has."""
        if self.identity:
            self.host.send(self, "shutdown")
        proc = self.process
        if proc and proc.returncode is None:
            try:
                await asyncio.wait_for(proc.wait(), 0.5)
            except asyncio.TimeoutError:
                proc.kill()
                await proc.wait()
        self.log.close()

    async def _read_output(self, proc: asyncio.subprocess.Process) -> None:
        assert proc.stdout is not None
        while line := await proc.stdout.readline():
            text = line.decode("utf-8", errors="replace").rstrip()
            self.log.write(text)
            if text:
                self._recent_output.append(text[:200])
                self._forward_log(text)

    def _forward_log(self, text: str) -> None:
        """Worker output, shortened and rate-limited, to the consoles of the patches using it."""
        second, count = self._log_budget
        now = time.monotonic()
        if now - second >= 1.0:
            second, count = now, 0
        count += 1
        self._log_budget = (second, count)
        if count <= LOG_LINES_PER_S:
            self.host.console(self, f"[{self.model}] {text if len(text) <= 160 else text[:157] + '...'}")
        elif count == LOG_LINES_PER_S + 1:
            self.host.console(self, f"[{self.model}] more output in {self.log_path}")
