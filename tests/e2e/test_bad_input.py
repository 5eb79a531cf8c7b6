"""Every kind of bad input: a clear error reaches Pd (outlet and console), hub and Pd keep serving,
and no array the user had is changed by the failed request."""
from __future__ import annotations

import os
import signal
import time

import numpy as np
import soundfile
import zmq

from pdharness import HubThread, PdDriver, RawClient
from pdwire.messages import Session, new_key

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
    assert "no model loaded: send load <soundfile> first" in pd.error()
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
    assert "hang timed out after 1 s and did not stop when asked" in text
    still_serving(pd)


def test_a_handler_that_stops_after_its_timeout_is_reported_as_timed_out(pd_driver):
    pd = pd_driver("diagnostics")
    pd.send("pid")
    pid = pd.result("pid")
    pd.send("overtime", 5)
    assert pd.error(timeout=30) == "error overtime timed out after 1 s and was stopped"[6:]
    pd.send("pid")
    assert pd.result("pid") == pid  # it stopped when asked: the worker was not restarted


def test_message_starting_with_a_number(pd_driver):
    pd = pd_driver("diagnostics")
    pd.send(1, 2, 3)
    assert "must start with a word" in pd.error()
    still_serving(pd)


def test_a_long_reply_arrives_whole_in_one_list(pd_driver):
    pd = pd_driver("diagnostics")
    pd.send("count", 3000)  # ~17 KB of text: several FUDI messages, joined by [pdbridge.conn]
    assert pd.result("count") == [float(i) for i in range(3000)]
    pd.send("count", 5)
    assert pd.result("count") == [0.0, 1.0, 2.0, 3.0, 4.0]


def text(atoms) -> str:
    return " ".join(a if isinstance(a, str) else f"{a:g}" for a in atoms)


def test_malformed_and_oversize_fudi_from_a_raw_client(hub):
    s = RawClient(hub.port)
    s.sock.sendall(b"\xff\xfe\xfd garbage;\n")
    assert "not UTF-8" in text(s.expect("error"))
    s.sock.sendall(b"x" * 70000)
    assert "longer than 65536 bytes" in text(s.expect("error"))
    s.sock.sendall(b" rest of it;\n")
    s.request("ping", "still")
    assert s.expect("_ok") == ["pong", "still"]
    s.close()


def test_array_names_too_long_for_pd_are_an_error_not_a_stall(hub):
    s = RawClient(hub.port)
    s.request("echo", "a" * 5000, "b")
    assert "too long for Pd" in text(s.expect("error"))
    s.request("ping", "after")
    assert s.expect("_ok") == ["pong", "after"]
    s.close()


def test_unsigned_and_wrongly_signed_zeromq_frames_are_dropped(pd_driver, hub):
    pd = pd_driver("diagnostics")
    still_serving(pd)
    before = hub.hub.dropped.count
    intruder = zmq.Context.instance().socket(zmq.DEALER)
    intruder.connect(hub.hub.local_worker_url)
    intruder.send_multipart([b"hello? no signature"])
    forged = Session(new_key(), sender="intruder")
    intruder.send_multipart(forged.serialize(forged.msg("hello", {"model": "diagnostics"})))
    deadline = time.monotonic() + 10
    while hub.hub.dropped.count < before + 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    intruder.close(linger=0)
    assert hub.hub.dropped.count == before + 2
    still_serving(pd)
    assert "ZeroMQ" not in pd.console  # nothing an intruder sends reaches the Pd console


def fake_worker(hub: HubThread, identity: str = "diagnostics-fake") -> tuple[zmq.Socket, Session]:
    """A signed worker the test plays by hand: it says hello, then answers as the test decides."""
    session = Session(hub.hub.key, sender=f"diagnostics:{identity}")
    sock = zmq.Context.instance().socket(zmq.DEALER)
    sock.setsockopt(zmq.IDENTITY, identity.encode())
    sock.connect(hub.hub.local_worker_url)
    sock.send_multipart(session.serialize(session.msg("hello", {
        "model": "diagnostics", "arrays": str(hub.hub.run.arrays.root),
        "messages": {"tone": {"signature": "tone <array>", "timeout": 10, "writes": "0"}}})))
    slot = hub.hub.slots["diagnostics"]
    deadline = time.monotonic() + 10
    while not hub.run(slot.ready.is_set):
        assert time.monotonic() < deadline
        time.sleep(0.02)
    return sock, session


def test_a_worker_cannot_make_the_hub_touch_files_outside_its_array_folder(tmp_path):
    """A (signed, so trusted, but buggy) worker names a file elsewhere as its output: Pd does not
    read it, the hub does not delete it, the user's array is unchanged and Pd hears why."""
    outside = tmp_path / "precious.wav"
    soundfile.write(outside, np.ones(10, np.float32), 44100, subtype="FLOAT")
    hub = HubThread(log_dir=tmp_path)
    fake, session = fake_worker(hub)
    try:
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
