"""Requests of one Pd, in the order Pd sent them, each seeing the arrays as the earlier ones left them.

A patch is a program that runs in order: after ``[noise a(`` then ``[echo a b(``, the echo must
read ``a`` as the noise left it, whichever objects and models the two messages go to. Yet requests
to different models run at the same time, each object has its own connection, and a worker's
inputs are written by Pd while the request travels. This module keeps the order without making
unrelated work wait:

- **Sequence.** Every object in a Pd numbers its requests from one counter (``[value
  pdbridge-seq]``). A :class:`PdGroup` releases them in that order; one that arrives early (another
  object's connection was read later) waits for the gap to fill, at most :data:`GAP_WAIT_S`.
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


class PdGroup:
    """One Pd process: the order of its requests and which arrays each may still touch."""

    def __init__(self, group_id: int) -> None:
        self.id = group_id
        self.expected: Optional[int] = None
        self.held: dict[int, Callable[[], None]] = {}
        self.pending: list[Request] = []
        self.members = 0
        self._orders = 0
        self._timer: Optional[asyncio.TimerHandle] = None
        self._changed: Optional[asyncio.Future[None]] = None

    # -- sequence ------------------------------------------------------------------------------
    def arrive(self, seq: int, release: Callable[[], None]) -> None:
        """Request number ``seq`` of this Pd arrived; ``release`` runs when its turn comes."""
        if self.expected is not None and seq < self.expected:  # late (its gap was given up on)
            release()
            return
        self.held[seq] = release
        if self.expected is None:  # the first request of this Pd this hub sees: others may be in flight
            self._arm()
            return
        self._release_in_order()
        if self.held:
            self._arm()

    def _release_in_order(self) -> None:
        while self.expected in self.held:
            release = self.held.pop(self.expected)
            self.expected += 1
            release()

    def _arm(self) -> None:
        if self._timer is None:
            self._timer = asyncio.get_running_loop().call_later(GAP_WAIT_S, self._give_up_gap)

    def _give_up_gap(self) -> None:
        """The gap did not fill: go on from the lowest number waiting."""
        self._timer = None
        if self.held:
            if self.expected is not None and self.expected not in self.held:
                log.info("Pd %d: request %d never came; going on", self.id, self.expected)
            self.expected = min(self.held)
            self._release_in_order()
        if self.held:
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
