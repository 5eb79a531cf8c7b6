"""The worker's main loop: take a request, run its handler, send how it ended.

One request at a time, so model code never has to be thread-safe. Every way a handler can end
becomes exactly one message to the hub: ``done`` (results, arrays, notes, jobs to follow) or
``error`` (``PdError`` for the student's mistakes, ``Cancelled``, or the exception of a model bug,
with its traceback in the worker's log).
"""
from __future__ import annotations

import logging
import time
import traceback
from typing import TYPE_CHECKING, Any, Optional

from pdwire.arrays import array_to_buffers
from pdwire.messages import Message
from pdwire.specs import NONE

from .channel import Channel
from .errors import Cancelled, PdError
from .request import Conversation, Request, housekeeping

if TYPE_CHECKING:  # pragma: no cover
    from .worker import Worker

log = logging.getLogger("pdbridge.worker")


def serve(worker: "Worker", channel: Channel) -> None:
    """Handle requests until the hub says ``shutdown``."""
    while (conv := next_request(worker, channel)) is not None:
        channel.send(handle(worker, conv))
        if conv.shutdown:
            return


def next_request(worker: "Worker", channel: Channel) -> Optional[Conversation]:
    """Wait for the next request, handling housekeeping meanwhile. None: shut down."""
    while True:
        msg = channel.recv(timeout_ms=1000)
        if msg is None:
            continue
        if msg.msg_type == "request":
            return conversation(worker, channel, msg)
        if msg.msg_type == "shutdown":
            return None
        if msg.msg_type == "session_closed":
            worker.states.pop(str(msg.content.get("session")), None)
        elif msg.msg_type not in ("ping", "cancel"):  # a cancel for a request already answered
            housekeeping(msg)


def conversation(worker: "Worker", channel: Channel, msg: Message) -> Conversation:
    c = msg.content
    atoms = list(c.get("atoms", []))
    spec = worker.registry.specs.get(str(c.get("selector")))
    reads = spec.reads.select(atoms) if spec else NONE
    writes = spec.writes.select(atoms) if spec else NONE
    return Conversation(msg.msg_id, str(c["selector"]), atoms, str(c.get("session", "")),
                        str(c.get("canvas_dir", "")), channel, worker.files, reads, writes,
                        [str(n) for n in c.get("prefetch", [])])


def handle(worker: "Worker", conv: Conversation) -> Message:
    """Run the handler for ``conv``; the message that says how it ended."""
    session = conv.channel.session
    spec = worker.registry.specs.get(conv.selector)
    started = time.perf_counter()
    try:
        if spec is None:
            raise PdError(worker.registry.unknown(conv.selector, worker.model))
        req = Request(conv, spec, worker.states.setdefault(conv.session, {}), worker.device, worker.load_hint,
                      worker.model)
        try:
            spec.handler(req)
        except worker.user_errors as exc:
            raise PdError(str(exc)) from exc
        content, buffers = _done_content(worker, req)
        content["elapsed_s"] = time.perf_counter() - started
        return session.msg("done", content, parent=conv.msg_id, buffers=buffers, session=conv.session)
    except Cancelled as exc:
        return session.msg("error", {"ename": "Cancelled", "evalue": str(exc)}, parent=conv.msg_id)
    except PdError as exc:
        return session.msg("error", {"ename": "PdError", "evalue": str(exc)}, parent=conv.msg_id)
    except Exception as exc:  # a model bug must not kill the worker: report it and go on
        tb = traceback.format_exc()
        log.error("%s failed:\n%s", conv.selector, tb)
        return session.msg("error", {"ename": type(exc).__name__, "evalue": str(exc) or type(exc).__name__,
                                     "traceback": tb}, parent=conv.msg_id)


def _done_content(worker: "Worker", req: Request) -> tuple[dict[str, Any], list]:
    """Results, then the output arrays: as files in the hub's folder when this worker shares the
    hub's machine, else as buffers."""
    buffers: list = []
    metas = []
    for name, (samples, sr) in req.arrays.items():
        if worker.files is not None:
            metas.append({"name": name, "sr": sr, "path": str(worker.files.write(samples, sr))})
            continue
        meta, chunks = array_to_buffers(samples)
        metas.append({"name": name, "sr": sr, **meta})
        buffers.extend(chunks)
    content: dict[str, Any] = {"results": req.results, "arrays": metas, "checked": sorted(req.checked)}
    if req.notes is not None:
        content["notes"] = req.notes
    if req.jobs:
        content["follow"] = [{"id": job.id, "folder": str(job.path)} for job in req.jobs]
    return content, buffers
