"""Band-limited sample-rate conversion between a Pd array's rate and a model's, for every worker.

A model only works at the rate it was trained at (RAVE at 44.1 or 48 kHz, SampleRNN often at 16
kHz), while a student's sound may be at any rate. We convert at the exact rational ratio reduced to
``up/down`` (44100 -> 48000 is 160/147) with scipy's polyphase filter, so there is no drift over
long files, and with a Kaiser-windowed sinc long and steep enough that what lies above the lower
rate's Nyquist frequency is removed rather than aliased.

scipy is in every model environment but not in the core one, so the runtime package does not
import this module: workers that convert rates import it themselves.
"""
from __future__ import annotations

import math

import numpy as np
from scipy.signal import firwin, resample_poly

ZERO_CROSSINGS = 24
"""Sinc lobes kept on each side of the filter: a transition band narrow enough that a tone just
above the new Nyquist frequency is removed (scipy's default keeps 10, and lets it through)."""
ROLLOFF = 0.94
"""Cutoff as a fraction of the lower Nyquist frequency: the transition band ends before it."""
KAISER_BETA = 10.0
"""About 100 dB of stopband: tones stay within 1e-3 of exact, as the tests check."""


def output_length(n: int, sr_in: int, sr_out: int) -> int:
    """Samples after conversion: the same duration, rounded up to a whole sample."""
    return math.ceil(n * sr_out / sr_in)


def resample(audio: np.ndarray, sr_in: int, sr_out: int) -> np.ndarray:
    """Convert ``audio`` (shape ``(..., n)``, float) from ``sr_in`` to ``sr_out`` Hz.

    Returns float32 of shape ``(..., output_length(n))``. Both rates must be positive whole numbers;
    equal rates return the input unchanged. Samples outside the input count as silence.
    """
    if sr_in <= 0 or sr_out <= 0 or int(sr_in) != sr_in or int(sr_out) != sr_out:
        raise ValueError(f"sample rates must be positive whole numbers, got {sr_in} and {sr_out}")
    x = np.asarray(audio, dtype=np.float32)
    if sr_in == sr_out or x.shape[-1] == 0:
        return x
    g = math.gcd(int(sr_in), int(sr_out))
    up, down = int(sr_out) // g, int(sr_in) // g
    widest = max(up, down)
    fir = firwin(2 * ZERO_CROSSINGS * widest + 1, ROLLOFF / widest, window=("kaiser", KAISER_BETA))
    return resample_poly(x.astype(np.float64), up, down, axis=-1, window=fir).astype(np.float32)
