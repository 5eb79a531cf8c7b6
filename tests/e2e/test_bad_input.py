"""Every kind of bad input: a clear error reaches Pd (outlet and console), hub and Pd keep serving,
and no array the user had is changed by the failed request."""
from __future__ import annotations

import os
import signal
import socket
import time

import numpy as np
import soundfile
import zmq

from pdbridge import fudi, wire
from pdharness import HubThread, PdDriver

KNOWN = np.linspace(-0.25, 0.25, 500, dtype=np.float32)


def still_serving(pd) -> None:
    pd.send("ping", "again")
    assert pd.result("pong") == ["again"]


def test_unknown_message(pd_driver):
    pd = pd_driver("diagnostics")
    pd.send("frobnicate", 1)
    text = pd.error()
    assert "unknown message 'frobnicate'" in text and "tone" in text
    assert pd.wait_console("pdbridge.diagnostics: error frobnicate: unknown message 'frobnicate'")
    still_serving(pd)


def test_missing_and_invalid_arguments_leave_arrays_alone(pd_driver):
    pd = pd_driver("diagnostics")
    pd.write_array("drv-b", KNOWN)
    pd.send("tone")
    assert "tone needs an array name" in pd.error()
    pd.send("tone", "drv-b", "loud")
    assert "freq must be a number, got loud" in pd.error()
    pd.send("tone", "drv-b", 30000, 1, 44100)
    assert "freq must be between 0 and sr/2" in pd.error()
    assert np.array_equal(pd.read_array("drv-b"), KNOWN)
    still_serving(pd)


def test_array_that_does_not_exist(pd_driver):
    pd = pd_driver("diagnostics")
    pd.write_array("drv-b", KNOWN)
    pd.send("echo", "no-such-input", "drv-b")
    assert "array no-such-input not found" in pd.error()
    pd.send("tone", "no-such-output")
    assert "array no-such-output not found" in pd.error()
    assert np.array_equal(pd.read_array("drv-b"), KNOWN)
    still_serving(pd)


def test_no_result_announces_an_array_that_did_not_land(pd_driver):
    pd = pd_driver("diagnostics")
    pd.send("unchecked", "no-such-array", 100)
    first = pd.next()
    assert first[:2] == ["status", "error"], first  # no "unchecked" result comes out before or after it
    assert "array no-such-array not found" in " ".join(map(str, first))
    pd.send("ping", "after")
    assert pd.next() == ["result", "pong", "after"]
    pd.send("unchecked", "drv-a", 100)
    assert pd.result("unchecked") == ["drv-a", 100.0]
    assert np.array_equal(pd.read_array("drv-a"), np.random.default_rng(0).uniform(-1, 1, 100).astype(np.float32))


def test_file_that_does_not_exist_or_has_the_wrong_format(pd_driver, tmp_path):
    pd = pd_driver("diagnostics")
    pd.send("load", str(tmp_path / "nothere.wav"))
    assert f"sound file not found: {tmp_path / 'nothere.wav'}" in pd.error()
    bogus = tmp_path / "model.ckpt"
    bogus.write_text("not audio at all")
    pd.send("load", str(bogus))
    assert "is not a sound file pdbridge can read" in pd.error()
    pd.send("play", "drv-b")
    assert "nothing loaded" in pd.error()
    still_serving(pd)


def test_model_bug_reports_type_and_message(pd_driver):
    pd = pd_driver("diagnostics")
    pd.send("fail", "kaboom")
    text = pd.error()
    assert "RuntimeError: kaboom" in text and "log:" in text
    still_serving(pd)


def test_worker_killed_mid_request_is_reported_and_restarted(pd_driver, hub):
    pd = pd_driver("diagnostics")
    pd.write_array("drv-b", KNOWN)
    pd.send("crash")
    text = pd.error()
    assert "worker died (killed by SIGKILL)" in text and "restarts on the next request" in text
    still_serving(pd)
    # killed from outside while sleeping (as the OOM killer would)
    pd.send("pid")
    pid = int(pd.result("pid")[0])
    pd.send("sleep", 60)
    assert pd.next()[:2] == ["status", "progress"]
    os.kill(pid, signal.SIGKILL)
    assert "killed by SIGKILL" in pd.error(timeout=10)
    pd.send("pid")
    assert int(pd.result("pid")[0]) != pid
    assert np.array_equal(pd.read_array("drv-b"), KNOWN)


