"""Signed multipart messages: round trip, tampering, wrong keys, arrays."""
import numpy as np
import pytest

from pdbridge import wire


@pytest.fixture
def session():
    return wire.Session(wire.new_key(), sender="test")


def test_round_trip_with_buffers_and_parent(session):
    samples = np.linspace(-1, 1, 1000, dtype=np.float32)
    meta, data = wire.array_to_buffer(samples)
    request = session.msg("request", {"selector": "tone"})
    frames = session.serialize(session.msg("done", {"arrays": [meta]}, parent=request, buffers=[data]))
    ids, msg = session.deserialize([b"worker-1", *frames])
    assert ids == [b"worker-1"]
    assert msg.msg_type == "done" and msg.parent_id == request.msg_id
    assert np.array_equal(wire.buffer_to_array(msg.content["arrays"][0], msg.buffers[0]), samples)


@pytest.mark.parametrize("index", [2, 3, 4])  # header, content, buffer
def test_any_changed_frame_is_rejected(session, index):
    frames = [bytes(f) for f in session.serialize(session.msg("x", {"a": 1}, buffers=[b"\x00" * 8]))]
    frames[index] = frames[index][:-1] + bytes([frames[index][-1] ^ 1])
    with pytest.raises(wire.InvalidMessage, match="signature"):
        session.deserialize(frames)


def test_wrong_key_and_unsigned_frames_are_rejected(session):
    other = wire.Session(wire.new_key(), sender="intruder")
    with pytest.raises(wire.InvalidMessage):
        session.deserialize(other.serialize(other.msg("hello", {"model": "diagnostics"})))
    with pytest.raises(wire.InvalidMessage):
        session.deserialize([b"just some bytes"])
    with pytest.raises(wire.InvalidMessage):
        session.deserialize([wire.DELIMITER, b"", b"{}", b"{}"])


def test_major_version_mismatch_is_rejected(session):
    msg = session.msg("hello")
    msg.version = "2.0"
    with pytest.raises(wire.InvalidMessage, match="version"):
        session.deserialize(session.serialize(msg))


def test_empty_key_is_refused():
    with pytest.raises(ValueError):
        wire.Session(b"", sender="x")


def test_buffer_size_must_match_shape():
    with pytest.raises(wire.InvalidMessage):
        wire.buffer_to_array({"shape": [10], "dtype": "float32"}, b"\x00" * 8)


@pytest.mark.parametrize("spec, expected", [("0:1", slice(0, 1)), ("0::3", slice(0, None, 3)), ("1:", slice(1, None)),
                                            (":2", slice(None, 2)), ("-1:", slice(-1, None))])
def test_reads_declarations_are_slices(spec, expected):
    assert wire.reads_slice(spec) == expected


@pytest.mark.parametrize("spec", ["0", "a:b", "0:1:2:3", "0::0", "0::-1", ""])
def test_bad_reads_declarations_are_refused(spec):
    with pytest.raises(ValueError, match="reads"):
        wire.reads_slice(spec)


def test_read_names_are_the_distinct_symbols_selected():
    atoms = ["za", "out1", 36.0, "zb", "out2", 40.0, "za", "out3", 43.0]
    assert wire.read_names("0::3", atoms) == ["za", "zb"]
    assert wire.read_names("2::3", atoms) == []  # numbers are never array names
    assert wire.read_names(None, atoms) == []
