"""Using a trained CAW model: variations, reconstruction, conditioning, bandwidth extension,
inpainting and denoising. All are one walk up the scales (:func:`run_scales`) that differ in where
it starts and which noise each scale gets.

Signals here are in the model's domain: at its rates, divided by the training clip's peak
(``norm_factor``); worker.py converts Pd arrays to and from it.
"""
from __future__ import annotations

import math
from typing import Callable, Optional, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from workers.runtime.resample import resample

from .folder import CAWModel
from .resize import upsample, upsampled_length

Progress = Callable[[float], None]
"""Called with the fraction done after each scale; may raise to cancel."""
NoiseFor = Callable[[int, int], torch.Tensor]
"""``noise(scale, length)``: the padded, amplitude-scaled noise a scale adds to its input."""
STITCH_HZ = 200.0
"""Bandwidth extension cross-fades the input's spectrum into the model's over this many Hz."""


class GenerationError(ValueError):
    """An input or request the model cannot serve; the text says why."""


def run_scales(model: CAWModel, device: str, lengths: Sequence[int], noise: NoiseFor, first: int = 0,
               start: Optional[torch.Tensor] = None, progress: Optional[Progress] = None) -> list[torch.Tensor]:
    """Run the generators from scale ``first`` up; returns every scale's output (shape (1, 1, n)).

    ``start`` is the signal the first generator refines (at its rate), zeros when None; after each
    scale the output is upsampled to the next scale's rate and ``lengths``.
    """
    gens, pad = model.frozen(device), model.config.pad
    prev = start if start is not None else torch.zeros(1, 1, lengths[first], device=device)
    cost = [lengths[k] * model.scales[k].channels ** 2 for k in range(len(gens))]
    outputs = []
    for k in range(first, len(gens)):
        padded = F.pad(prev, (pad, pad))
        out = gens[k](noise(k, prev.shape[-1]) + padded, padded)
        outputs.append(out)
        if k + 1 < len(gens):
            prev = upsample(out, model.fs_list[k], model.fs_list[k + 1], lengths[k + 1])
        if progress is not None:
            progress(sum(cost[first:k + 1]) / sum(cost[first:]))
    return outputs


def fresh_noise(model: CAWModel, device: str, rng: torch.Generator) -> NoiseFor:
    """New Gaussian noise times each scale's amplitude, padded: what makes a variation new."""
    pad = model.config.pad

    def noise(k: int, n: int) -> torch.Tensor:
        z = torch.randn(1, 1, n, generator=rng, device=rng.device) * model.noise_amps[k]
        return F.pad(z, (pad, pad)).to(device)

    return noise


def generator_for(seed: Optional[int], device: str = "cpu") -> torch.Generator:
    """Noise for one request: repeatable with a seed (on the CPU the same on every machine)."""
    rng = torch.Generator(device=device)
    rng.manual_seed(seed if seed is not None else int(torch.randint(0, 2 ** 62, (1,))))
    return rng


def variation(model: CAWModel, device: str, seconds: float, rng: torch.Generator,
              progress: Optional[Progress] = None) -> np.ndarray:
    """A new signal of ``seconds`` at the model's rate: fresh noise at every scale."""
    lengths = [round(fs * seconds) for fs in model.fs_list]
    if lengths[0] < 1:
        raise GenerationError(f"{seconds:g} s is too short for the {model.fs_list[0]} Hz scale")
    return _final(run_scales(model, device, lengths, fresh_noise(model, device, rng), progress=progress))


def reconstruct(model: CAWModel, device: str, all_scales: bool = False,
                progress: Optional[Progress] = None) -> list[np.ndarray]:
    """The training signal as the model rebuilds it from its fixed noise (deterministic); the last
    element is the finest scale (the only one unless ``all_scales``)."""
    outputs = run_scales(model, device, model.lengths, lambda k, n: model.reconstruction_noise[k], progress=progress)
    signals = [o.reshape(-1).cpu().numpy() for o in outputs]
    return signals if all_scales else signals[-1:]


def first_scale_above(model: CAWModel, hz: float) -> int:
    """The first scale whose rate is above ``hz`` (the one that starts refining a signal kept up to it)."""
    for k, fs in enumerate(model.fs_list):
        if fs > hz:
            return k
    raise GenerationError(f"the model's finest scale is {model.fs_list[-1]} Hz: nothing is left to generate above "
                          f"{hz:g} Hz")


def condition(model: CAWModel, device: str, signal: np.ndarray, sr: int, keep_hz: float, rng: Optional[torch.Generator],
              progress: Optional[Progress] = None) -> np.ndarray:
    """Keep ``signal``'s content up to ``keep_hz`` (its rate there) and let the finer scales vary
    it (``rng``) or, with ``rng`` None, rebuild its detail without noise (denoising)."""
    keep = min(int(keep_hz), int(sr))
    coarse = resample(signal, int(sr), keep) if keep != sr else np.asarray(signal, np.float32)
    first = first_scale_above(model, keep)
    seconds = len(coarse) / keep
    lengths = [int(seconds * fs) for fs in model.fs_list]
    start = torch.from_numpy(np.ascontiguousarray(coarse, dtype=np.float32)).reshape(1, 1, -1)
    start = upsample(start, keep, model.fs_list[first], upsampled_length(start.shape[-1], keep, model.fs_list[first]))
    if min(lengths[first:]) < 1:
        raise GenerationError("the input is too short")
    pad = model.config.pad
    noise = fresh_noise(model, device, rng) if rng is not None else (
        lambda k, n: torch.zeros(1, 1, n + 2 * pad, device=device))
    return _final(run_scales(model, device, lengths, noise, first, start.to(device), progress))


