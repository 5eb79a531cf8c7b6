"""SuperCollider-style envelopes, the course's way of shaping a value over time.

The course's SampleRNN patch wrote temperatures as ``Env([0.7,1.05],[4],[-2])``: levels, segment
durations in seconds, and one curve per segment. Curve 0 is a straight line; a positive curve starts
slowly and ends fast (exponential-like), a negative one starts fast (logarithmic-like), using
SuperCollider's ``lincurve`` shape. After the last segment the last level is held, so an envelope
shorter than the sound still gives a value for every sample.
"""
from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass

import numpy as np

_ENV_RE = re.compile(r"^\s*Env\s*\((?P<body>.*)\)\s*$", re.DOTALL)
_CURVE_EPSILON = 1e-4


class EnvelopeError(ValueError):
    """The text does not describe a valid envelope; the message says what to fix."""


@dataclass(frozen=True)
class Env:
    """Breakpoint envelope: ``levels[i] -> levels[i+1]`` over ``times[i]`` seconds with ``curves[i]``."""

    levels: tuple[float, ...]
    times: tuple[float, ...]
    curves: tuple[float, ...]

    def __post_init__(self) -> None:
        if len(self.levels) < 1:
            raise EnvelopeError("Env needs at least one level")
        if len(self.times) != len(self.levels) - 1:
            raise EnvelopeError(
                f"Env has {len(self.levels)} levels, so it needs {len(self.levels) - 1} times "
                f"(got {len(self.times)})")
        if len(self.curves) != len(self.times):
            raise EnvelopeError(
                f"Env has {len(self.times)} segments, so it needs {len(self.times)} curves "
                f"(got {len(self.curves)})")
        if any(t < 0 or not math.isfinite(t) for t in self.times):
            raise EnvelopeError("Env times must be finite and >= 0 seconds")
        if not all(math.isfinite(v) for v in self.levels + self.curves):
            raise EnvelopeError("Env levels and curves must be finite numbers")

    @classmethod
    def parse(cls, text: str) -> "Env":
        """Read ``Env([l0,l1,...],[t0,...],[c0,...])``; curves may be left out (all linear).

        Spaces are allowed anywhere. A single curve value applies to every segment, as in SC.
        """
        match = _ENV_RE.match(text)
        if not match:
            raise EnvelopeError(f"not an envelope: {text!r} (expected Env([levels],[times],[curves]))")
        try:
            parts = json.loads("[" + match.group("body") + "]")
        except json.JSONDecodeError as exc:
            raise EnvelopeError(
                f"cannot read {text!r}: write numbers in brackets, e.g. Env([0.7,1.05],[4],[-2])") from exc
        if not 2 <= len(parts) <= 3 or not all(isinstance(p, list) for p in parts):
            raise EnvelopeError(f"{text!r}: expected two or three bracketed lists: levels, times[, curves]")
        if not all(isinstance(x, (int, float)) and not isinstance(x, bool) for p in parts for x in p):
            raise EnvelopeError(f"{text!r}: every level, time and curve must be a number")
        levels, times = parts[0], parts[1]
        curves = parts[2] if len(parts) == 3 else [0.0] * len(times)
        if len(curves) == 1 and len(times) > 1:
            curves = curves * len(times)
        return cls(tuple(map(float, levels)), tuple(map(float, times)), tuple(map(float, curves)))

    @property
    def duration(self) -> float:
        """Seconds until the last level is reached (and then held)."""
        return float(sum(self.times))

    def value(self, t: float) -> float:
        """Envelope value at ``t`` seconds."""
        return float(self.render_at(np.asarray([t], dtype=np.float64))[0])

    def render(self, n_samples: int, sample_rate: float) -> np.ndarray:
        """One value per sample: sample ``i`` is the envelope at ``i / sample_rate`` seconds."""
        return self.render_at(np.arange(n_samples, dtype=np.float64) / float(sample_rate))

    def render_at(self, t: np.ndarray) -> np.ndarray:
        """Vectorised evaluation at the times ``t`` (seconds, float64)."""
        out = np.full(t.shape, self.levels[-1], dtype=np.float64)
        if t.size:
            out[t < 0] = self.levels[0]
        start = 0.0
        for a, b, dur, curve in zip(self.levels, self.levels[1:], self.times, self.curves):
            end = start + dur
            inside = (t >= start) & (t < end)
            if dur > 0 and inside.any():
                out[inside] = _segment(a, b, curve, (t[inside] - start) / dur)
            start = end
        return out

    def __str__(self) -> str:
        fmt = lambda xs: "[" + ",".join(f"{x:g}" for x in xs) + "]"  # noqa: E731
        return f"Env({fmt(self.levels)},{fmt(self.times)},{fmt(self.curves)})"


def _segment(a: float, b: float, curve: float, x: np.ndarray) -> np.ndarray:
    """SuperCollider's curve shape from ``a`` to ``b`` at positions ``x`` in [0, 1)."""
    if abs(curve) < _CURVE_EPSILON:
        return a + (b - a) * x
    return a + (b - a) * (1.0 - np.exp(curve * x)) / (1.0 - math.exp(curve))
