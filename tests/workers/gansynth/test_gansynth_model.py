"""workers.gansynth.model against magenta 2.1.4's own GANSynth code, on checkpoints it wrote."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from workers.gansynth.checkpoint_random import CUSTOM_PITCHES
from workers.gansynth.model import CheckpointError, GANSynth, PitchError, find_checkpoint, slerp


def test_official_layout_loads_with_training_flags(tiny_model: GANSynth, tiny_ckpt: Path) -> None:
    files = find_checkpoint(tiny_ckpt)
    assert files.stage_id == 12 and files.ckpt_prefix.name == "model.ckpt-11000000"
    assert (tiny_model.audio_length, tiny_model.sample_rate, tiny_model.latent_size) == (64000, 16000, 256)
    assert tiny_model.pitches == list(range(24, 85))
    assert tiny_model.layer_shape("conv0") == (2, 16, 8)


def test_generate_equals_magenta_generate_for_any_note_count(tiny_model: GANSynth) -> None:
    """5 notes on a batch-3 graph: two batches, the second padded; magenta's call is the reference."""
    z = tiny_model.random_z(5, np.random.default_rng(0))
    pitches = [24, 60, 84, 60, 33]
    ours = tiny_model.generate(z, pitches)
    reference = tiny_model.model.generate_samples_from_z(z, pitches)
    assert ours.shape == (5, 64000) and ours.dtype == np.float32
    np.testing.assert_array_equal(ours, reference)
    assert np.abs(ours).max() > 0


def test_result_does_not_depend_on_the_graph_batch_size(tiny_model: GANSynth, tiny_models) -> None:
    """Same notes from a batch-1 graph, up to float rounding (other kernels, phase integrated over 4 s)."""
    z = tiny_model.random_z(2, np.random.default_rng(1))
    np.testing.assert_allclose(tiny_models(1).generate(z, [40, 70]), tiny_model.generate(z, [40, 70]), atol=1e-3)


def test_pitch_outside_the_trained_range_is_an_error(tiny_model: GANSynth) -> None:
    z = tiny_model.random_z(1)
    with pytest.raises(PitchError, match="pitch 90.*24-84"):
        tiny_model.generate(z, [90])
    with pytest.raises(PitchError, match="60.5"):
        tiny_model.generate(z, [60.5])


def test_custom_model_pitches_come_from_meta_json(custom_ckpt: Path) -> None:
    model = GANSynth.load(custom_ckpt, batch_size=2)
    try:
        assert model.pitches == list(CUSTOM_PITCHES)
        assert model.default_pitch() == 32
        audio = model.generate(model.random_z(3, np.random.default_rng(2)), [32, 36, 33])
        assert audio.shape == (3, 64000) and np.isfinite(audio).all()
        with pytest.raises(PitchError, match="pitches 32 33 36"):
            model.generate(model.random_z(1), [34])
    finally:
        model.close()


def test_progress_is_reported_per_batch(tiny_model: GANSynth) -> None:
    seen: list[float] = []
    tiny_model.generate(tiny_model.random_z(4), [60] * 4, progress=seen.append)
    assert seen == [0.75, 1.0]


def test_layer_offsets_act_on_conv0(tiny_model: GANSynth) -> None:
    """Zero offsets change nothing; an offset gives what feeding the edited activation gives."""
    z = tiny_model.random_z(2, np.random.default_rng(3))
    plain = tiny_model.generate(z, [50, 51])
    zero = np.zeros(tiny_model.layer_shape("conv0"), np.float32)
    np.testing.assert_array_equal(tiny_model.generate(z, [50, 51], offsets=("conv0", zero)), plain)
    delta = np.random.default_rng(4).standard_normal(tiny_model.layer_shape("conv0")).astype(np.float32)
    edited = tiny_model.generate(z, [50, 51], offsets=("conv0", delta))
    fed = tiny_model.generate_from_layer("conv0", tiny_model.layer_activations("conv0", z, [50, 51]) + delta)
    np.testing.assert_array_equal(edited, fed)
    assert np.abs(edited - plain).max() > 1e-3


def test_unknown_layer_is_rejected(tiny_model: GANSynth) -> None:
    with pytest.raises(ValueError, match="unknown layer"):
        tiny_model.layer_shape("dense3")
    with pytest.raises(ValueError, match="blocks 1 to 7"):
        tiny_model.layer_shape("conv0_9")
    assert tiny_model.layer_shape("conv1_2") == (4, 32, 8)


def test_slerp_endpoints_and_norm() -> None:
    rng = np.random.default_rng(5)
    a, b = rng.standard_normal(256), rng.standard_normal(256)
    np.testing.assert_allclose(slerp(a, b, 0.0), a, atol=1e-12)
    np.testing.assert_allclose(slerp(a, b, 1.0), b, atol=1e-12)
    b_same_norm = b * np.linalg.norm(a) / np.linalg.norm(b)
    assert np.linalg.norm(slerp(a, b_same_norm, 0.3)) == pytest.approx(np.linalg.norm(a))
    np.testing.assert_allclose(slerp(a, 2 * a, 0.5), 1.5 * a)  # parallel: linear


@pytest.mark.parametrize("damage", ["no_experiment", "no_stage", "no_index", "bad_meta"])
def test_broken_checkpoint_folders_say_what_is_missing(tiny_ckpt: Path, tmp_path: Path, damage: str) -> None:
    root = tmp_path / "ckpt"
    shutil.copytree(tiny_ckpt, root, ignore=shutil.ignore_patterns("*.data-*", "*.meta"))
    if damage == "no_experiment":
        (root / "experiment.json").unlink()
        match = "no experiment.json"
    elif damage == "no_stage":
        shutil.rmtree(root / "stage_00012")
        match = "no stage_000NN"
    elif damage == "no_index":
        for p in (root / "stage_00012").glob("*.index"):
            p.unlink()
        match = "no model.ckpt-N.index"
    else:
        (root / "meta.json").write_text(json.dumps({"a": {"pitch": "x"}}))
        match = "trained pitches"
    with pytest.raises(CheckpointError, match=match):
        find_checkpoint(root)


@pytest.mark.slow
def test_full_mel_prog_hires_architecture(tmp_path: Path) -> None:
    """The published size (7.3 M generator weights, conv0 2x16x256) with random weights."""
    from workers.gansynth.checkpoint_random import generator_parameter_count, make_checkpoint

    root = make_checkpoint(tmp_path / "full", batch_size=2)
    assert generator_parameter_count(root) == 7_311_246
    model = GANSynth.load(root, batch_size=2)
    try:
        assert model.layer_shape("conv0") == (2, 16, 256) and model.pitches == list(range(24, 85))
        z = model.random_z(3, np.random.default_rng(0))
        audio = model.generate(z, [24, 60, 84])
        np.testing.assert_array_equal(audio, model.model.generate_samples_from_z(z, [24, 60, 84]))
        assert audio.shape == (3, 64000) and np.isfinite(audio).all()
    finally:
        model.close()
