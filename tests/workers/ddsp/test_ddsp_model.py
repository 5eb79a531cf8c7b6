"""DDSP model code in process: checkpoints, ddsp's own Autoencoder as the reference, CREPE, statistics."""
from __future__ import annotations

import os
import pickle
import shutil
from pathlib import Path

import numpy as np
import pytest

import workers.ddsp  # noqa: F401  (ddsp importable without the crepe package)
import ddsp.training  # noqa: E402
import tensorflow as tf  # noqa: E402

from workers.ddsp import features as feats  # noqa: E402
from workers.ddsp import model as ddsp_model  # noqa: E402
from workers.ddsp import pitch  # noqa: E402
from workers.ddsp.stats import StatisticsError, load_statistics  # noqa: E402
from workers.ddsp.training import synthetic_tone, write_random  # noqa: E402

ATOL = 1e-5
"""Our decoding against ddsp's Autoencoder call: the same ops on the same weights (float32)."""


def tone(f0: float, seconds: float, frame_rate: int = 50, sr: int = 16000) -> np.ndarray:
    n = int(seconds * frame_rate) + 1
    return synthetic_tone(np.full(n, f0), np.full(n, 0.8), frame_rate, seed=0, sample_rate=sr)


def autoencoder_reference(folder: Path, ckpt: str, audio: np.ndarray, f0: np.ndarray, info: ddsp_model.ModelInfo,
                          level: np.ndarray) -> tuple[dict, np.ndarray]:
    """The colab's way: bind the lengths in gin, build ddsp's Autoencoder, restore, call it once."""
    n_frames = len(f0)
    with ddsp_model.GIN_LOCK:
        ddsp_model.configure_gin(folder, n_samples=n_frames * info.hop, time_steps=n_frames)
        if info.feature == ddsp_model.LOUDNESS:
            import gin

            with gin.unlock_config():
                gin.parse_config(["F0LoudnessPreprocessor.compute_loudness = False"])
        model = ddsp.training.models.Autoencoder()
    model.restore(str(folder / ckpt), verbose=False)
    batch = {"audio": tf.constant(audio[None]), "f0_hz": tf.constant(f0[None]),
             "f0_confidence": tf.ones([1, n_frames]), "loudness_db": tf.constant(level[None])}
    tf.random.set_seed(0)
    outputs = model(batch, training=False)
    decoded = {k: outputs[k].numpy()[0] for k in ("amps", "harmonic_distribution", "noise_magnitudes")}
    return decoded, outputs["audio_synth"].numpy()[0]


@pytest.fixture(scope="module")
def tiny(tiny_folder: Path) -> ddsp_model.Instrument:
    return ddsp_model.load(tiny_folder)


def test_newest_checkpoint_and_decoder_equal_ddsp_autoencoder(tiny_folder: Path, tiny) -> None:
    assert sorted(p.name for p in tiny_folder.glob("ckpt-*.index")) == ["ckpt-100.index", "ckpt-200.index"]
    assert tiny.info.checkpoint_step == 200 and tiny.info.feature == "power" and tiny.info.frame_rate == 50
    audio = tone(330.0, 1.0)
    features = feats.compute(audio, audio, tiny.info, "tiny")
    controls = tiny.controls(features.f0_hz, features.level_db)
    ours = tiny.synthesize(controls, features.f0_hz, seed=0)
    reference, audio_ref = autoencoder_reference(tiny_folder, "ckpt-200", audio, features.f0_hz, tiny.info,
                                                 features.level_db)
    for key, value in reference.items():
        np.testing.assert_allclose(controls[key], value, atol=ATOL, err_msg=key)
    assert len(ours) == len(audio_ref) == len(audio)
    np.testing.assert_allclose(ours, audio_ref, atol=ATOL)
    older, _ = autoencoder_reference(tiny_folder, "ckpt-100", audio, features.f0_hz, tiny.info, features.level_db)
    assert np.abs(older["amps"] - controls["amps"]).max() > 1e-3  # the newest step was loaded, not the first


def test_checkpoint_files_listed_in_any_order_pick_the_highest_step(tiny_folder: Path, tmp_path: Path) -> None:
    folder = tmp_path / "steps"
    shutil.copytree(tiny_folder, folder)
    for suffix in (".index", ".data-00000-of-00001"):  # "ckpt-99" sorts after "ckpt-200" as text
        shutil.copy(folder / f"ckpt-100{suffix}", folder / f"ckpt-99{suffix}")
    (folder / "checkpoint").write_text('model_checkpoint_path: "ckpt-99"\n')
    assert ddsp_model.newest_checkpoint(folder)[1] == 200


