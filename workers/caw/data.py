"""From one clip to the per-scale training signals.

As published: the clip is cut to ``max_seconds``, brought down to the model's rate if it is higher,
divided by its peak, and resampled to every scale rate up to that rate; the first scale trained is
the first whose mean energy reaches ``min_energy`` (speech: the first of at least 500 Hz), so a
scale that holds almost nothing is not learnt. Inpainting zeroes the holes first and only uses
scales where the holes and the receptive field around them fit. All rate conversion uses
workers/runtime/resample.py.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import numpy as np

from workers.runtime.resample import resample

from .config import FALLBACK_FIRST_FS, SPEECH_MIN_FS, CAWConfig, ConfigError

Interval = tuple[int, int]


@dataclass
class Scales:
    """The training signals, coarse to fine, and what goes with each."""

    fs: int
    norm_factor: float
    fs_list: list[int]
    signals: list[np.ndarray]
    valid: list[Optional[np.ndarray]]
    """Inpainting: per scale, True where the clip is known (outside every hole); else None."""
    holes: list[list[Interval]]
    """Inpainting: per scale, the holes as inclusive sample ranges at that scale's rate."""

    @property
    def energies(self) -> list[float]:
        """Mean energy of each scale's signal (inside the known part when inpainting)."""
        return [float(np.mean((s if v is None else s[v]) ** 2)) for s, v in zip(self.signals, self.valid)]


def prepare(audio: np.ndarray, sr: int, config: CAWConfig) -> Scales:
    """Per-scale signals for ``audio`` (mono float samples at ``sr`` Hz)."""
    x = np.asarray(audio, dtype=np.float32)[:int(config.max_seconds * sr)]
    fs = sr
    if config.sample_rate < sr:
        x, fs = resample(x, sr, config.sample_rate), config.sample_rate
    peak = float(np.max(np.abs(x))) if len(x) else 0.0
    if peak == 0.0:
        raise ConfigError("the clip is silent: CAW needs a sound to learn")
    x = x / peak
    for start, end in config.holes:
        if end > len(x):
            raise ConfigError(f"hole {start}..{end} is past the end of the clip ({len(x)} samples at {fs} Hz)")
        x[start:end] = 0.0
    chosen = _choose(x, fs, config, use_energy=not config.speech)
    if not chosen and not config.speech:  # nothing reaches the threshold: start at 500 Hz regardless
        chosen = [(f, s) for f, s in _candidates(x, fs, config) if f >= FALLBACK_FIRST_FS]
    if not chosen:
        raise ConfigError(f"the clip is too short: every scale needs more than {config.receptive_field} samples "
                          f"(the receptive field), i.e. at least {config.receptive_field / fs:.2f} s at {fs} Hz")
    fs_list = [f for f, _ in chosen]
    valid, holes = hole_layout(config, fs, fs_list, [len(s) for _, s in chosen])
    return Scales(fs, peak, fs_list, [s for _, s in chosen], valid, holes)


def hole_layout(config: CAWConfig, fs: int, fs_list: list[int], lengths: list[int]
                ) -> tuple[list[Optional[np.ndarray]], list[list[Interval]]]:
    """Per scale, the known samples (None without holes) and the holes at that scale's rate."""
    valid: list[Optional[np.ndarray]] = []
    holes: list[list[Interval]] = []
    for f, n in zip(fs_list, lengths):
        ratio = f / fs
        spans = [(int(a * ratio), int(b * ratio)) for a, b in config.holes]
        holes.append(spans)
        known = None
        if spans:
            known = np.ones(n, dtype=bool)
            for a, b in spans:
                known[a:b] = False
        valid.append(known)
    return valid, holes


def _candidates(x: np.ndarray, fs: int, config: CAWConfig) -> list[tuple[int, np.ndarray]]:
    """Every scale rate with its signal, skipping those too short for the networks."""
    out = []
    hole_total = sum(b - a + 2 * config.receptive_field for a, b in config.holes)
    for f in config.fs_list(fs):
        s = x if f == fs else resample(x, fs, f)
        if len(s) <= config.receptive_field or hole_total / fs * f > len(s):
            continue
        out.append((f, s))
    return out


def _choose(x: np.ndarray, fs: int, config: CAWConfig, use_energy: bool) -> list[tuple[int, np.ndarray]]:
    chosen: list[tuple[int, np.ndarray]] = []
    for f, s in _candidates(x, fs, config):
        if not chosen:
            if config.speech and f < SPEECH_MIN_FS:
                continue
            if use_energy and float(np.mean(s ** 2)) < config.min_energy:
                continue
        chosen.append((f, s))
    return chosen
