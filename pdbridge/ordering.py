"""Requests of one Pd, in the order Pd sent them, each seeing the arrays as the earlier ones left them.

A patch is a program that runs in order: after ``[noise a(`` then ``[echo a b(``, the echo must
read ``a`` as the noise left it, whichever objects and models the two messages go to. Yet requests
to different models run at the same time, each object has its own connection, and a worker's
inputs are written by Pd while the request travels. This module keeps the order without making
unrelated work wait:

- **Sequence.** Every object in a Pd numbers its requests from one counter (``[value
  pdbridge-seq]``) as they come in, also those it must queue while its connection is being made.
  A :class:`PdGroup` releases them in that order; one that arrives early waits for the gap to fill:
  at most :data:`GAP_WAIT_S` when it was only a race between sockets, at most
  :data:`QUEUED_GAP_WAIT_S` while the Pd says (with each request) that numbered requests still wait
  in some object's queue.
- **Hazards.** Each request declares the arrays it may read and write (:mod:`pdwire.specs`). Before
  Pd writes an array out for request B, every earlier request that may write that array must have
  landed its output; before Pd reads a file into an array for B, every earlier request that may
  read or write it must have finished doing so. On the same connection "written to the socket" is
  enough, since Pd handles one connection's messages in order; across connections Pd must have
  answered.
"""
from __future__ import annotations

import asyncio
import logging
from typing import Callable, Iterable, Optional

from .request import Request

log = logging.getLogger("pdbridge.hub")

GAP_WAIT_S = 0.005
"""How long a request that arrived before an earlier one of the same Pd waits for it. The earlier
one was written to its socket first, so it is normally read in the next turn of the event loop."""
SEQ_MODULUS = 999_999
"""Pd numbers requests 1..999999 and then 1 again: it prints floats with 6 significant digits."""
QUEUED_GAP_WAIT_S = 5.0
"""The same while the earlier one may still sit in the queue of an object that is connecting (as
long as a connection attempt may take before [pdbridge.conn] gives up on it)."""


class PdGroup:
    """One Pd process: the order of its requests and which arrays each may still touch."""

    def __init__(self, group_id: int) -> None:
        self.id = group_id
        self.expected: Optional[int] = None
        self.held: dict[int, Callable[[], None]] = {}
        self.queued_elsewhere = 0
        """What the newest request said: numbered requests of this Pd still waiting in queues."""
        self.pending: list[Request] = []
        self.members = 0
        self._orders = 0
        self._timer: Optional[asyncio.TimerHandle] = None
        self._timer_long = False
        self._changed: Optional[asyncio.Future[None]] = None

    # -- sequence ------------------------------------------------------------------------------
    def arrive(self, seq: int, queued: int, release: Callable[[], None]) -> None:
        """Request number ``seq`` of this Pd arrived, saying ``queued`` others are still queued;
        ``release`` runs when its turn comes."""
        seq = self._unwrap(seq)
        if self.expected is not None and seq < self.expected:  # late (its gap was given up on)
            release()
            return
        self.held[seq] = release
        if self.expected is None or seq >= max(self.held):
            self.queued_elsewhere = queued
        if self.expected is not None:
            self._release_in_order()
        self._arm()

    def _unwrap(self, seq: int) -> int:
        """Pd's number, made to count on past 999999: the value nearest the numbers seen lately."""
        reference = self.expected if self.expected is not None else (max(self.held) if self.held else None)
        if reference is None:
            return seq
        diff = (seq - reference) % SEQ_MODULUS
        if diff >= SEQ_MODULUS // 2:
            diff -= SEQ_MODULUS
        return reference + diff

    def _release_in_order(self) -> None:
        while self.expected in self.held:
            release = self.held.pop(self.expected)
            self.expected += 1
            release()

    def _arm(self) -> None:
        """Wait for the gap: briefly for a socket race, longer while requests are still queued."""
        long = self.queued_elsewhere > 0
        if not self.held:
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None
            return
        if self._timer is not None and self._timer_long == long:
            return
        if self._timer is not None:
            self._timer.cancel()
        self._timer_long = long
        self._timer = asyncio.get_running_loop().call_later(QUEUED_GAP_WAIT_S if long else GAP_WAIT_S,
                                                            self._give_up_gap)

    def _give_up_gap(self) -> None:
        """The gap did not fill: go on from the lowest number waiting."""
        self._timer = None
        if self.held:
            if self.expected is not None and self.expected not in self.held:
                log.info("Pd %d: request %d never came; going on", self.id, self.expected)
            self.expected = min(self.held)
            self._release_in_order()
        self._arm()

    # -- hazards -------------------------------------------------------------------------------
    def enter(self, req: Request) -> None:
        """``req`` takes the next place in this Pd's order."""
        self._orders += 1
        req.order = self._orders
        if not req.reads:
            req.reads_sent = req.reads_done = True
        if not req.writes:
            req.writes_sent = req.writes_done = True
        self.pending.append(req)

    def changed(self) -> None:
        """Some request's flags moved: wake those waiting, and forget requests that are through."""
        self.pending = [r for r in self.pending if not (r.reads_done and r.writes_done)]
        if self._changed is not None and not self._changed.done():
            self._changed.set_result(None)
        self._changed = None

    def read_blockers(self, req: Request, names: Iterable[str]) -> list[Request]:
        """Earlier requests that may still change arrays ``names`` that ``req`` wants to read."""
        names = list(names)
        return [e for e in self._earlier(req) if not _landed(e, req) and any(e.writes.covers(n) for n in names)]

    def write_blockers(self, req: Request, names: Iterable[str]) -> list[Request]:
        """Earlier requests that may still read or change arrays ``names`` that ``req`` will write."""
        names = list(names)
        return [e for e in self._earlier(req)
                if (not _landed(e, req) and any(e.writes.covers(n) for n in names))
                or (not _read(e, req) and any(e.reads.covers(n) for n in names))]

    async def clear_to_read(self, req: Request, names: Iterable[str]) -> None:
        names = list(names)
        while self.read_blockers(req, names):
            await self._wait()

    async def clear_to_write(self, req: Request, names: Iterable[str]) -> None:
        names = list(names)
        while self.write_blockers(req, names):
            await self._wait()

    def _earlier(self, req: Request) -> list[Request]:
        return [e for e in self.pending if e.order < req.order]

    async def _wait(self) -> None:
        if self._changed is None:
            self._changed = asyncio.get_running_loop().create_future()
        await asyncio.shield(self._changed)


def _landed(earlier: Request, req: Request) -> bool:
    """Whether ``earlier``'s output arrays are in Pd as far as ``req`` is concerned."""
    return earlier.writes_done or (earlier.writes_sent and earlier.client is req.client)


def _read(earlier: Request, req: Request) -> bool:
    """Whether ``earlier`` has read its input arrays as far as ``req`` is concerned."""
    return earlier.reads_done or (earlier.reads_sent and earlier.client is req.client)
