"""[pdbridge.ddsp] in a real headless Pd, through the hub, to the DDSP worker in the tf environment.

Reference audio comes from this process running the same model code (whose decoding equals ddsp's
own Autoencoder, test_ddsp_model.py); Pd's arrays are float32, so curves read back from Pd are exact.
"""
from __future__ import annotations

import shutil
from pathlib import Path
from typing import Iterator

import numpy as np
import pytest
from pdharness import HubThread, PdDriver, require_worker

from pdbridge.pd import find_pd
from workers.ddsp import features as feats
from workers.ddsp import model as ddsp_model
from workers.ddsp import pitch
from workers.ddsp.training import synthetic_tone
from workers.runtime.resample import resample

pytestmark = pytest.mark.skipif(find_pd() is None, reason="Pure Data is not installed")

ARRAYS_PATCH = Path(__file__).parent / "patches" / "ddsp_arrays.pd"
SR = 44100


@pytest.fixture(scope="module")
def ddsp_hub(hub: HubThread) -> HubThread:
    require_worker("ddsp")
    return hub


def start_pd(hub: HubThread) -> PdDriver:
    import pdharness

    saved = pdharness.HEADLESS_FLAGS
    pdharness.HEADLESS_FLAGS = (*saved, "-open", str(ARRAYS_PATCH))
    try:
        return PdDriver(hub.port, "ddsp", timeout=300)
    finally:
        pdharness.HEADLESS_FLAGS = saved


@pytest.fixture(scope="module")
def pd(ddsp_hub: HubThread, tiny_folder: Path) -> Iterator[PdDriver]:
    driver = start_pd(ddsp_hub)
    driver.send("load", str(tiny_folder))
    assert driver.result("loaded") == [16000.0, 50.0]
    yield driver
    driver.close()


def tone_then_noise(f0: float = 220.0, seconds: float = 1.5, level: float = 0.8) -> np.ndarray:
    """A steady harmonic tone at 44.1 kHz, then as long again of quiet noise (CREPE is unsure there)."""
    n = int(seconds * 50) + 1
    tone = synthetic_tone(np.full(n, f0), np.full(n, level), 50, seed=1, sample_rate=SR)
    noise = np.random.default_rng(0).uniform(-0.05, 0.05, len(tone)).astype(np.float32)
    return np.concatenate([tone, noise])


def rms_db(x: np.ndarray) -> float:
    return float(20 * np.log10(np.sqrt(np.mean(np.square(x, dtype=np.float64))) + 1e-12))


def run_messages(pd: PdDriver, *atoms: object, selector: str = "transfer") -> tuple[float, list[float]]:
    """Send a transfer (or the course's run); its sample count and the progress fractions seen on the way."""
    pd.send(selector, *atoms)
    progress = []
    while True:
        msg = pd.next()
        if msg[:2] == ["status", "progress"]:
            progress.append(msg[2])
        elif msg[:2] == ["result", "transferred"]:
            return msg[2], progress
        elif msg[0] == "status" and msg[1] == "error":
            raise AssertionError(msg)


def test_info_and_the_course_message(pd: PdDriver, tiny_folder: Path) -> None:
    pd.send("info")
    lines = [pd.result(k) for k in ("model", "kind", "step", "sample_rate", "frame_rate", "harmonics",
                                    "noise_bands", "feature", "statistics")]
    assert lines[0] == [str(tiny_folder)] and lines[1] == ["checkpoint"] and lines[2] == [200.0]
    assert lines[5:] == [[60.0], [65.0], ["power"], [0.0]]
    pd.write_array("dd-in", tone_then_noise())
    # the course's patch: run <model> <in> <out> <octave> <confidence> <loudness> <in_sr> <out_sr> <adjust>
    # <quiet> <autotune>, the model named by its operative config file
    gin_file = str(tiny_folder / "operative_config-0.gin")
    n, _ = run_messages(pd, gin_file, "dd-in", "dd-out", 0, 0.2, 0, SR, 32000, 1, 0, 0, selector="run")
    out = pd.read_array("dd-out")
    assert n == len(out) == 3 * 32000 and np.abs(out).max() == pytest.approx(0.9, abs=1e-6)  # peak-normalised


