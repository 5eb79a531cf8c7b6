"""Features of a sound (f0, confidence, loudness or power) and the course's changes to them.

:func:`compute` turns a recording into what a DDSP decoder listens to, with ddsp's own feature
functions (``compute_loudness``, ``compute_power``) and :mod:`.pitch`. :func:`transfer` applies the
controls of the course's ``run`` message and the colab's "auto adjust" in the course's order:
register shift toward the dataset's mean pitch, loudness quantile mapping, ``quiet`` for note-off
parts, ``autotune``; then the user's loudness shift, octave shift (clipped at MIDI 110) and the
confidence mask that silences unvoiced frames (f0 = 0).
"""
from __future__ import annotations

import sys
import types
from dataclasses import dataclass
from typing import Any, Optional

import numpy as np

from . import crepe_module

crepe_module.install()

import ddsp  # noqa: E402
import ddsp.spectral_ops  # noqa: E402
from ddsp.training.postprocessing import detect_notes, fit_quantile_transform  # noqa: E402

from . import pitch  # noqa: E402
from .model import LOUDNESS, ModelInfo  # noqa: E402

MAX_MIDI = 110.0
"""The course clips shifted f0 at this MIDI note."""


def _colab_utils() -> types.ModuleType:
    """ddsp's ``colab_utils`` (home of ``get_tuning_factor`` and ``auto_tune``, the colab's
    autotune). It imports ``google.colab`` at module level for its notebook upload/download
    helpers, which only exists inside Colab; we register empty ``google.colab.files`` and
    ``google.colab.output`` modules while importing it and never call those helpers."""
    if "ddsp.colab.colab_utils" not in sys.modules and "google.colab" not in sys.modules:
        google = sys.modules.setdefault("google", types.ModuleType("google"))
        colab = types.ModuleType("google.colab")
        for name in ("files", "output"):
            setattr(colab, name, types.ModuleType(f"google.colab.{name}"))
            sys.modules[f"google.colab.{name}"] = getattr(colab, name)
        colab.files.download = None  # type: ignore[attr-defined]
        google.colab = colab  # type: ignore[attr-defined]
        sys.modules["google.colab"] = colab
    import ddsp.colab.colab_utils

    return ddsp.colab.colab_utils


@dataclass
class Features:
    """One value per model frame: f0 (Hz), CREPE confidence (0..1), level (dB: loudness or power)."""

    f0_hz: np.ndarray
    confidence: np.ndarray
    level_db: np.ndarray

    @property
    def nbytes(self) -> int:
        return self.f0_hz.nbytes + self.confidence.nbytes + self.level_db.nbytes


def level_db(audio: np.ndarray, info: ModelInfo) -> np.ndarray:
    """The model's level feature of ``audio`` (at the model's rate): ddsp's A-weighted loudness for
    solo_instrument-style models, its frame power for DDSP-VST models."""
    if info.feature == LOUDNESS:
        values = ddsp.spectral_ops.compute_loudness(audio, info.sample_rate, info.frame_rate, use_tf=False)
    else:
        values = ddsp.spectral_ops.compute_power(audio, info.sample_rate, info.frame_rate, info.frame_size,
                                                 padding="center").numpy()
    return np.asarray(values, np.float32)


def compute(audio: np.ndarray, audio_16k: np.ndarray, info: ModelInfo, tracker: str) -> Features:
    """Features for ``audio`` at the model's rate (``audio_16k``: the same sound at CREPE's 16 kHz),
    ``info.n_frames(len(audio))`` frames."""
    n = info.n_frames(len(audio))
    track = pitch.track(audio_16k, info.frame_rate, tracker)
    level = level_db(audio, info)
    return Features(_fit(track.f0_hz, n), _fit(track.confidence, n), _fit(level, n))


def _fit(values: np.ndarray, n: int) -> np.ndarray:
    """Trim to ``n`` frames (features are centred, so there is one more than the decoder needs),
    or repeat the last value for a sound shorter than one CREPE frame."""
    values = np.asarray(values, np.float32)[:n]
    return np.pad(values, (0, n - len(values)), mode="edge") if len(values) else np.zeros(n, np.float32)


@dataclass
class Settings:
    """The course's ``run`` controls (meanings and defaults of its ``timbre_transfer`` handler)."""

    octave: float = 0.0
    confidence: float = 0.0
    loudness: float = 0.0
    adjust: bool = True
    quiet: float = 20.0
    autotune: float = 0.0


def transfer(features: Features, settings: Settings,
             statistics: Optional[dict[str, Any]]) -> tuple[np.ndarray, np.ndarray]:
    """f0 (Hz) and level (dB) for the decoder, changed as the course's handler changes them."""
    f0 = features.f0_hz.astype(np.float64).copy()
    level = features.level_db.astype(np.float64).copy()
    confidence = features.confidence
    if settings.adjust and statistics is not None and len(f0):
        mask_on, note_on_value = detect_notes(features.level_db, confidence, settings.confidence)
        if np.any(mask_on):
            pitch_midi = np.asarray(ddsp.core.hz_to_midi(features.f0_hz))
            octaves = (statistics["mean_pitch"] - np.mean(pitch_midi[mask_on])) / 12.0
            f0 = _shift_octaves(f0, (np.floor if octaves > 1.5 else np.ceil)(octaves))
            if "quantile_transform" in statistics:
                _, normed = fit_quantile_transform(features.level_db, mask_on,
                                                   inv_quantile=statistics["quantile_transform"])
                mask_off = ~mask_on
                normed[mask_off] -= settings.quiet * (1.0 - note_on_value[mask_off][:, np.newaxis])
                level = np.reshape(normed, level.shape)
            if settings.autotune:
                f0_midi = np.array(ddsp.core.hz_to_midi(f0))
                colab = _colab_utils()
                factor = colab.get_tuning_factor(f0_midi, confidence, mask_on)
                tuned = colab.auto_tune(f0_midi, factor, mask_on, amount=settings.autotune)
                f0 = np.asarray(ddsp.core.midi_to_hz(tuned))
    level = level + settings.loudness
    f0 = _shift_octaves(f0, settings.octave)
    f0[confidence < settings.confidence] = 0.0
    return f0.astype(np.float32), level.astype(np.float32)


def _shift_octaves(f0: np.ndarray, octaves: float) -> np.ndarray:
    return np.clip(f0 * 2.0 ** octaves, 0.0, float(ddsp.core.midi_to_hz(MAX_MIDI)))