def extend(model: CAWModel, device: str, low: np.ndarray, sr: int, rng: torch.Generator,
           progress: Optional[Progress] = None) -> np.ndarray:
    """Bandwidth extension: ``low`` (at ``sr``, below the model's rate) keeps its band, the model
    generates the band above ``sr / 2`` conditioned on it, and the two are joined in the frequency
    domain with a linear cross-fade over :data:`STITCH_HZ` below the input's Nyquist frequency."""
    if sr >= model.fs:
        raise GenerationError(f"extend needs an input below the model's rate ({model.fs} Hz); this one is {sr} Hz")
    generated = condition(model, device, low, sr, sr, rng, progress)
    upsampled = resample(low, sr, model.fs)
    n = min(len(generated), len(upsampled))
    spec_low, spec_gen = np.fft.rfft(upsampled[:n]), np.fft.rfft(generated[:n])
    freqs = np.fft.rfftfreq(n, 1 / model.fs)
    cut = sr / 2
    weight = np.clip((cut - freqs) / STITCH_HZ, 0.0, 1.0)  # 1 below cut - 200 Hz, 0 above cut
    return np.fft.irfft(weight * spec_low + (1 - weight) * spec_gen, n).astype(np.float32)


def inpaint(model: CAWModel, device: str, signal: np.ndarray, holes: Sequence[tuple[int, int]],
            rng: Optional[torch.Generator], progress: Optional[Progress] = None) -> np.ndarray:
    """Fill ``holes`` ((start, end) samples at the model's rate) of the training clip.

    The model rebuilds the clip from its fixed noise, with new noise (``rng``) inside the holes at
    every scale, so the holes get new material that fits what surrounds them; ``rng`` None keeps the
    fixed noise (a model trained with --run_mode inpainting on exactly these holes). The result is
    the input outside the holes, the model inside, joined with Hann cross-fades half a hole long.
    """
    top = model.lengths[-1]
    if abs(len(signal) - top) > 2:
        raise GenerationError(f"inpaint works on the clip the model was trained on ({top / model.fs:.2f} s at "
                              f"{model.fs} Hz); this input is {len(signal) / model.fs:.2f} s - use condition for others")
    pad = model.config.pad

    def noise(k: int, n: int) -> torch.Tensor:
        fixed = model.reconstruction_noise[k].clone()
        if rng is None:
            return fixed
        ratio = model.fs_list[k] / model.fs
        for start, end in holes:
            a, b = int(start * ratio), max(int(end * ratio), int(start * ratio) + 1)
            fresh = torch.randn(b - a, generator=rng) * model.noise_amps[k]
            fixed[..., pad + a:pad + b] = fresh.to(fixed.device)
        return fixed

    rebuilt = _final(run_scales(model, device, model.lengths, noise, progress=progress))
    out = np.zeros(top, np.float32)
    out[:min(top, len(signal))] = signal[:top]
    return stitch(out, rebuilt, holes)


def stitch(real: np.ndarray, made: np.ndarray, holes: Sequence[tuple[int, int]]) -> np.ndarray:
    """``made`` inside each hole, ``real`` outside, cross-faded over half a hole on each side (Hann)."""
    weight = np.zeros(len(real), np.float32)
    for start, end in holes:
        fade = max(1, (end - start) // 2)
        ramp = (0.5 - 0.5 * np.cos(np.pi * np.arange(1, fade + 1) / (fade + 1))).astype(np.float32)  # rises
        weight[start:end] = 1.0
        a, b = max(0, start - fade), min(len(weight), end + fade)
        weight[a:start] = np.maximum(weight[a:start], ramp[fade - (start - a):])
        weight[end:b] = np.maximum(weight[end:b], ramp[::-1][:b - end])
    return weight * made[:len(real)] + (1 - weight) * real


def seconds_to_holes(model: CAWModel, spans: Sequence[float]) -> list[tuple[int, int]]:
    """``start end [start end ...]`` in seconds as sample ranges at the model's rate, checked."""
    if len(spans) % 2:
        raise GenerationError("give each region as a start and an end in seconds")
    top = model.lengths[-1]
    holes = []
    for a, b in zip(spans[0::2], spans[1::2]):
        start, end = int(math.floor(a * model.fs)), int(math.ceil(b * model.fs))
        if not 0 <= start < end <= top:
            raise GenerationError(f"region {a:g}..{b:g} s is not inside the clip (0..{top / model.fs:.2f} s)")
        holes.append((start, end))
    return holes


def _final(outputs: list[torch.Tensor]) -> np.ndarray:
    return outputs[-1].reshape(-1).cpu().numpy()
