"""ddsp_export folders (what DDSP-VST users train and export) against the checkpoint they came from."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf

import workers.ddsp  # noqa: F401
from workers.ddsp import features as feats
from workers.ddsp import model as ddsp_model
from workers.ddsp.training import synthetic_tone

pytestmark = pytest.mark.slow  # the export (SavedModel + TFLite conversion) takes ~10 s once

CONTROLS_ATOL = 1e-6
"""Exported decoder vs the checkpoint's decoder plus ddsp's synth scaling: the same float32 graph."""
DRY_ATOL = 1e-5


@pytest.fixture(scope="module")
def checkpoint(tiny_folder: Path) -> ddsp_model.CheckpointInstrument:
    return ddsp_model.load(tiny_folder)


@pytest.fixture(scope="module")
def phrase(checkpoint: ddsp_model.CheckpointInstrument) -> feats.Features:
    n = 76
    f0 = np.geomspace(250, 400, n)
    audio = synthetic_tone(f0, np.sin(np.linspace(0.1, 3.0, n)) * 0.5, 50, seed=2)
    return feats.compute(audio, audio, checkpoint.info, "tiny")


@pytest.mark.parametrize("kind", ["savedmodel", "tflite"])
def test_export_gives_the_checkpoints_controls_and_audio(kind: str, tiny_export: Path, checkpoint, phrase) -> None:
    exported = ddsp_model.ExportInstrument(tiny_export, prefer=kind)
    info = exported.info
    assert (info.kind, info.sample_rate, info.frame_rate, info.n_harmonics, info.n_noise) == (kind, 16000, 50, 60, 65)
    f0 = phrase.f0_hz
    controls = exported.controls(f0, phrase.level_db)

    raw = checkpoint.controls(f0, phrase.level_db)
    group = checkpoint.model.processor_group
    f0_t = tf.constant(f0[None, :, None])
    harmonic = group.harmonic.get_controls(tf.constant(raw["amps"][None]),
                                           tf.constant(raw["harmonic_distribution"][None]), f0_t)
    noise = group.filtered_noise.get_controls(tf.constant(raw["noise_magnitudes"][None]))
    np.testing.assert_allclose(controls["amplitudes"], harmonic["amplitudes"].numpy()[0], atol=CONTROLS_ATOL)
    np.testing.assert_allclose(controls["harmonic_distribution"], harmonic["harmonic_distribution"].numpy()[0],
                               atol=CONTROLS_ATOL)
    np.testing.assert_allclose(controls["noise_magnitudes"], noise["magnitudes"].numpy()[0], atol=CONTROLS_ATOL)

    # dry (harmonic + noise, same seed): ddsp's processor group's "add" node, cropped as vst.gin crops
    checkpoint.synthesize(raw, f0)  # sets the synths' lengths
    tf.random.set_seed(0)
    nodes = group({**{k: tf.constant(v[None]) for k, v in raw.items()}, "f0_hz": f0_t}, return_outputs_dict=True)
    dry_reference = nodes["controls"]["add"]["signal"].numpy()[0][: -info.hop]
    ir, exported.ir = exported.ir, None
    dry = exported.synthesize(controls, f0, seed=0)
    exported.ir = ir
    np.testing.assert_allclose(dry, dry_reference, atol=DRY_ATOL)

    # wet: the checkpoint draws its reverb's noise afresh on every call, the export keeps the draw it
    # wrote to reverb_ir_16000_hz.wav (16-bit): the same room, not the same samples
    wet, wet_reference = exported.synthesize(controls, f0, seed=0), checkpoint.synthesize(raw, f0, seed=0)
    assert len(wet) == len(wet_reference)
    level = lambda x: 10 * np.log10(np.mean(np.square(x, dtype=np.float64)))  # noqa: E731
    assert abs(level(wet) - level(wet_reference)) < 1.0
