"""A phrase as Pd played it, and the primer NoteSequence it becomes.

[pdbridge.melody_rnn] sends every key press and release as ``note <pitch> <velocity> <ms>``, where
``ms`` is Pd's logical time since the object's previous note. A gap rather than a clock reading,
because Pd prints floats with 6 significant digits: a clock running since the patch was opened
would lose whole milliseconds after a quarter of an hour, a gap between two notes stays exact.
Python's own clock is never used, so the phrase is what Pd's scheduler heard, however late the
messages reached this process. The course timed notes with ``time.time()`` on arrival instead.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import note_seq
import pretty_midi

DEFAULT_QPM = 120.0
"""The tempo of a phrase too short to estimate one from (the course and AI Duet)."""


@dataclass(frozen=True)
class Note:
    """One played note, in milliseconds from the phrase's first key press."""

    pitch: int
    velocity: int
    start_ms: float
    end_ms: float


class Phrase:
    """The notes one object has recorded since its last ``clear``."""

    def __init__(self) -> None:
        self.clear()

    def clear(self) -> None:
        self._closed: list[Note] = []
        self._held: dict[int, tuple[float, int]] = {}
        """pitch -> (press time ms, velocity) of keys still down."""
        self._now_ms = 0.0

    @property
    def empty(self) -> bool:
        return not self._closed and not self._held

    def add(self, pitch: int, velocity: int, gap_ms: float) -> None:
        """A key press (velocity > 0) or release (velocity 0), ``gap_ms`` after the previous one.

        The first press starts the phrase's clock at 0. A release of a key that is not down (pressed
        before a ``clear``) is ignored; pressing a key that is already down ends its note there.
        """
        if self.empty:
            if velocity == 0:
                return
            self._now_ms = 0.0
        else:
            self._now_ms += gap_ms
        held = self._held.pop(pitch, None)
        if held is not None:
            self._closed.append(Note(pitch, held[1], held[0], self._now_ms))
        if velocity > 0:
            self._held[pitch] = (self._now_ms, velocity)

    @property
    def held(self) -> list[int]:
        """Pitches of the keys still down."""
        return sorted(self._held)

    def notes(self) -> list[Note]:
        """Every note in order of its start; keys still down end at the phrase's last event."""
        still = [Note(p, v, t, self._now_ms) for p, (t, v) in self._held.items()]
        return sorted(self._closed + still, key=lambda n: (n.start_ms, n.pitch))


def seconds(notes: Sequence[Note]) -> float:
    """From the first press to the last release."""
    return max((n.end_ms for n in notes), default=0.0) / 1000.0


def estimate_qpm(notes: Sequence[Note]) -> float:
    """The phrase's tempo as the course and AI Duet estimated it: pretty_midi's estimate when there
    are more than 4 notes (halved above 240 qpm), else 120 qpm."""
    if len(notes) <= 4:
        return DEFAULT_QPM
    instrument = pretty_midi.Instrument(program=0)
    instrument.notes = [pretty_midi.Note(n.velocity, n.pitch, n.start_ms / 1000.0, n.end_ms / 1000.0)
                        for n in notes]
    midi = pretty_midi.PrettyMIDI()
    midi.instruments.append(instrument)
    qpm = float(midi.estimate_tempo())
    return qpm / 2.0 if qpm > 240.0 else qpm


def primer(notes: Sequence[Note], qpm: float) -> note_seq.NoteSequence:
    """The NoteSequence magenta's generator is primed with: the notes in seconds, at ``qpm``."""
    sequence = note_seq.NoteSequence(ticks_per_quarter=note_seq.STANDARD_PPQ)
    sequence.tempos.add(qpm=qpm)
    for n in notes:
        sequence.notes.add(pitch=n.pitch, velocity=n.velocity, start_time=n.start_ms / 1000.0,
                           end_time=n.end_ms / 1000.0)
    sequence.total_time = seconds(notes)
    return sequence
