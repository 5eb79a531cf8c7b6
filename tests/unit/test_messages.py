"""Signed multipart messages: round trip, tampering, wrong keys, versions, replays."""
import time

import numpy as np
import pytest

from pdwire import messages
from pdwire.arrays import array_to_buffers, buffers_to_array


@pytest.fixture
def session():
    return messages.Session(messages.new_key(), sender="test")


def test_round_trip_with_buffers_parent_and_addresses(session):
    samples = np.linspace(-1, 1, 1000, dtype=np.float32)
    meta, chunks = array_to_buffers(samples)
    request = session.msg("request", {"selector": "tone"})
    out = session.msg("done", {"arrays": [meta]}, parent=request, buffers=chunks, to="w1", session="s1")
    ids, msg = session.deserialize([b"worker-1", *session.serialize(out)])
    assert ids == [b"worker-1"]
    assert (msg.msg_type, msg.parent_id, msg.to, msg.session, msg.sender) == ("done", request.msg_id, "w1", "s1",
                                                                               "test")
    assert np.array_equal(buffers_to_array(msg.content["arrays"][0], iter(msg.buffers)), samples)


@pytest.mark.parametrize("index", [2, 3, 4])  # header, content, buffer
def test_any_changed_frame_is_rejected(session, index):
    frames = [bytes(f) for f in session.serialize(session.msg("x", {"a": 1}, buffers=[b"\x00" * 8]))]
    frames[index] = frames[index][:-1] + bytes([frames[index][-1] ^ 1])
    with pytest.raises(messages.InvalidMessage, match="signature"):
        session.deserialize(frames)


def test_wrong_key_and_unsigned_frames_are_rejected(session):
    other = messages.Session(messages.new_key(), sender="intruder")
    with pytest.raises(messages.InvalidMessage):
        session.deserialize(other.serialize(other.msg("hello", {"model": "diagnostics"})))
    with pytest.raises(messages.InvalidMessage):
        session.deserialize([b"just some bytes"])
    with pytest.raises(messages.InvalidMessage):
        session.deserialize([messages.DELIMITER, b"", b"{}", b"{}"])


def test_major_version_mismatch_is_rejected(session):
    msg = session.msg("hello")
    msg.version = "1.0"
    with pytest.raises(messages.InvalidMessage, match="version"):
        session.deserialize(session.serialize(msg))


def test_a_replayed_message_is_refused(session):
    frames = [bytes(f) for f in session.serialize(session.msg("hello", {"model": "diagnostics"}))]
    receiver = messages.Session(session.key, sender="hub")
    receiver.deserialize(frames)
    with pytest.raises(messages.InvalidMessage, match="replayed"):
        receiver.deserialize(frames)


def test_a_message_dated_outside_the_window_is_refused(session, monkeypatch):
    frames = [bytes(f) for f in session.serialize(session.msg("heartbeat"))]
    receiver = messages.Session(session.key, sender="hub", window_s=60)
    later = time.time() + 61
    monkeypatch.setattr(messages.time, "time", lambda: later)
    with pytest.raises(messages.InvalidMessage, match="window"):
        receiver.deserialize(frames)


def test_the_history_forgets_what_the_window_already_refuses(session, monkeypatch):
    receiver = messages.Session(session.key, sender="hub", window_s=10)
    now = [1000.0]
    monkeypatch.setattr(messages.time, "time", lambda: now[0])
    for _ in range(5):
        receiver.deserialize(session.serialize(session.msg("heartbeat")))
    assert len(receiver._seen) == 5
    now[0] += 25
    receiver.deserialize(session.serialize(session.msg("heartbeat")))
    assert len(receiver._seen) == 1


def test_empty_key_is_refused():
    with pytest.raises(ValueError):
        messages.Session(b"", sender="x")
