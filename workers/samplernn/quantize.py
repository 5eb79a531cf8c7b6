"""Mapping between audio samples in [-1, 1] and the integer classes SampleRNN predicts.

Both schemes follow PRiSM SampleRNN bit for bit, so that models trained there (and the quantised
inputs they saw) mean the same thing here:

* ``linear``: ``int(((x + 1) / 2) * (q_levels - 1e-5) + 0.5e-5)``, computed in float32, and back
  with ``q / (q_levels / 2) - 1``. The 1e-5 keeps x = 1 inside the top class.
* ``mu-law``: ITU-T G.711 companding with mu = 255 (PRiSM forces 256 levels for mu-law).
"""
from __future__ import annotations

import numpy as np
import torch

Q_TYPES = ("linear", "mu-law")
_LINEAR_EPSILON = np.float32(1e-5)


def quantize(audio: np.ndarray, q_type: str, q_levels: int) -> np.ndarray:
    """Float samples (any shape) -> int64 classes in ``[0, q_levels - 1]``.

    Values outside [-1, 1] are clipped first (PRiSM would produce out-of-range classes for them).
    """
    x = np.clip(np.asarray(audio, dtype=np.float32), -1.0, 1.0)
    if q_type == "linear":
        q = ((x + np.float32(1.0)) / np.float32(2.0)) * (np.float32(q_levels) - _LINEAR_EPSILON)
        q = q + _LINEAR_EPSILON / np.float32(2.0)
        return np.clip(q.astype(np.int64), 0, q_levels - 1)
    if q_type == "mu-law":
        mu = np.float32(q_levels - 1)
        magnitude = np.log1p(mu * np.abs(x)) / np.log1p(mu)
        signal = np.sign(x) * magnitude
        return np.clip(((signal + 1) / 2 * mu + np.float32(0.5)).astype(np.int64), 0, q_levels - 1)
    raise ValueError(f"unknown q_type {q_type!r}; expected one of {Q_TYPES}")


def dequantize(q: np.ndarray | torch.Tensor, q_type: str, q_levels: int) -> np.ndarray:
    """Integer classes -> float32 samples in [-1, 1]."""
    if isinstance(q, torch.Tensor):
        q = q.cpu().numpy()
    c = np.asarray(q).astype(np.float32)
    if q_type == "linear":
        return c / np.float32(q_levels / 2) - np.float32(1.0)
    if q_type == "mu-law":
        mu = np.float32(q_levels - 1)
        signal = 2 * (c / mu) - 1
        magnitude = (np.power(np.float32(1.0) + mu, np.abs(signal)) - 1) / mu
        return (np.sign(signal) * magnitude).astype(np.float32)
    raise ValueError(f"unknown q_type {q_type!r}; expected one of {Q_TYPES}")


def zero_class(q_levels: int) -> int:
    """The class PRiSM uses for silence (the initial context when there is no seed)."""
    return q_levels // 2
