"""The base every model worker uses: message loop, arguments, arrays, progress, events, jobs, cache.

Depends only on numpy, pyzmq, soundfile and :mod:`pdwire` (the formats shared with the hub, never
the hub itself), so it installs into every model environment. See docs/architecture.md for how a
request travels.
"""
from .args import Options, integer, number, number_or_env, sample_rate, symbol
from .device import choose_device
from .envelope import Env, EnvelopeError
from .errors import Cancelled, PdError
from .request import Request
from .worker import Worker

__all__ = ["Worker", "Request", "PdError", "Cancelled", "Env", "EnvelopeError", "Options",
           "choose_device", "integer", "number", "number_or_env", "sample_rate", "symbol"]
