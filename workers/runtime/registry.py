"""The messages a worker understands, each described once: usage, help, timeout, arrays.

A message is registered with its signature, the line a student reads (``tone <array> [freq 440]
[seconds 1] [sr 44100]``): its first word is the message's name, and the whole line is the usage
text of every "wrong arguments" error, the help the worker sends the hub in its hello (so
``describe`` and the help-patch test can read it), and what docs/protocol.md lists.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, Optional

from pdwire.specs import DEFAULT_TIMEOUT_S, ArraySpec

if TYPE_CHECKING:  # pragma: no cover
    from .request import Request

Handler = Callable[["Request"], None]


@dataclass(frozen=True)
class MessageSpec:
    name: str
    signature: str
    help: str
    handler: Handler
    timeout: Optional[float]
    reads: ArraySpec
    writes: ArraySpec

    def describe(self) -> dict[str, Any]:
        """What the hub learns from the hello: enough to order, prefetch and time requests."""
        return {"signature": self.signature, "help": self.help, "timeout": self.timeout,
                "reads": self.reads.text, "writes": self.writes.text}


class Registry:
    """Name -> :class:`MessageSpec`, filled by the ``@worker.message`` decorator."""

    def __init__(self) -> None:
        self.specs: dict[str, MessageSpec] = {}

    def message(self, signature: str, help: str = "", timeout: Optional[float] = DEFAULT_TIMEOUT_S,
                reads: str = "", writes: str = "") -> Callable[[Handler], Handler]:
        """Register a handler. ``timeout`` in seconds (None: none). ``reads``/``writes`` declare the
        arrays it touches (grammar in :mod:`pdwire.specs`); a handler touching any other array fails,
        since the hub orders requests by these declarations. A bad declaration fails at import."""
        words = signature.split()
        if not words:
            raise ValueError("a message needs a signature starting with its name")
        read_spec, write_spec = ArraySpec.parse(reads), ArraySpec.parse(writes)

        def register(fn: Handler) -> Handler:
            doc = help or (fn.__doc__ or "").strip().split("\n")[0]
            self.specs[words[0]] = MessageSpec(words[0], signature, doc, fn, timeout, read_spec, write_spec)
            return fn
        return register

    def unknown(self, selector: str, model: str) -> str:
        return f"unknown message '{selector}' for {model} (it understands: {', '.join(sorted(self.specs))})"
