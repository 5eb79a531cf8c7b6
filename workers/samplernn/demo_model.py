"""Make the small SampleRNN that ``make demo`` plays: ``python -m workers.samplernn.demo_model DIR``.

No trained SampleRNN can be downloaded here, so the demo trains one in about a minute on a
synthetic melody (plucked notes of a pentatonic scale with a few harmonics), with the real
training command, and leaves a pdbridge checkpoint folder in DIR.
"""
from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path

import numpy as np
import soundfile as sf

from . import train

SR = 16000
CONFIG = {"seq_len": 256, "frame_sizes": [8, 32], "dim": 64, "rnn_type": "gru", "num_rnn_layers": 1,
          "q_type": "mu-law", "q_levels": 256, "emb_size": 16, "sample_rate": SR}
STEPS = 600


def melody(seconds: float, seed: int) -> np.ndarray:
    """Quarter-second plucked notes (4 harmonics, exponential decay) from a pentatonic scale."""
    rng = np.random.default_rng(seed)
    note = np.arange(int(0.25 * SR)) / SR
    notes = []
    for _ in range(int(seconds / 0.25)):
        f0 = rng.choice([261.63, 293.66, 329.63, 392.0, 440.0, 523.25])
        tone = sum(np.sin(2 * np.pi * k * f0 * note) / k for k in range(1, 5))
        notes.append(tone * np.exp(-6 * note))
    audio = np.concatenate(notes)
    return (0.7 * audio / np.abs(audio).max()).astype(np.float32)


def make(target: Path) -> Path:
    """Train the demo model into ``target`` and return its newest checkpoint."""
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "data"
        data.mkdir()
        for i in range(4):
            sf.write(data / f"melody{i}.wav", melody(10.0, i), SR)
        config = Path(tmp) / "demo.config.json"
        config.write_text(json.dumps(CONFIG))
        return train.train(train.parse_args([
            "--data_dir", str(data), "--output_dir", str(target), "--config", str(config),
            "--chunk_length", "2", "--chunk_overlap", "0.5", "--batch_size", "8",
            "--max_steps", str(STEPS), "--val_frac", "0.25", "--log_every", "100", "--max_checkpoints", "1"]))


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: python -m workers.samplernn.demo_model DIR")
    print(f"demo model: {make(Path(sys.argv[1]))}")