def test_crepe_full_setting_is_ddsp_compute_audio_features() -> None:
    audio = tone(261.6, 0.5, frame_rate=250)
    expected = ddsp.training.metrics.compute_audio_features(audio, frame_rate=250)
    ours = pitch.track(audio, 250, "full")
    n = len(ours.f0_hz)
    np.testing.assert_array_equal(ours.f0_hz, expected["f0_hz"][:n])  # the same code path: exact
    np.testing.assert_array_equal(ours.confidence, expected["f0_confidence"][:n])
    fast = pitch.track(audio, 250, "tiny")
    voiced = (ours.confidence > 0.5) & (fast.confidence > 0.5)
    cents = 1200 * np.abs(np.log2(fast.f0_hz[voiced] / ours.f0_hz[voiced]))
    assert voiced.mean() > 0.8 and np.median(cents) < 10 and cents.max() < 50  # the fast tracker agrees


def test_crepe_weights_give_the_published_pitch_on_a_sine() -> None:
    sr = 16000
    sine = (0.5 * np.sin(2 * np.pi * 440 * np.arange(sr) / sr)).astype(np.float32)
    for tracker in pitch.TRACKERS:
        track = pitch.track(sine, 100, tracker)
        assert np.median(track.f0_hz[5:-5]) == pytest.approx(440, rel=0.005)
        assert np.median(track.confidence[5:-5]) > 0.9
    silent = pitch.track(np.zeros(sr, np.float32), 100, "tiny")
    assert not silent.f0_hz.any() and not silent.confidence.any()


class _Evil:
    def __reduce__(self):
        return (os.system, ("echo pwned",))


def test_statistics_loader_reads_data_and_refuses_code(tmp_path: Path) -> None:
    from ddsp.training.postprocessing import QuantileTransformer

    qt = QuantileTransformer(n_quantiles=10).fit(np.linspace(-60, -10, 100)[:, None])
    good = tmp_path / "dataset_statistics.pkl"
    good.write_bytes(pickle.dumps({"mean_pitch": np.float64(60.5), "quantile_transform": qt}))
    stats = load_statistics(good)
    assert stats["mean_pitch"] == 60.5
    np.testing.assert_array_equal(stats["quantile_transform"].quantiles_, qt.quantiles_)
    for bad in ({"mean_pitch": _Evil()}, {"x": print}):
        path = tmp_path / "bad.pkl"
        path.write_bytes(pickle.dumps(bad))
        with pytest.raises(StatisticsError, match="not data"):
            load_statistics(path)
    (tmp_path / "junk.pkl").write_bytes(b"not a pickle")
    with pytest.raises(StatisticsError):
        load_statistics(tmp_path / "junk.pkl")


def test_adjust_follows_the_course(tiny) -> None:
    """Register shift toward the dataset's mean pitch, then the user's octave, then the mask."""
    from ddsp.training.postprocessing import QuantileTransformer

    n = 100
    features = feats.Features(np.full(n, 220.0, np.float32), np.linspace(0, 1, n).astype(np.float32),
                              np.full(n, -20.0, np.float32))
    stats = {"mean_pitch": 81.0, "quantile_transform": QuantileTransformer(n_quantiles=10).fit(
        np.linspace(-50, -30, 50)[:, None])}
    f0, level = feats.transfer(features, feats.Settings(octave=0, confidence=0.5, adjust=True), stats)
    assert set(np.unique(f0)) == {0.0, 880.0}  # A3 is 24 semitones below 81: two octaves up
    assert (f0[features.confidence < 0.5] == 0).all()
    assert level.max() <= -30 + 1e-3  # loudness mapped into the dataset's range
    f0, level = feats.transfer(features, feats.Settings(octave=-1, loudness=6, adjust=False), None)
    np.testing.assert_allclose(f0, 110.0)
    np.testing.assert_allclose(level, -14.0)


@pytest.mark.slow
def test_full_size_solo_instrument_loads_and_equals_autoencoder(tmp_path: Path) -> None:
    folder = write_random(tmp_path / "solo", "models/solo_instrument.gin")
    model = ddsp_model.load(folder)
    assert (model.info.feature, model.info.frame_rate, model.info.n_harmonics, model.info.n_noise) == \
        ("loudness", 250, 60, 65)
    assert sum(int(np.prod(v.shape)) for v in model.model.trainable_variables) == 4_849_150
    audio = tone(196.0, 1.0, frame_rate=250)
    features = feats.compute(audio, audio, model.info, "tiny")
    assert len(features.f0_hz) == 250
    controls = model.controls(features.f0_hz, features.level_db)
    ours = model.synthesize(controls, features.f0_hz)
    reference, audio_ref = autoencoder_reference(folder, "ckpt-0", audio, features.f0_hz, model.info,
                                                 features.level_db)
    for key, value in reference.items():
        np.testing.assert_allclose(controls[key], value, atol=ATOL, err_msg=key)
    np.testing.assert_allclose(ours, audio_ref, atol=ATOL)
