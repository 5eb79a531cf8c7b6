"""``make demo``'s DDSP model: ``python -m workers.ddsp.demo_model DIR``.

Trains the tiny DDSP-VST-style model (:func:`.training.train_tiny`, ddsp's own Trainer, ~40 s on
2 cores) into ``DIR/model`` in ddsp_run's layout, and writes ``DIR/input.wav``: a short synthetic
melody for the demo patch to play through it.
"""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import soundfile

from .training import SAMPLE_RATE, synthetic_tone, train_tiny

FRAME_RATE = 50


def melody(notes: tuple[int, ...] = (57, 60, 64, 62, 60), seconds_per_note: float = 0.5) -> np.ndarray:
    """The MIDI notes as one gliding harmonic tone with a short swell per note."""
    per = int(seconds_per_note * FRAME_RATE)
    f0 = np.concatenate([np.full(per, 440.0 * 2 ** ((n - 69) / 12)) for n in notes] + [[440.0]])
    env = np.concatenate([np.sin(np.linspace(0.2, np.pi - 0.2, per)) ** 0.5 * 0.6 for _ in notes] + [[0.0]])
    return synthetic_tone(f0, env, FRAME_RATE, seed=0)


def main(target: Path) -> None:
    train_tiny(target / "model")
    soundfile.write(target / "input.wav", melody(), SAMPLE_RATE, subtype="FLOAT")


if __name__ == "__main__":
    main(Path(sys.argv[1]))
