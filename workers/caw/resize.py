"""The upsampler between scales: cubic interpolation on a centred grid, mirrored at the edges.

A scale's output is brought to the next scale's rate before the next generator adds detail. The
published models were trained with this interpolator (Keys' cubic, a = -0.5, on the grid of
Shocher et al.'s "ResizeRight": output sample j sits at input position ``j / s + (n_in - 1) / 2 -
(n_out - 1) / (2 s)``), so generation must use it too: with another one the generators would see
upsampled signals unlike those they learnt on. It is implemented here from that description.

Model input and output audio are converted with workers/runtime/resample.py; this module is only
the network's own, learnt-with, upsampling step.
"""
from __future__ import annotations

import math
from functools import lru_cache

import torch

TAPS = 4
EPS = float(torch.finfo(torch.float32).eps)


def cubic(x: torch.Tensor) -> torch.Tensor:
    """Keys' cubic convolution kernel (a = -0.5), support [-2, 2]."""
    a = x.abs()
    a2, a3 = a * a, a * a * a
    near = (1.5 * a3 - 2.5 * a2 + 1.0) * (a <= 1)
    far = (-0.5 * a3 + 2.5 * a2 - 4.0 * a + 2.0) * ((a > 1) & (a <= 2))
    return near + far


def upsampled_length(n_in: int, fs_in: int, fs_out: int) -> int:
    return math.ceil(fs_out / fs_in * n_in)


@lru_cache(maxsize=64)
def _taps(n_in: int, fs_in: int, fs_out: int) -> tuple[torch.Tensor, torch.Tensor]:
    """For each output sample, the 4 input indices it reads and their weights (summing to 1).

    Indices outside the signal are mirrored (``-1`` reads sample 0, ``n`` reads ``n - 1``); a
    weight is the kernel at the distance to the *mirrored* index, then the 4 are normalised. At the
    edges this differs slightly from true mirroring, as it did in the models' training.
    """
    if fs_out < fs_in:
        raise ValueError("the scales' upsampler only upsamples")
    scale = fs_out / fs_in
    n_out = upsampled_length(n_in, fs_in, fs_out)
    grid = torch.arange(n_out, dtype=torch.float32) / scale + (n_in - 1) / 2 - (n_out - 1) / (2 * scale)
    left = torch.ceil(grid - TAPS / 2 - EPS).long()
    index = left[:, None] + torch.arange(TAPS)
    mirror = torch.cat((torch.arange(n_in), torch.arange(n_in - 1, -1, -1)))
    index = mirror[torch.remainder(index, mirror.numel())]
    weights = cubic(grid[:, None] - index)
    total = weights.sum(dim=1, keepdim=True)
    total[total == 0] = 1
    return index, weights / total


def upsample(x: torch.Tensor, fs_in: int, fs_out: int, length: int) -> torch.Tensor:
    """``x`` (shape ``(..., n)``) at ``fs_out``, cut or zero-padded to ``length`` samples (the next
    scale's length: rounding may leave one sample more or less)."""
    if fs_in == fs_out:
        y = x
    else:
        index, weights = _taps(x.shape[-1], int(fs_in), int(fs_out))
        index, weights = index.to(x.device), weights.to(device=x.device, dtype=x.dtype)
        y = (x[..., index] * weights).sum(dim=-1)
    if y.shape[-1] >= length:
        return y[..., :length]
    return torch.nn.functional.pad(y, (0, length - y.shape[-1]))