def test_octave_shift_moves_the_output_f0(pd: PdDriver) -> None:
    pd.write_array("dd-in", tone_then_noise(220.0))
    for octave, expected in ((0, 220.0), (1, 440.0), (-1, 110.0)):
        run_messages(pd, "dd-in", "dd-out", "--octave", octave, "--sr", SR, "--normalize", 0)
        out = pd.read_array("dd-out")[: 16000]  # the tone's first second, at the model's 16 kHz
        track = pitch.track(out, 50, "tiny")
        voiced = track.confidence > 0.5
        assert voiced.mean() > 0.7
        assert np.median(track.f0_hz[voiced]) == pytest.approx(expected, rel=0.03)


def test_loudness_shift_raises_rms_and_confidence_silences_unvoiced(pd: PdDriver) -> None:
    # a tone in the middle of the training levels (about -24 dB power), so +-6 dB stays inside them
    pd.write_array("dd-in", tone_then_noise(level=0.25))
    tone_part = slice(2000, 22000)
    levels = {}
    for shift in (-6, 0, 6):
        run_messages(pd, "dd-in", "dd-out", "--loudness", shift, "--sr", SR, "--normalize", 0)
        levels[shift] = rms_db(pd.read_array("dd-out")[tone_part])
    assert 4 < levels[6] - levels[0] < 8 and 4 < levels[0] - levels[-6] < 8  # the shift (6 dB) within 2 dB

    run_messages(pd, "dd-in", "dd-out", "--confidence", 0, "--sr", SR, "--normalize", 0)
    loose = pd.read_array("dd-out")
    run_messages(pd, "dd-in", "dd-out2", "--confidence", 0.7, "--sr", SR, "--normalize", 0)
    strict = pd.read_array("dd-out2")
    noise_part = slice(30000, 46000)  # the noise half, well after the tone's reverb tail
    np.testing.assert_allclose(strict[tone_part], loose[tone_part], atol=1e-4)  # the tone is voiced
    # unvoiced frames get f0 = 0: the harmonic synth falls silent, only the filtered noise remains
    ac = lambda x: x - x.mean()  # noqa: E731
    assert rms_db(ac(strict[noise_part])) < rms_db(ac(loose[noise_part])) - 6


def test_features_then_synthesize_equals_run_and_features_are_cached(pd: PdDriver, tiny_folder: Path) -> None:
    audio = tone_then_noise(261.6)
    pd.write_array("dd-in", audio)
    first_n, first_progress = run_messages(pd, "dd-in", "dd-out", "--adjust", 0, "--sr", SR, "--normalize", 0)
    _, again_progress = run_messages(pd, "dd-in", "dd-out", "--adjust", 0, "--sr", SR, "--normalize", 0, "--octave", 0)
    assert 0.05 in first_progress and 0.05 not in again_progress  # pitch tracked once per content
    ran = pd.read_array("dd-out")
    run_messages(pd, "dd-in", "dd-out2", "--adjust", 0, "--sr", SR, "--normalize", 0, "--right", "dd-in")
    np.testing.assert_array_equal(pd.read_array("dd-out2"), ran)  # the mono downmix of two equal channels
    pd.send("features", "dd-in", "dd-f0", "dd-conf", "dd-ld", "--sr", SR)
    frames = pd.result("features")
    f0, conf, level = (pd.read_array(n) for n in ("dd-f0", "dd-conf", "dd-ld"))
    assert frames == [len(f0), 50.0] and len(f0) == len(conf) == len(level) == 151  # 3 s: n // hop + 1 centred frames
    assert np.median(f0[5:70]) == pytest.approx(261.6, rel=0.01) and conf[5:70].min() > 0.8
    pd.send("synthesize", "dd-f0", "dd-ld", "dd-out2", "--normalize", 0)
    assert pd.result("synthesized") == [first_n]
    np.testing.assert_array_equal(pd.read_array("dd-out2"), ran)
    # the same curves through this process's model code, which test_ddsp_model checks against ddsp
    model = ddsp_model.load(tiny_folder)
    expected = model.synthesize(model.controls(f0, level), f0, seed=0)
    np.testing.assert_allclose(ran, expected, atol=1e-5)
    # a drawn curve: one octave up over the whole clip
    pd.write_array("dd-f0b", f0 * 2)
    pd.send("synthesize", "dd-f0b", "dd-ld", "dd-out2", "--normalize", 0, "--out_sr", 44100)
    assert pd.result("synthesized") == [len(ran) * 44100 / 16000]


