"""Training really learns, resumes, and reads audio the right way (mono, resampled, chunked)."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from workers.samplernn import train
from workers.samplernn.checkpoint import pdbridge_checkpoints, read_checkpoint, resolve_model
from workers.samplernn.data import build_corpus, chunk, load_mono
from workers.samplernn.generate import Sampler, generate_audio
from workers.samplernn.model import SampleRNN

SR = 8000
F0 = 500.0
TINY = {"seq_len": 128, "frame_sizes": [8, 32], "dim": 32, "rnn_type": "gru", "num_rnn_layers": 1,
        "q_type": "linear", "q_levels": 64, "emb_size": 8}


def spectral_peak(audio: np.ndarray, sr: int) -> float:
    spectrum = np.abs(np.fft.rfft(audio * np.hanning(len(audio))))
    return float(np.fft.rfftfreq(len(audio), 1 / sr)[spectrum.argmax()])


@pytest.fixture(scope="module")
def periodic_corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Four 2 s files of a 500 Hz tone with its octave, random phases, a little noise."""
    root = tmp_path_factory.mktemp("corpus")
    (root / "data").mkdir()
    rng = np.random.default_rng(0)
    t = np.arange(2 * SR) / SR
    for i in range(4):
        x = (0.5 * np.sin(2 * np.pi * F0 * t + rng.uniform(0, 2 * np.pi))
             + 0.2 * np.sin(2 * np.pi * 2 * F0 * t) + 0.01 * rng.standard_normal(len(t)))
        sf.write(root / "data" / f"tone{i}.wav", x.astype(np.float32), SR)
    (root / "tiny.config.json").write_text(json.dumps(TINY))
    return root


def _train(corpus: Path, out: Path, max_steps: int) -> None:
    torch.set_num_threads(1)
    train.main(["--data_dir", str(corpus / "data"), "--output_dir", str(out),
                "--config", str(corpus / "tiny.config.json"), "--sample_rate", str(SR),
                "--chunk_length", "1", "--chunk_overlap", "0.25", "--batch_size", "8",
                "--max_steps", str(max_steps), "--val_frac", "0.25", "--log_every", "50",
                "--max_checkpoints", "2"])


def test_trained_model_generates_the_training_pitch(periodic_corpus: Path, tmp_path: Path) -> None:
    _train(periodic_corpus, tmp_path / "run", 150)
    loaded = resolve_model(tmp_path / "run")
    assert loaded.kind == "pdbridge" and loaded.config.sample_rate == SR
    log = [json.loads(line) for line in (tmp_path / "run" / "train_log.jsonl").read_text().splitlines()]
    assert log[-1]["val_loss"] < log[0]["val_loss"]
    temps = np.full((2, 1), 0.9)
    trained = np.concatenate([generate_audio(Sampler(loaded.model, precision), SR // 2, temps, rng_seed=3)
                              for precision in ("fp32", "int8")])
    torch.manual_seed(0)
    untrained = generate_audio(Sampler(SampleRNN(loaded.config).eval()), SR // 2, temps, rng_seed=3)
    for audio in trained:
        assert abs(spectral_peak(audio, SR) - F0) < 20
        assert audio.std() > 0.1  # a tone, not silence
    assert not all(abs(spectral_peak(a, SR) - F0) < 20 for a in untrained)


def test_training_resumes_and_keeps_newest_checkpoints(periodic_corpus: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    _train(periodic_corpus, out, 70)  # 62 steps per epoch here: two epochs, two checkpoints
    first = pdbridge_checkpoints(out)
    assert [s for s, _ in first] == [62, 70]
    _train(periodic_corpus, out, 140)
    steps = [s for s, _ in pdbridge_checkpoints(out)]
    assert steps == [132, 140]  # continued from step 70, pruned to the newest two
    assert read_checkpoint(out / "checkpoint-140.pt")["training"]["epoch"] == 4
    assert (out / "samplernn.config.json").is_file()


def test_load_mono_averages_channels_and_resamples(tmp_path: Path) -> None:
    sr = 44100
    t = np.arange(sr) / sr
    left = 0.8 * np.sin(2 * np.pi * 1000 * t)
    right = 0.8 * np.sin(2 * np.pi * 3000 * t)
    # 9 kHz in both channels: above the new Nyquist (8 kHz), must be filtered out, not aliased.
    alias = 0.3 * np.sin(2 * np.pi * 9000 * t)
    sf.write(tmp_path / "st.wav", np.stack([left + alias, right + alias], 1).astype(np.float32), sr)
    audio = load_mono(tmp_path / "st.wav", 16000)
    assert len(audio) == 16000
    spectrum = np.abs(np.fft.rfft(audio[1000:-1000] * np.hanning(14000))) / (14000 / 4)
    freqs = np.fft.rfftfreq(14000, 1 / 16000)

    def level(f: float) -> float:
        return float(spectrum[np.abs(freqs - f) < 20].max())

    assert level(1000) == pytest.approx(0.4, rel=0.05)
    assert level(3000) == pytest.approx(0.4, rel=0.05)
    assert level(7000) < 0.01  # where 9 kHz would alias to


def test_chunking_overlaps_and_skips_silence() -> None:
    audio = np.concatenate([np.full(3000, 0.5), np.zeros(3000), np.full(2500, 0.5)]).astype(np.float32)
    pieces = chunk(audio, chunk_len=2000, hop=1500)
    # starts 0, 1500, 3000 (silent, dropped), 4500 (3/4 silent, dropped), 6000 (2000 samples, kept)
    assert [len(p) for p in pieces] == [2000, 2000, 2000]
    assert all(np.mean(p != 0) >= 0.5 for p in pieces)


def test_validation_split_by_file_or_by_chunk(tmp_path: Path) -> None:
    tone = (0.5 * np.sin(2 * np.pi * 300 * np.arange(4 * SR) / SR)).astype(np.float32)
    for i in range(10):
        sf.write(tmp_path / f"f{i}.wav", tone, SR)
    by_file = build_corpus(tmp_path, SR, 1.0, 0.0, 0.2, seed=0)
    assert (len(by_file.train), len(by_file.val)) == (32, 8)  # 2 whole files of 4 chunks
    for i in range(2, 10):
        (tmp_path / f"f{i}.wav").unlink()
    by_chunk = build_corpus(tmp_path, SR, 1.0, 0.0, 0.2, seed=0)  # 0.2 x 2 files rounds to 0 files
    assert (len(by_chunk.train), len(by_chunk.val)) == (6, 2)
