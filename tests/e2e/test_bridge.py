"""Pd -> hub -> worker -> Pd with real headless Pd and the diagnostics worker: the happy paths."""
from __future__ import annotations

import time

import numpy as np
import soundfile


def expected_sine(freq: float, seconds: float, sr: float) -> np.ndarray:
    t = np.arange(int(round(seconds * sr))) / sr
    return (0.5 * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def test_tone_lands_in_the_array_exactly(pd_driver):
    pd = pd_driver("diagnostics")
    pd.send("tone", "drv-a", 440, 0.5, 16000)
    assert pd.result("tone") == ["drv-a", 8000.0]
    assert np.array_equal(pd.read_array("drv-a"), expected_sine(440, 0.5, 16000))
    assert pd.quit() == 0


def test_array_goes_to_the_worker_and_back_bit_exact(pd_driver):
    pd = pd_driver("diagnostics")
    samples = np.random.default_rng(7).uniform(-1, 1, 64000).astype(np.float32)
    pd.write_array("drv-a", samples)
    pd.send("echo", "drv-a", "drv-b")
    assert pd.result("echo") == ["drv-b", 64000.0]
    out = pd.read_array("drv-b")
    assert np.array_equal(out.view(np.uint32), samples.view(np.uint32))


def test_declared_inputs_travel_with_the_request(pd_driver, hub):
    """echo declares reads="0:1": the worker finds its input in the request and only asks Pd
    whether the output array exists."""
    pd = pd_driver("diagnostics")
    samples = np.random.default_rng(8).uniform(-1, 1, 1000).astype(np.float32)
    pd.write_array("drv-a", samples)
    asked: list[str] = []
    serve = hub.hub._serve_arrays

    async def counting(slot, job, msg):
        asked.append(msg.content.get("op"))
        await serve(slot, job, msg)

    hub.run(setattr, hub.hub, "_serve_arrays", counting)
    try:
        pd.send("echo", "drv-a", "drv-b")
        assert pd.result("echo") == ["drv-b", 1000.0]
    finally:
        hub.run(delattr, hub.hub, "_serve_arrays")
    assert asked == ["check"]
    assert np.array_equal(pd.read_array("drv-b"), samples)


def test_a_local_worker_moves_arrays_as_files_and_none_are_left(pd_driver, hub):
    pd = pd_driver("diagnostics")
    pd.send("noise", "drv-a", 64000, 5)
    assert pd.result("noise") == ["drv-a", 64000.0]
    pd.send("echo", "drv-a", "drv-b", 0.5)
    assert pd.result("echo") == ["drv-b", 64000.0]
    pd.send("echo", "no-such-array", "drv-b")
    assert "not found" in pd.error()
    pd.send("echo", "drv-a", "no-such-array")
    assert "not found" in pd.error()
    expected = np.random.default_rng(5).uniform(-1.0, 1.0, 64000).astype(np.float32)
    assert np.array_equal(pd.read_array("drv-b"), expected * np.float32(0.5))
    assert hub.run(hub.hub.shares_files, hub.hub.slots["diagnostics"])
    folder = hub.hub.run.arrays.root
    deadline = time.monotonic() + 5  # the last files go once Pd has said it read them
    while list(folder.glob("*.wav")) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert list(folder.glob("*.wav")) == []


def test_a_million_samples(pd_driver):
    pd = pd_driver("diagnostics")
    pd.send("noise", "drv-c", 1_000_000, 3)
    assert pd.result("noise") == ["drv-c", 1_000_000.0]
    expected = np.random.default_rng(3).uniform(-1.0, 1.0, 1_000_000).astype(np.float32)
    assert np.array_equal(pd.read_array("drv-c"), expected)


def test_symbols_with_special_characters_survive_both_ways(pd_driver):
    pd = pd_driver("diagnostics")
    atoms = ["a b", "semi;colon", "com,ma", "dollar$1", "back\\slash", 1.5, -3.0, 0.1, 123456.0]
    pd.send("ping", *atoms)
    assert pd.result("pong") == atoms


def test_relative_paths_resolve_from_the_patch_folder(pd_driver, tmp_path):
    from pdharness import DRIVER

    pd = pd_driver("diagnostics")
    sound = np.linspace(-0.5, 0.5, 300, dtype=np.float32)
    rel = "tmp-test-sound.wav"
    soundfile.write(DRIVER.parent / rel, sound, 22050, subtype="FLOAT")
    try:
        pd.send("load", rel)
        assert pd.result("loaded") == [300.0, 22050.0]
        pd.send("play", "drv-b")
        assert pd.result("play") == ["drv-b", 300.0, 22050.0]
        assert np.array_equal(pd.read_array("drv-b"), sound)
    finally:
        (DRIVER.parent / rel).unlink()


def test_progress_then_result_and_cancel(pd_driver):
    pd = pd_driver("diagnostics")
    pd.send("sleep", 0.3)
    first = pd.next()
    assert first[:2] == ["status", "progress"]
    assert pd.result("slept") == [0.3]
    pd.send("sleep", 30)
    assert pd.next()[:2] == ["status", "progress"]
    pd.send("cancel")
    assert pd.expect("status", "cancelled") == ["sleep"]
    pd.send("ping")
    assert pd.result("pong") == []


def test_two_pd_processes_each_get_their_own_result(pd_driver):
    a, b = pd_driver("diagnostics"), pd_driver("diagnostics")
    a.send("noise", "drv-a", 64000, 1)
    b.send("noise", "drv-a", 64000, 2)
    assert a.result("noise") == ["drv-a", 64000.0]
    assert b.result("noise") == ["drv-a", 64000.0]
    rng = lambda seed: np.random.default_rng(seed).uniform(-1.0, 1.0, 64000).astype(np.float32)  # noqa: E731
    assert np.array_equal(a.read_array("drv-a"), rng(1))
    assert np.array_equal(b.read_array("drv-a"), rng(2))


def test_describe_lists_the_messages(pd_driver):
    pd = pd_driver("diagnostics")
    pd.send("describe")
    names = pd.result("messages")
    assert {"ping", "tone", "echo", "sleep", "unload", "describe"} <= set(names)


def test_two_instances_in_one_patch_each_get_their_own_result(hub, tmp_path):
    import subprocess

    from pdharness import DRIVER
    from pdbridge.pd import HEADLESS_FLAGS, PATCH_DIR, find_pd

    out_a, out_b = tmp_path / "a.wav", tmp_path / "b.wav"
    cmd = [str(find_pd()), *HEADLESS_FLAGS, "-path", str(PATCH_DIR), "-send",
           f"pdbridge-port {hub.port}; two-out-a symbol {out_a}; two-out-b symbol {out_b}",
           "-open", str(DRIVER.parent / "two_instances.pd")]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    rng = lambda seed: np.random.default_rng(seed).uniform(-1.0, 1.0, 2000).astype(np.float32)  # noqa: E731
    assert np.array_equal(soundfile.read(out_a, dtype="float32")[0], rng(11))
    assert np.array_equal(soundfile.read(out_b, dtype="float32")[0], rng(22))