def test_bad_input_is_an_error_and_leaves_arrays_alone(pd: PdDriver) -> None:
    pd.write_array("dd-out2", np.full(5, 0.25, np.float32))
    pd.send("transfer", "dd-in", "nowhere", "--sr", SR)
    assert "nowhere" in pd.error()
    pd.send("transfer", "dd-in", "dd-out2", "--confidence", 2, "--sr", SR)
    assert "between 0 and 1" in pd.error()
    pd.send("transfer", "dd-in", "dd-out2", "--tracker", "huge", "--sr", SR)
    assert "tiny, full" in pd.error()
    pd.send("run", "no-such-model", "dd-in", "dd-out2")
    assert "DDSP model not found" in pd.error()
    pd.write_array("dd-f0b", np.zeros(0, np.float32))
    pd.send("transfer", "dd-f0b", "dd-out2", "--sr", SR)
    assert "too short" in pd.error()
    pd.send("synthesize", "dd-f0", "dd-out", "dd-out2")
    assert "same length" in pd.error()
    pd.send("transfer", "dd-in", "dd-out2", "--sr", SR, "--right", "dd-f0")
    assert "to mix them to mono" in pd.error()
    np.testing.assert_array_equal(pd.read_array("dd-out2"), np.full(5, 0.25, np.float32))


def test_two_objects_hold_two_instruments(ddsp_hub: HubThread, pd: PdDriver, tiny_folder: Path, tmp_path: Path) -> None:
    older = tmp_path / "older"
    older.mkdir()
    for f in tiny_folder.iterdir():
        if f.is_file() and "ckpt-200" not in f.name:
            shutil.copy(f, older / f.name)
    other = start_pd(ddsp_hub)
    try:
        other.send("load", str(older))
        other.result("loaded")
        other.send("info")
        other.result("model")
        other.result("kind")
        assert other.result("step") == [100.0]
        pd.send("info")
        pd.result("model")
        pd.result("kind")
        assert pd.result("step") == [200.0]
    finally:
        other.close()