def test_worker_that_hangs_past_its_timeout(pd_driver):
    pd = pd_driver("diagnostics")
    pd.send("hang")
    text = pd.error(timeout=30)
    assert "hang timed out after 1 s" in text
    still_serving(pd)


def test_message_starting_with_a_number(pd_driver):
    pd = pd_driver("diagnostics")
    pd.send(1, 2, 3)
    assert "must start with a word" in pd.error()
    still_serving(pd)


def test_reply_too_long_for_pd_is_refused_not_sent(pd_driver):
    pd = pd_driver("diagnostics")
    pd.send("count", 2000)
    assert "too long for Pd" in pd.error()
    pd.send("count", 5)
    assert pd.result("count") == [0.0, 1.0, 2.0, 3.0, 4.0]


def raw_client(hub):
    s = socket.create_connection(("127.0.0.1", hub.port), timeout=10)
    s.sendall(b"hello diagnostics 1;\n")
    return s


def text(atoms) -> str:
    return " ".join(a if isinstance(a, str) else f"{a:g}" for a in atoms)


def read_messages(sock, want: str):
    decoder = fudi.Decoder(max_bytes=1 << 20)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        for msg in decoder.feed(sock.recv(65536)):
            if msg[0] == want:
                return msg
    raise AssertionError(f"no {want}")


def test_malformed_and_oversize_fudi_from_a_raw_client(hub):
    s = raw_client(hub)
    s.sendall(b"\xff\xfe\xfd garbage;\n")
    assert "not UTF-8" in text(read_messages(s, "error"))
    s.sendall(b"x" * 70000)
    assert "longer than 65536 bytes" in text(read_messages(s, "error"))
    s.sendall(b" rest of it;\nping still;\n")
    assert read_messages(s, "result") == ["result", "pong", "still"]
    s.close()


def test_unsigned_and_wrongly_signed_zeromq_frames_are_dropped(pd_driver, hub):
    pd = pd_driver("diagnostics")
    still_serving(pd)
    before = hub.hub.dropped_frames
    ctx = zmq.Context.instance()
    intruder = ctx.socket(zmq.DEALER)
    intruder.connect(hub.hub.worker_url)
    intruder.send_multipart([b"hello? no signature"])
    forged = wire.Session(wire.new_key(), sender="intruder")
    intruder.send_multipart(forged.serialize(forged.msg("hello", {"model": "diagnostics"})))
    deadline = time.monotonic() + 10
    while hub.hub.dropped_frames < before + 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    intruder.close(linger=0)
    assert hub.hub.dropped_frames == before + 2
    still_serving(pd)
    assert pd.wait_console("dropped a ZeroMQ message that failed verification")


def test_a_worker_cannot_make_the_hub_touch_files_outside_its_array_folder(tmp_path):
    """A (signed, so trusted, but buggy) worker names a file elsewhere as its output: Pd does not
    read it, the hub does not delete it, the user's array is unchanged and Pd hears why."""
    outside = tmp_path / "precious.wav"
    soundfile.write(outside, np.ones(10, np.float32), 44100, subtype="FLOAT")
    hub = HubThread(log_dir=tmp_path)
    fake = zmq.Context.instance().socket(zmq.DEALER)
    try:
        session = wire.Session(hub.hub.key, sender="fake")
        fake.connect(hub.hub.worker_url)
        fake.send_multipart(session.serialize(session.msg("hello", {
            "model": "diagnostics", "arrays": str(hub.hub.exchange.root),
            "messages": {"tone": {"help": "", "timeout": 10}}})))
        slot = hub.hub.slots["diagnostics"]
        deadline = time.monotonic() + 10
        while not hub.run(slot.ready.is_set):
            assert time.monotonic() < deadline
            time.sleep(0.02)
        pd = PdDriver(hub.port, "diagnostics", timeout=20)
        try:
            pd.write_array("drv-a", KNOWN)
            pd.send("tone", "drv-a")
            assert fake.poll(10_000), "the hub did not forward the request"
            _, request = session.deserialize(fake.recv_multipart())
            fake.send_multipart(session.serialize(session.msg("done", {
                "results": [["tone", "drv-a", 10]],
                "arrays": [{"name": "drv-a", "sr": 44100, "path": str(outside)}]}, parent=request)))
            assert "not in the hub's array folder" in pd.error()
            assert np.array_equal(pd.read_array("drv-a"), KNOWN)
            assert outside.exists()
        finally:
            pd.close()
    finally:
        fake.close(linger=0)
        hub.stop()
