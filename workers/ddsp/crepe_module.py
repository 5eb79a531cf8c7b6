"""The ``crepe`` module ddsp 3.7.0 imports, answered by :mod:`.pitch`.

``ddsp.spectral_ops`` and ``ddsp.losses`` do ``import crepe`` at module level, so ddsp cannot even
be imported without it, and the crepe package cannot be installed offline (its setup.py
downloads the weights). :func:`install` registers a module named ``crepe`` with the three things
ddsp uses: ``predict`` (``spectral_ops.compute_f0``), ``core.build_and_load_model`` and
``core.models`` (``PretrainedCREPE``, ``reset_crepe``). They run CREPE's network with its original
weights (:func:`.pitch.network`), so ddsp's own ``compute_audio_features`` works as the course
and the colab ran it. A real crepe installed in the environment is left alone.
"""
from __future__ import annotations

import sys
import types
from typing import Optional

import numpy as np

from . import pitch


def predict(audio: np.ndarray, sr: int = pitch.SAMPLE_RATE, model_capacity: str = "full", viterbi: bool = False,
            center: bool = True, step_size: float = 10, verbose: int = 1
            ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """crepe.predict: (time s, frequency Hz, confidence, activation) for mono 16 kHz ``audio``."""
    del verbose
    if sr != pitch.SAMPLE_RATE:
        raise ValueError(f"this crepe takes {pitch.SAMPLE_RATE} Hz audio only, got {sr}")
    audio = np.asarray(audio, np.float32)
    if center:
        audio = np.pad(audio, pitch.FRAME_SIZE // 2)
    hop = int(pitch.SAMPLE_RATE * step_size / 1000)
    activation, silent = pitch.activations(audio, hop, model_capacity)
    cents = pitch.viterbi_cents(activation) if viterbi else pitch.local_average_cents(activation)
    frequency = 10.0 * 2 ** (cents / 1200.0)
    frequency[np.isnan(frequency) | silent] = 0.0
    confidence = np.max(activation, axis=1) if len(activation) else np.zeros(0)
    time = np.arange(len(activation)) * step_size / 1000.0
    return time, frequency, confidence, activation


def build_and_load_model(model_capacity: str) -> "object":
    """crepe.core.build_and_load_model: the Keras network with its weights."""
    models[model_capacity] = pitch.network(model_capacity)
    return models[model_capacity]


models: dict[str, Optional[object]] = {name: None for name in pitch.CAPACITIES}


def install() -> None:
    """Make ``import crepe`` give this module (and ``crepe.core``), unless crepe is installed."""
    if "crepe" in sys.modules:
        return
    try:
        import crepe  # noqa: F401  a real crepe wins
        return
    except ImportError:
        pass
    module = types.ModuleType("crepe", __doc__)
    core = types.ModuleType("crepe.core")
    core.predict = predict  # type: ignore[attr-defined]
    core.build_and_load_model = build_and_load_model  # type: ignore[attr-defined]
    core.models = models  # type: ignore[attr-defined]
    module.predict = predict  # type: ignore[attr-defined]
    module.core = core  # type: ignore[attr-defined]
    sys.modules["crepe"] = module
    sys.modules["crepe.core"] = core
