"""A note list as the lines ``[pdbridge.conn]`` plays on Pd's own clock.

A worker answers with notes ``(onset s, pitch, velocity, duration s)``. Pd should play them with its
scheduler, not with a Python timer: exact in logical time, in step with the patch, and stoppable.
So the hub turns them into note-on and note-off events with the wait before each, the form
``[text sequence -w 1]`` plays: ``_notes add <wait ms> note <pitch> <velocity>``.
"""
from __future__ import annotations

from typing import Any, Optional, Sequence

from .fudi import Atom


def note_events(notes: Sequence[Sequence[float]]) -> list[tuple[float, float, float]]:
    """(wait ms, pitch, velocity) events, note-offs (velocity 0) included, in time order; at the same
    time a note-off comes before a note-on, so a repeated pitch sounds again."""
    events: list[tuple[float, int, float, float]] = []
    for onset, pitch, velocity, duration in notes:
        on = float(onset) * 1000.0
        events.append((on, 1, float(pitch), float(velocity)))
        events.append((on + float(duration) * 1000.0, 0, float(pitch), 0.0))
    events.sort(key=lambda e: (e[0], e[1]))
    out, now = [], 0.0
    for time_ms, _, pitch, velocity in events:
        out.append((round(time_ms - now, 3), pitch, velocity))
        now = time_ms
    return out


def note_lines(spec: dict[str, Any]) -> list[list[Atom]]:
    """The ``_notes`` lines for a worker's ``notes`` content: clear, the events, copy, play."""
    lines: list[list[Atom]] = [["_notes", "clear"]]
    lines += [["_notes", "add", wait, "note", pitch, velocity] for wait, pitch, velocity in note_events(spec["notes"])]
    text: Optional[str] = spec.get("text")
    if text:
        lines.append(["_notes", "text", text])
    lines.append(["_notes", "play"])
    return lines
