"""The signals the diagnostics worker produces: plain numpy, no protocol."""
from __future__ import annotations

import numpy as np


def sine(frequency: float, seconds: float, sample_rate: float, amplitude: float = 0.5) -> np.ndarray:
    """A sine wave starting at phase 0, computed in float64 and rounded once to float32."""
    n = int(round(seconds * sample_rate))
    t = np.arange(n, dtype=np.float64) / sample_rate
    return (amplitude * np.sin(2 * np.pi * frequency * t)).astype(np.float32)


def noise(n_samples: int, seed: int) -> np.ndarray:
    """Reproducible uniform noise in [-1, 1): every bit of every sample is checked by the tests."""
    return np.random.default_rng(seed).uniform(-1.0, 1.0, n_samples).astype(np.float32)
