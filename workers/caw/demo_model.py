"""Make the small CAW model ``make demo`` plays: ``python -m workers.caw.demo_model DIR``.

No trained CAW model can be downloaded here, so the demo trains one with the real training code
on a synthetic two-note clip: 8 kHz, 2 s, 6 layers, 16 channels, 40 epochs per scale (well under
a minute on 2 cores). Its variations are rough but recognisably the clip's notes.
"""
from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import numpy as np
import soundfile as sf

from .train import config_from, start, train

SR = 8000


class _Print:
    should_stop = False

    def progress(self, fraction: float, text: str = "") -> None:
        pass

    def log(self, text: str) -> None:
        print(f"  {text}", flush=True)


def clip(seconds: float = 2.0) -> np.ndarray:
    """Two plucked notes (E5 then A5) with three harmonics."""
    t = np.arange(int(seconds * SR)) / SR
    half = seconds / 2
    f0 = np.where(t < half, 659.26, 880.0)
    phase = 2 * np.pi * np.cumsum(f0) / SR
    env = np.exp(-3.0 * (t % half))
    x = env * sum(np.sin(k * phase) / k for k in range(1, 4))
    return (0.8 * x / np.abs(x).max()).astype(np.float32)


def make(target: Path) -> Path:
    with tempfile.TemporaryDirectory() as tmp:
        wav = Path(tmp) / "clip.wav"
        sf.write(wav, clip(), SR)
        config = config_from("quick", epochs=40, model_sr=SR, seconds=2.0, layers=6, channels=16, seed=1)
        folder = target / "model"
        start(folder, wav, config)
        if not train(folder, "cpu", _Print()):
            raise RuntimeError("demo training stopped")
    return folder


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: python -m workers.caw.demo_model DIR")
    print(f"demo model: {make(Path(sys.argv[1]))}")
