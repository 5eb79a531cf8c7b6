"""A worker's two connections to the hub: the request channel and the heartbeat.

The main thread owns the request socket: it waits for a request, runs the handler and sends the
reply itself, with no thread hand-off on the way. Other threads that need to tell Pd something
(:meth:`Channel.post`) queue it and wake the main thread through an in-process socket. A heartbeat
thread with a socket of its own tells the hub the process is alive even while a handler sits in a
long C call, and ends the process when the hub has been silent for :data:`HUB_SILENCE_S`: no worker
outlives its hub by more than a few seconds.
"""
from __future__ import annotations

import logging
import os
import queue
import threading
import time
from dataclasses import dataclass
from typing import Optional

import zmq

from pdwire.messages import InvalidMessage, Message, Session

log = logging.getLogger("pdbridge.worker")

HEARTBEAT_INTERVAL_S = 0.2
"""The hub declares a worker it did not start dead after 1 s without a heartbeat."""
HUB_SILENCE_S = 5.0
"""A worker exits when the hub has not answered its heartbeats for this long."""


@dataclass(frozen=True)
class CurveKeys:
    """Keys for a hub reached over TCP (another machine): the link is encrypted and only workers
    holding the client secret from the hub's connection file are let in (ZeroMQ CURVE)."""

    server_public: bytes
    client_public: bytes
    client_secret: bytes

    def apply(self, sock: zmq.Socket) -> None:
        sock.curve_serverkey = self.server_public
        sock.curve_publickey = self.client_public
        sock.curve_secretkey = self.client_secret


def _connect(url: str, identity: bytes, curve: Optional[CurveKeys], linger_ms: int) -> zmq.Socket:
    sock = zmq.Context.instance().socket(zmq.DEALER)
    sock.setsockopt(zmq.IDENTITY, identity)
    sock.setsockopt(zmq.LINGER, linger_ms)
    if curve is not None and url.startswith("tcp://"):
        curve.apply(sock)
    sock.connect(url)
    return sock


class Channel:
    """The main thread's DEALER socket: requests in, everything about them out."""

    def __init__(self, url: str, session: Session, identity: str, curve: Optional[CurveKeys] = None) -> None:
        self.session = session
        self.identity = identity
        self.sock = _connect(url, identity.encode(), curve, linger_ms=1000)
        self._posted: "queue.SimpleQueue[Message]" = queue.SimpleQueue()
        self._wake_addr = f"inproc://pdbridge-wake-{id(self)}"
        self._wake_in = zmq.Context.instance().socket(zmq.PULL)
        self._wake_in.bind(self._wake_addr)
        self._wake_out_lock = threading.Lock()
        self._wake_out = zmq.Context.instance().socket(zmq.PUSH)
        self._wake_out.connect(self._wake_addr)
        self._poller = zmq.Poller()
        self._poller.register(self.sock, zmq.POLLIN)
        self._poller.register(self._wake_in, zmq.POLLIN)

    def send(self, msg: Message) -> None:
        """Send from the main thread. Zero-copy only pays off for array buffers."""
        self.sock.send_multipart(self.session.serialize(msg), copy=not msg.buffers)

    def post(self, msg: Message) -> None:
        """Send from any thread: the main thread sends it at its next look at the socket."""
        self._posted.put(msg)
        with self._wake_out_lock:
            self._wake_out.send(b"", zmq.NOBLOCK)

    def recv(self, timeout_ms: int) -> Optional[Message]:
        """The next verified message for this worker (posted messages go out meanwhile); None if
        nothing came within ``timeout_ms``."""
        deadline = time.monotonic() + timeout_ms / 1000
        while True:
            events = dict(self._poller.poll(max(0, int((deadline - time.monotonic()) * 1000))))
            if self._wake_in in events:
                while self._wake_in.poll(0):
                    self._wake_in.recv()
                while not self._posted.empty():
                    self.send(self._posted.get())
            if self.sock in events:
                msg = self._verified(self.sock.recv_multipart(copy=False))
                if msg is not None:
                    return msg
            if time.monotonic() >= deadline:
                return None

    def _verified(self, frames: list) -> Optional[Message]:
        try:
            msg = self.session.deserialize(frames)[1]
        except InvalidMessage as exc:
            log.warning("dropped a message that failed verification: %s", exc)
            return None
        if msg.to and msg.to != self.identity:
            log.warning("dropped a %s addressed to another worker (%s)", msg.msg_type, msg.to)
            return None
        return msg

    def close(self) -> None:
        for sock in (self.sock, self._wake_in, self._wake_out):
            sock.close()


class Heartbeat(threading.Thread):
    """Beats on a socket of its own; the hub answers each beat, so silence means the hub is gone."""

    def __init__(self, url: str, session: Session, identity: str, curve: Optional[CurveKeys] = None) -> None:
        super().__init__(name="pdbridge-heartbeat", daemon=True)
        self.url, self.session, self.identity, self.curve = url, session, identity, curve

    def run(self) -> None:
        sock = _connect(self.url, f"{self.identity}.heartbeat".encode(), self.curve, linger_ms=0)
        last_heard = time.monotonic()
        while True:
            sock.send_multipart(self.session.serialize(self.session.msg("heartbeat", {"worker": self.identity})))
            deadline = time.monotonic() + HEARTBEAT_INTERVAL_S
            while (left := deadline - time.monotonic()) > 0:
                if sock.poll(int(left * 1000) + 1):
                    try:
                        self.session.deserialize(sock.recv_multipart())
                        last_heard = time.monotonic()
                    except InvalidMessage:
                        pass
            if time.monotonic() - last_heard > HUB_SILENCE_S:
                log.error("the hub has been silent for %.0f s: exiting", HUB_SILENCE_S)
                os._exit(3)
