"""A small CAW model trained once per test session (about a minute on 2 cores), and the clip it
learnt: two harmonic notes, so spectra have clear peaks to compare."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from workers.caw.train import config_from, start, train

SR = 4000
TINY = {"model_sr": SR, "seconds": 1.5, "layers": 6, "channels": 16, "seed": 7}
"""4 kHz, 1.5 s, 6 layers (receptive field 505 samples), 16 channels: four scales, 1600..4000 Hz."""
EPOCHS = 100


def two_notes(seconds: float = 1.5, sr: int = SR) -> np.ndarray:
    """700 Hz then 900 Hz (half each), two harmonics, a soft attack and decay, a little noise."""
    t = np.arange(int(seconds * sr)) / sr
    half = seconds / 2
    f0 = np.where(t < half, 700.0, 900.0)
    phase = 2 * np.pi * np.cumsum(f0) / sr
    local = t % half
    env = np.minimum(local / 0.02, 1.0) * np.exp(-1.5 * local)
    x = env * (np.sin(phase) + 0.4 * np.sin(2 * phase))
    x += 0.01 * np.random.default_rng(0).standard_normal(len(t))
    return (0.8 * x / np.abs(x).max()).astype(np.float32)


class Quiet:
    """A job context that only records (tests train in-process)."""

    def __init__(self, stop_after: int = 0) -> None:
        self.lines: list[str] = []
        self.checks = 0
        self.stop_after = stop_after

    @property
    def should_stop(self) -> bool:
        """True from the ``stop_after``-th epoch on (0: never), as a SIGTERM would set it."""
        self.checks += 1
        return bool(self.stop_after) and self.checks > self.stop_after

    def progress(self, fraction: float, text: str = "") -> None:
        self.lines.append(f"{fraction:.3f} {text}")

    def log(self, text: str) -> None:
        self.lines.append(text)


def train_tiny(folder: Path, epochs: int = EPOCHS, report: Quiet | None = None, **overrides: object) -> bool:
    clip = folder.parent / f"{folder.name}-clip.wav"
    sf.write(clip, two_notes(), SR, subtype="FLOAT")
    config = config_from("quick", epochs=epochs, **{**TINY, **overrides})  # type: ignore[arg-type]
    start(folder, clip, config)
    return train(folder, "cpu", report or Quiet(), threads=1)


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("caw") / "tiny"
    assert train_tiny(folder)
    return folder
