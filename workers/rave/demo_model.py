"""Make the RAVE export that ``make demo`` plays: ``python -m workers.rave.demo_model DIR``.

No trained RAVE can be downloaded here, so ``DIR/model.ts`` is a real export written by acids-rave's
own ``rave export`` from a randomly initialised v2_small run (:mod:`workers.rave.export_random`): the
file format, architecture and cost of a downloaded v2_small model, but untrained weights, so what
comes out is a quiet texture rather than a learned timbre. ``DIR/input.wav`` is the sound the demo
patch sends through it (timbre transfer, ``forward``): 2 s of a sine sweep at the model's rate.
"""
from __future__ import annotations

import shutil
import sys
import tempfile
from pathlib import Path

import numpy as np
import soundfile as sf

from .export_random import build_random_run, export
from .model import RaveModel

SECONDS = 2.0


def sweep(seconds: float, sr: int, f0: float = 110.0, f1: float = 1760.0) -> np.ndarray:
    """Exponential sine sweep from f0 to f1 Hz at half scale, with 10 ms fades against clicks."""
    t = np.arange(int(seconds * sr)) / sr
    k = np.log(f1 / f0)
    audio = 0.5 * np.sin(2 * np.pi * f0 * seconds / k * (np.exp(k * t / seconds) - 1))
    fade = min(int(0.01 * sr), len(audio) // 2)
    audio[:fade] *= np.linspace(0, 1, fade)
    audio[len(audio) - fade:] *= np.linspace(1, 0, fade)
    return audio.astype(np.float32)


def make(target: Path) -> Path:
    """Write ``target/model.ts`` and ``target/input.wav``; return the model's path."""
    target.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        run = build_random_run(Path(tmp) / "v2_small")
        model = Path(shutil.move(export(run, Path(tmp) / "out", streaming=False), target / "model.ts"))
    sr = RaveModel.load(model).sample_rate
    sf.write(target / "input.wav", sweep(SECONDS, sr), sr, subtype="FLOAT")
    return model


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: python -m workers.rave.demo_model DIR")
    print(f"demo model: {make(Path(sys.argv[1]))}")
