"""One model's worker: start it on demand, queue requests, enforce timeouts, notice death, restart.

Requests for a model run one at a time, in arrival order, whichever patch sent them. A worker that
dies (or is killed after a timeout) fails only the request it was running; the queue goes on with
a fresh worker, so the next request restarts it.
"""
from __future__ import annotations

import asyncio
import collections
import logging
import os
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Optional

from .config import STATE_DIR, WorkerConfig
from .launcher import exit_description, spawn_worker
from .pdclient import PdClient
from .wire import Message

if TYPE_CHECKING:  # pragma: no cover
    from .hub import Hub

log = logging.getLogger("pdbridge.hub")

START_TIMEOUT_S = 180.0
"""Importing TensorFlow and building a graph on 2 slow cores can take a minute."""
CANCEL_GRACE_S = 2.0
TIMEOUT_GRACE_S = 1.0
REMOTE_SILENCE_S = 1.0
DEFAULT_TIMEOUT_S = 300.0
LOG_LINES_PER_S = 10


@dataclass
class Job:
    client: PdClient
    selector: str
    atoms: list
    msg_id: str = field(default_factory=lambda: uuid.uuid4().hex)
    received: float = field(default_factory=time.monotonic)
    timed_out: Optional[float] = None
    cancel_requested: bool = False
    timer: Optional[asyncio.TimerHandle] = None


