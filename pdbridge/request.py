"""A request from a Pd object, as the hub tracks it from arrival until Pd has its outcome."""
from __future__ import annotations

import asyncio
import time
import uuid
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Optional

from pdwire.specs import ANY, ArraySet

if TYPE_CHECKING:  # pragma: no cover
    from .pdclient import PdConnection


@dataclass(eq=False)
class Request:
    """One message for a model, and where it is on its way.

    ``order`` is its place among the requests of its Pd (see :mod:`pdbridge.ordering`); ``reads``
    and ``writes`` are the arrays it may touch (any, until its worker has said what the message
    declares). The four flags say how far its array traffic has got: *sent* (the ``_array`` lines
    are written to its connection) and *done* (Pd has answered them, or there will be none).
    """

    client: "PdConnection"
    selector: str
    atoms: list[Any]
    order: int = 0
    msg_id: str = field(default_factory=lambda: uuid.uuid4().hex)
    received: float = field(default_factory=time.monotonic)
    reads: ArraySet = ANY
    writes: ArraySet = ANY
    reads_sent: bool = False
    reads_done: bool = False
    writes_sent: bool = False
    writes_done: bool = False
    cancel_requested: bool = False
    timed_out: Optional[float] = None
    timer: Optional[asyncio.TimerHandle] = None
    ended: bool = False
    """Its outcome is decided (the worker answered, or the hub gave up on it)."""
    after: Optional["asyncio.Future[None]"] = None
    """Resolved when the previous request of the same object has written its outcome."""
    written: Optional["asyncio.Future[None]"] = None
    """Resolved when this request's outcome is written to its connection."""

    def __repr__(self) -> str:
        return f"<Request {self.selector} #{self.order} of {self.client!r}>"