def test_a_broken_folder_is_a_clear_error(pd: PdDriver, tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    other = tmp_path / "nockpt"
    other.mkdir()
    (other / "operative_config-0.gin").write_text("RnnFcDecoder.rnn_channels = 8\n")
    pd.send("load", str(tmp_path / "empty"))
    assert "is not a DDSP model" in pd.error()
    pd.send("load", str(other))
    assert "no ckpt-N.index" in pd.error()


def test_statistics_with_code_are_refused_through_pd(pd: PdDriver, tiny_folder: Path, tmp_path: Path) -> None:
    import os
    import pickle

    class Evil:
        def __reduce__(self):
            return (os.system, ("touch " + str(tmp_path / "pwned"),))

    folder = tmp_path / "evil"
    shutil.copytree(tiny_folder, folder)
    (folder / "dataset_statistics.pkl").write_bytes(pickle.dumps({"mean_pitch": Evil()}))
    pd.send("load", str(folder))
    assert "posix.system" in pd.error() and not (tmp_path / "pwned").exists()


@pytest.mark.slow
def test_a_ddsp_vst_export_plays_through_pd(ddsp_hub: HubThread, tiny_export: Path) -> None:
    other = start_pd(ddsp_hub)
    try:
        other.send("load", str(tiny_export))
        assert other.result("loaded") == [16000.0, 50.0]
        other.send("info")
        other.result("model")
        assert other.result("kind") == ["tflite"]  # the .tflite is preferred, as the plugin uses it
        audio = tone_then_noise(level=0.5)
        other.write_array("dd-in", audio)
        run_messages(other, "dd-in", "dd-out", "--sr", SR, "--normalize", 0)
        out = other.read_array("dd-out")
        model = ddsp_model.load(tiny_export)
        at16 = resample(audio, SR, 16000)
        features = feats.compute(at16, at16, model.info, "tiny")
        expected = model.synthesize(model.controls(features.f0_hz, features.level_db), features.f0_hz, seed=0)
        np.testing.assert_allclose(out, expected, atol=1e-5)
    finally:
        other.close()


# -- the example patch as shipped ----------------------------------------------------------------
EXAMPLE = Path(__file__).resolve().parents[3] / "pd_patches" / "examples" / "timbre_transfer.pd"
CLICK_HELPER = Path(__file__).resolve().parents[1] / "gansynth" / "patches"
"""pdbridge.gstestclick.pd: "<receiver> <value>" sends <value> to <receiver>, like a click."""


def with_receivers(source: Path, dest: Path, clicks: dict[str, str]) -> Path:
    """A copy of a patch where ``[r ddtest-<key>]`` feeds the top-level box whose line contains
    ``clicks[key]``, and [pdbridge.ddsp]'s outlets go to the driver (drv-result, drv-status)."""
    lines = source.read_text().splitlines()
    boxes, depth = [], 0
    for line in lines:  # Pd numbers the top level's boxes in file order; a graph is one box (its restore line)
        if line.startswith("#N canvas"):
            depth += 1
        elif line.startswith("#X restore"):
            depth -= 1
            if depth == 1:
                boxes.append(line)
        elif depth == 1 and line.startswith(("#X obj ", "#X msg ", "#X text ", "#X floatatom ")):
            boxes.append(line)
    index = {key: next(i for i, b in enumerate(boxes) if text in b and not b.startswith("#X text"))
             for key, text in {**clicks, "object": "pdbridge.ddsp;"}.items()}
    n = len(boxes)
    extra = [f"#X obj 0 0 r ddtest-{key};\n#X connect {n + i} 0 {index[key]} 0;" for i, key in enumerate(clicks)]
    n += len(clicks)
    extra += ["#X obj 0 0 s drv-result;", f"#X connect {index['object']} 0 {n} 0;",
              "#X obj 0 0 s drv-status;", f"#X connect {index['object']} 1 {n + 1} 0;"]
    dest.write_text("\n".join(lines + extra) + "\n")
    return dest


def test_example_patch_renders_curves_and_drawings(ddsp_hub: HubThread, tiny_folder: Path, tmp_path: Path) -> None:
    import pdharness

    (tmp_path / "violin").symlink_to(tiny_folder)  # the patch's `load violin` finds it beside the patch
    patch = with_receivers(EXAMPLE, tmp_path / EXAMPLE.name, {
        "load": "load violin", "octave": "floatatom 20 370", "features": "empty empty features",
        "synthesize": "msg 20 660 synthesize"})
    saved = pdharness.HEADLESS_FLAGS
    pdharness.HEADLESS_FLAGS = (*saved, "-path", str(CLICK_HELPER), "-open", str(patch))
    try:
        pd = PdDriver(ddsp_hub.port, "gstestclick", timeout=300)
    finally:
        pdharness.HEADLESS_FLAGS = saved
    try:
        audio = tone_then_noise(196.0, seconds=1.0, level=0.5)
        pd.write_array("tt-in", audio)
        pd.send("ddtest-load", "bang")
        pd.result("loaded")
        pd.send("ddtest-octave", 1)  # a control move: run with every control's value, sr 44100 (loadbang)
        n = pd.result("transferred")[0]
        model = ddsp_model.load(tiny_folder)
        at16 = resample(audio, SR, 16000)
        features = feats.compute(at16, at16, model.info, "tiny")
        f0, level = feats.transfer(features, feats.Settings(octave=1, adjust=False, quiet=0), None)
        expected = resample(model.synthesize(model.controls(f0, level), f0), 16000, SR)
        expected *= 0.9 / np.abs(expected).max()
        out = pd.read_array("tt-out")
        assert n == len(out) == len(expected)
        np.testing.assert_allclose(out, expected, atol=1e-5)

        pd.send("ddtest-features", "bang")
        assert pd.result("features") == [len(features.f0_hz), 50.0]
        np.testing.assert_array_equal(pd.read_array("tt-f0"), features.f0_hz)
        pd.write_array("tt-f0", np.full(len(features.f0_hz), 300.0, np.float32))  # a drawn line at 300 Hz
        pd.send("ddtest-synthesize", "bang")
        pd.result("synthesized")
        drawn = pd.read_array("tt-out")
        track = pitch.track(resample(drawn, SR, 16000), 50, "tiny")
        voiced = track.confidence > 0.5
        assert np.median(track.f0_hz[voiced]) == pytest.approx(300.0, rel=0.03)
    finally:
        pd.close()


def test_dataset_statistics_drive_auto_adjust(pd: PdDriver, tiny_folder: Path, tmp_path: Path) -> None:
    """ddsp's own save_dataset_statistics output next to the checkpoint: info says so, and auto
    adjust moves the pitch register and loudness as the course's handler does."""
    import pickle

    from ddsp.training.postprocessing import compute_dataset_statistics

    from workers.ddsp.training import ToneProvider

    folder = tmp_path / "with-stats"
    shutil.copytree(tiny_folder, folder)
    stats = compute_dataset_statistics(ToneProvider(count=8), batch_size=4, power_frame_size=1024,
                                       power_frame_rate=50)
    (folder / "dataset_statistics.pkl").write_bytes(pickle.dumps(stats))
    pd.send("load", str(folder))
    pd.result("loaded")
    pd.send("info")
    assert [pd.result(k) for k in ("model", "kind", "step", "sample_rate", "frame_rate", "harmonics",
                                      "noise_bands", "feature", "statistics")][-1] == [1.0]
    audio = tone_then_noise(110.0, level=0.5)  # two octaves below the training tones
    pd.write_array("dd-in", audio)
    run_messages(pd, "dd-in", "dd-out", "--sr", SR, "--normalize", 0, "--adjust", 1, "--confidence", 0.5)
    adjusted = pd.read_array("dd-out")
    model = ddsp_model.load(folder)
    at16 = resample(audio, SR, 16000)
    features = feats.compute(at16, at16, model.info, "tiny")
    f0, level = feats.transfer(features, feats.Settings(confidence=0.5, adjust=True), model.info.statistics)
    assert np.median(f0[f0 > 0]) > 200  # shifted up toward the data's mean pitch
    np.testing.assert_allclose(adjusted, model.synthesize(model.controls(f0, level), f0), atol=1e-5)
    pd.send("load", str(tiny_folder))  # leave the module's object as the other tests expect it
    pd.result("loaded")


@pytest.mark.slow
def test_full_size_solo_instrument_through_pd(ddsp_hub: HubThread, tmp_path: Path) -> None:
    """The loudness-feature path (solo_instrument.gin, 250 frames/s) at full size, random weights."""
    from workers.ddsp.training import write_random

    folder = write_random(tmp_path / "solo", "models/solo_instrument.gin")
    other = start_pd(ddsp_hub)
    try:
        other.send("load", str(folder))
        assert other.result("loaded") == [16000.0, 250.0]
        audio = tone_then_noise(220.0, seconds=0.5, level=0.5)
        other.write_array("dd-in", audio)
        n, _ = run_messages(other, "dd-in", "dd-out", "--sr", SR, "--normalize", 0, "--octave", -1)
        out = other.read_array("dd-out")
        model = ddsp_model.load(folder)
        at16 = resample(audio, SR, 16000)
        features = feats.compute(at16, at16, model.info, "tiny")
        f0, level = feats.transfer(features, feats.Settings(octave=-1), None)
        assert n == len(out) == len(at16) // 64 * 64
        np.testing.assert_allclose(out, model.synthesize(model.controls(f0, level), f0), atol=1e-5)
    finally:
        other.close()
