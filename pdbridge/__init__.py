"""pdbridge: generative audio models as Pure Data objects.

Pd patches talk FUDI to the hub (:mod:`pdbridge.hub`); the hub talks signed ZeroMQ messages
(:mod:`pdbridge.wire`) to one worker process per model (:mod:`workers`).
"""

__version__ = "0.1.0"