class WorkerSlot:
    def __init__(self, hub: "Hub", config: WorkerConfig) -> None:
        self.hub = hub
        self.config = config
        self.model = config.model
        self.identity: Optional[bytes] = None
        self.process: Optional[asyncio.subprocess.Process] = None
        self.remote = False
        self.ready = asyncio.Event()
        self.hello: dict[str, Any] = {}
        self.queue: collections.deque[Job] = collections.deque()
        self.current: Optional[Job] = None
        self.last_heard = 0.0
        self.log_path = hub.log_dir / f"{self.model}.log"
        self._starting: Optional[asyncio.Task[None]] = None
        self._recent_output: collections.deque[str] = collections.deque(maxlen=6)
        self._log_budget = (0.0, 0)

    # -- queue -----------------------------------------------------------------------------------
    def submit(self, job: Job) -> None:
        self.queue.append(job)
        self._pump()

    def _pump(self) -> None:
        if self.current is not None or not self.queue:
            return
        if not self.ready.is_set():
            if self._starting is None or self._starting.done():
                self._starting = asyncio.create_task(self._start_or_fail())
            return
        job = self.queue.popleft()
        if job.client.closed:
            self._pump()
            return
        self.current = job
        timeout = self.timeout_for(job.selector)
        if timeout is not None:
            job.timer = asyncio.get_running_loop().call_later(timeout, self._on_timeout, job, timeout)
        self.hub.dispatch(self, job)

    def timeout_for(self, selector: str) -> Optional[float]:
        spec = self.hello.get("messages", {}).get(selector)
        return spec.get("timeout") if spec else DEFAULT_TIMEOUT_S

    def finish(self, job: Job) -> None:
        """The worker answered ``job``: free the worker for the next request."""
        if job.timer:
            job.timer.cancel()
        if self.current is job:
            self.current = None
        self._pump()

    def job_for(self, msg: Message) -> Optional[Job]:
        if self.current and msg.parent_id == self.current.msg_id:
            return self.current
        return None

    # -- cancel / timeout ------------------------------------------------------------------------
    def cancel(self, client: PdClient, reason: str = "cancel") -> None:
        """Drop ``client``'s queued requests and stop its running one."""
        for job in [j for j in self.queue if j.client is client]:
            self.queue.remove(job)
            if reason == "cancel":
                client.send("cancelled", job.selector)
        job = self.current
        if job and job.client is client and not job.cancel_requested:
            job.cancel_requested = True
            self._stop(job, CANCEL_GRACE_S, "did not stop after cancel")

    def _on_timeout(self, job: Job, timeout: float) -> None:
        if self.current is job:
            job.timed_out = timeout
            self._stop(job, TIMEOUT_GRACE_S, f"timed out after {timeout:g} s")

    def _stop(self, job: Job, grace: float, why: str) -> None:
        """Ask the worker to cancel ``job``; kill it if ``job`` is still running ``grace`` s later."""
        self.hub.send_to_worker(self, self.hub.session.msg("cancel", parent=job.msg_id))
        asyncio.get_running_loop().call_later(grace, self._kill_if_still, job, why)

    def _kill_if_still(self, job: Job, why: str) -> None:
        if self.current is not job:
            return
        log.warning("%s: '%s' %s: stopping the worker", self.model, job.selector, why)
        self.kill()

    def kill(self) -> None:
        if self.process and self.process.returncode is None:
            self.process.kill()
        elif self.remote:
            self.hub.send_to_worker(self, self.hub.session.msg("shutdown"))
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
            self.process = await spawn_worker(self.config, self.hub.local_worker_url, self.hub.key, identity,
                                              self.hub.exchange.root)
        except OSError as exc:
            self._fail_queue(f"could not start the {self.model} worker: {exc}")
            return
        proc = self.process
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
            job = self.queue.popleft()
            job.client.error(f"{job.selector}: {text}")

    def on_hello(self, identity: bytes, content: dict[str, Any], spawned: bool) -> None:
        self.identity = identity
        self.remote = not spawned
        self.hello = content
        self.last_heard = time.monotonic()
        self.ready.set()
        log.info("%s worker ready: pid %s on %s, device %s", self.model, content.get("pid"),
                 content.get("host"), content.get("device"))
        if self.remote:
            self._pump()

    def on_exit(self, how: str) -> None:
        """The worker is gone: fail its running request (within the second), then carry on."""
        if not self.ready.is_set() and not self.remote:
            return
        self.ready.clear()
        self.identity = None
        self.process = None
        self.remote = False
        job, self.current = self.current, None
        if job:
            if job.timer:
                job.timer.cancel()
            if job.timed_out is not None:
                text = (f"{job.selector} timed out after {job.timed_out:g} s: the {self.model} worker was stopped "
                        f"and restarts on the next request")
            elif job.cancel_requested:
                job.client.send("cancelled", job.selector)
                text = ""
            else:
                text = (f"{job.selector}: the {self.model} worker died ({how}); it restarts on the next request, "
                        f"so load your model again (log: {self.log_path})")
            if text:
                job.client.error(text)
        self.hub.worker_lost(self)
        self._pump()

    def check_silence(self, now: float) -> None:
        """Remote workers are declared dead after a second without a heartbeat."""
        if self.remote and self.ready.is_set() and now - self.last_heard > REMOTE_SILENCE_S:
            self.on_exit(f"no heartbeat for {REMOTE_SILENCE_S:g} s")

    async def _read_output(self, proc: asyncio.subprocess.Process) -> None:
        assert proc.stdout is not None
        with open(self.log_path, "a", encoding="utf-8", errors="replace") as logf:
            while line := await proc.stdout.readline():
                text = line.decode("utf-8", errors="replace").rstrip()
                logf.write(text + "\n")
                logf.flush()
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
            short = text if len(text) <= 160 else text[:157] + "..."
            for client in self.hub.clients_of(self.model):
                client.log(f"[{self.model}] {short}")
        elif count == LOG_LINES_PER_S + 1:
            for client in self.hub.clients_of(self.model):
                client.log(f"[{self.model}] more output in {self.log_path}")


def default_log_dir() -> Path:
    path = Path(os.environ["PDBRIDGE_LOG_DIR"]) if os.environ.get("PDBRIDGE_LOG_DIR") else STATE_DIR / "logs"
    path.mkdir(parents=True, exist_ok=True)
    return path
