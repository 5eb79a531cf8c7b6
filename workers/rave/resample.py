"""Band-limited sample-rate conversion between a Pd array's rate and a RAVE model's rate.

A RAVE export only works at the rate it was trained at (44.1 kHz for most, 48 kHz for some), while a
student's sound may be at any rate. We convert with a windowed-sinc polyphase filter: for a ratio
reduced to ``up/down`` (44100 -> 48000 is 160/147) every output sample lies at one of ``up`` fixed
fractional positions between input samples, so ``up`` short filters, run as one strided
convolution, compute all of them. That is exact to the filter's design (no drift over long files)
and needs only torch, which the worker already has.
"""
from __future__ import annotations

import math

import numpy as np
import torch

ZERO_CROSSINGS = 24
"""Sinc lobes kept on each side: ~100 dB stopband with the Kaiser window below."""
ROLLOFF = 0.94
"""Cutoff as a fraction of the lower Nyquist: keeps aliasing out of the top 6 % of the band."""
KAISER_BETA = 10.0


def _polyphase_kernels(up: int, down: int) -> tuple[torch.Tensor, int]:
    """``up`` filters of ``2 * half + 1`` taps, one per output phase, and ``half``.

    Output sample ``n`` sits at input time ``n * down / up``; its phase is ``n * down % up`` and its
    filter holds the windowed sinc centred at the fractional part of that time, sampled at the
    integer input positions ``floor(time) - half .. floor(time) + half``.
    """
    cutoff = ROLLOFF * min(1.0, up / down)  # in units of the input's Nyquist frequency
    half = math.ceil(ZERO_CROSSINGS / cutoff)
    taps = torch.arange(-half, half + 1, dtype=torch.float64)
    fractions = torch.arange(up, dtype=torch.float64) / up
    t = taps[None, :] - fractions[:, None]  # distance from each tap to the output instant
    window = torch.special.i0(KAISER_BETA * torch.sqrt(torch.clamp(1 - (t / (half + 1)) ** 2, min=0.0)))
    window = window / torch.special.i0(torch.tensor(KAISER_BETA, dtype=torch.float64))
    kernels = cutoff * torch.sinc(cutoff * t) * window
    return kernels.float(), half


def output_length(n: int, sr_in: int, sr_out: int) -> int:
    """Samples after conversion: the same duration, rounded up to a whole sample."""
    return math.ceil(n * sr_out / sr_in)


CHUNK = 1 << 16
"""Output samples computed per step: bounds the gathered (chunk x taps) matrix to a few MB."""


def resample(audio: np.ndarray, sr_in: int, sr_out: int) -> np.ndarray:
    """Convert ``audio`` (shape ``(..., n)``, float) from ``sr_in`` to ``sr_out`` Hz.

    Returns float32 of shape ``(..., output_length(n))``. Both rates must be positive whole numbers;
    equal rates return the input unchanged. Samples outside the input count as silence.
    """
    if sr_in <= 0 or sr_out <= 0 or int(sr_in) != sr_in or int(sr_out) != sr_out:
        raise ValueError(f"sample rates must be positive whole numbers, got {sr_in} and {sr_out}")
    x = np.asarray(audio, dtype=np.float32)
    if sr_in == sr_out:
        return x
    g = math.gcd(int(sr_in), int(sr_out))
    up, down = int(sr_out) // g, int(sr_in) // g
    kernels, half = _polyphase_kernels(up, down)
    lead, n = x.shape[:-1], x.shape[-1]
    n_out = output_length(n, sr_in, sr_out)
    signal = torch.nn.functional.pad(torch.from_numpy(x.reshape(-1, n)), (half, half + 1))
    taps = torch.arange(2 * half + 1)
    out = torch.empty(signal.shape[0], n_out)
    for start in range(0, n_out, CHUNK):
        index = torch.arange(start, min(start + CHUNK, n_out), dtype=torch.int64) * down
        base, phase = index // up, index % up  # integer input position and fractional phase
        window = signal[:, base[:, None] + taps[None, :]]  # (batch, chunk, taps); pad shifts by half
        out[:, start:start + len(index)] = (window * kernels[phase][None]).sum(-1)
    return out.numpy().reshape(*lead, n_out)
