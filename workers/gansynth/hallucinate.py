"""Hallucinations: sequences of GANSynth notes that drift through latent or GANSpace edit space.

The course's two sequencers, kept with their meanings so its exercises still read right:

* ``hallucinate`` picks ``note_count`` random latent vectors and inserts ``interp_steps``
  spherically interpolated points between each neighbouring pair, so ``(note_count - 1) *
  (interp_steps + 1) + 1`` notes sound. (The course inserted its last point *at* the next
  vector, sounding each random vector twice; we do not repeat them.)
* ``hallucinate_noz`` (HALLU, the step sequencer) walks a list of GANSpace edit steps with
  ``interp_steps`` linear *segments* between neighbouring steps, ``(steps - 1) * interp_steps +
  1`` notes: interp_steps 1 (or 0, as the course allowed) plays just the steps.

Each note is cut and faded by a :class:`NoteShape` (trim the first ``start_trim`` seconds, then a
linear attack, a sustain and a linear release), normalised to the same peak, and the notes are
overlap-added every ``spacing`` seconds. The clip is normalised to a peak of 0.5, as in the course.
Its length is ``(notes - 1) * spacing + attack + sustain + release`` (in samples).
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Sequence

import numpy as np

from workers.runtime.envelope import Env

from .model import slerp

CLIP_PEAK = 0.5


@dataclass(frozen=True)
class NoteShape:
    """How each note of a hallucination is cut and faded; all times in seconds."""

    start_trim: float = 0.0
    attack: float = 0.5
    sustain: float = 0.5
    release: float = 0.5

    def check(self, note_seconds: float) -> None:
        """ValueError unless the times are >= 0 and the shaped note fits in a generated note."""
        for name in ("start_trim", "attack", "sustain", "release"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0 seconds, got {getattr(self, name):g}")
        total = self.start_trim + self.attack + self.sustain + self.release
        if total > note_seconds + 1e-9:
            raise ValueError(f"start_trim + attack + sustain + release = {total:g} s, but a note is only "
                             f"{note_seconds:g} s long")
        if self.attack + self.sustain + self.release <= 0:
            raise ValueError("attack + sustain + release must be longer than 0 seconds")

    def envelope(self, sample_rate: int) -> np.ndarray:
        """Per-sample gain over attack + sustain + release: 0 -> 1, hold, 1 -> 0 (linear)."""
        n = int(round((self.attack + self.sustain + self.release) * sample_rate))
        return Env((0.0, 1.0, 1.0, 0.0), (self.attack, self.sustain, self.release), (0.0, 0.0, 0.0)).render(
            n, sample_rate)


def latent_path(anchors: np.ndarray, interp_steps: int) -> np.ndarray:
    """The anchors with ``interp_steps`` slerp points between each neighbouring pair."""
    anchors = np.asarray(anchors, np.float64)
    if interp_steps < 0:
        raise ValueError("interp_steps must be >= 0")
    points = [anchors[0]]
    for a, b in zip(anchors[:-1], anchors[1:]):
        points += [slerp(a, b, j / (interp_steps + 1)) for j in range(1, interp_steps + 1)]
        points.append(b)
    return np.stack(points)


def edit_path(steps: Sequence[np.ndarray], interp_steps: int) -> np.ndarray:
    """The edit steps with ``interp_steps`` linear segments between each neighbouring pair."""
    if not steps:
        raise ValueError("no steps to play")
    if interp_steps < 0:
        raise ValueError("interp_steps must be >= 0 (0 and 1 play only the steps)")
    interp_steps = max(1, interp_steps)
    steps = [np.asarray(s, np.float64) for s in steps]
    points = [steps[0]]
    for a, b in zip(steps[:-1], steps[1:]):
        points += [a + (b - a) * (j / interp_steps) for j in range(1, interp_steps)]
        points.append(b)
    return np.stack(points)


def overlap_add(notes: np.ndarray, spacing: float, shape: NoteShape, sample_rate: int) -> np.ndarray:
    """Shape every note, start one every ``spacing`` seconds, sum, normalise the peak to 0.5."""
    notes = np.asarray(notes, np.float64)
    if spacing < 0:
        raise ValueError(f"spacing must be >= 0 seconds, got {spacing:g}")
    shape.check(notes.shape[1] / sample_rate)
    env = shape.envelope(sample_rate)
    trim = int(round(shape.start_trim * sample_rate))
    length = min(len(env), notes.shape[1] - trim)
    env = env[:length]
    hop = int(round(spacing * sample_rate))
    clip = np.zeros(hop * (len(notes) - 1) + length)
    for i, note in enumerate(notes):
        shaped = note[trim:trim + length] * env
        peak = np.abs(shaped).max()
        clip[i * hop:i * hop + length] += shaped / peak if peak > 0 else shaped
    peak = np.abs(clip).max()
    return (clip * (CLIP_PEAK / peak) if peak > 0 else clip).astype(np.float32)


SETTINGS = ("interp_steps", "sample_spacing", "start_trim", "attack", "sustain", "release")


@dataclass
class HalluSeq:
    """The HALLU step sequencer's state: GANSpace edit steps and playback settings.

    The step being edited lives in a Pd array while the user moves sliders; the caller stores the
    array into the current step (:meth:`store`) before moving, and shows :meth:`current` after.
    Moving past either end wraps around, as in the course.
    """

    steps: list[np.ndarray]
    index: int = 0
    interp_steps: int = 1
    sample_spacing: float = 0.2
    shape: NoteShape = field(default_factory=NoteShape)

    @classmethod
    def empty(cls, edit_count: int) -> "HalluSeq":
        return cls([np.zeros(edit_count, np.float32)])

    def current(self) -> np.ndarray:
        return self.steps[self.index]

    def store(self, edits: np.ndarray) -> None:
        """Save the edited array into the current step (padded or cut to the step length)."""
        n = len(self.steps[self.index])
        edits = np.asarray(edits, np.float32)[:n]
        self.steps[self.index] = np.pad(edits, (0, n - len(edits)))

    def next_step(self) -> None:
        self.index = (self.index + 1) % len(self.steps)

    def prev_step(self) -> None:
        self.index = (self.index - 1) % len(self.steps)

    def add_step(self) -> None:
        """Append a copy of the current step and move to it."""
        self.steps.append(self.current().copy())
        self.index = len(self.steps) - 1

    def remove_step(self) -> None:
        """Delete the current step unless it is the only one."""
        if len(self.steps) > 1:
            del self.steps[self.index]
            self.index = min(self.index, len(self.steps) - 1)

    def set(self, name: str, value: float) -> None:
        """Change one setting; ValueError for a value the sequencer cannot play."""
        if name == "interp_steps":
            if value != int(value) or value < 0:
                raise ValueError(f"interp_steps must be a whole number >= 0, got {value:g}")
            self.interp_steps = int(value)
        elif name == "sample_spacing":
            if value < 0:
                raise ValueError(f"sample_spacing must be >= 0 seconds, got {value:g}")
            self.sample_spacing = float(value)
        elif name in ("start_trim", "attack", "sustain", "release"):
            if value < 0:
                raise ValueError(f"{name} must be >= 0 seconds, got {value:g}")
            self.shape = replace(self.shape, **{name: float(value)})
        else:
            raise ValueError(f"unknown setting {name!r}")

    def settings(self) -> dict[str, float]:
        return {"interp_steps": self.interp_steps, "sample_spacing": self.sample_spacing,
                "start_trim": self.shape.start_trim, "attack": self.shape.attack,
                "sustain": self.shape.sustain, "release": self.shape.release}

    def path(self) -> np.ndarray:
        """Every edit vector to sound, steps and interpolations, in order."""
        return edit_path(self.steps, self.interp_steps)
