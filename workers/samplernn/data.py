"""Training data: audio files -> mono, resampled, chunked, quantised sequences.

The course's own chunking/resampling step was buggy (students were told to convert to 16 kHz mono
by hand first). Here every file is read with soundfile, averaged to mono, resampled with the
workers' shared band-limited resampler (:mod:`workers.runtime.resample`) to the model's rate, and
cut into chunks of ``chunk_seconds`` that overlap by ``overlap_seconds``. Chunks that are mostly silence
are skipped, as PRiSM's chunker does, because a model fed long silences learns to generate them.
"""
from __future__ import annotations

import math
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np
import soundfile as sf

from workers.runtime.resample import resample

AUDIO_SUFFIXES = (".wav", ".aif", ".aiff", ".flac", ".ogg", ".mp3")


def find_audio_files(folder: Path) -> list[Path]:
    """Every readable audio file below ``folder``, sorted for reproducible splits."""
    return sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in AUDIO_SUFFIXES)


def load_mono(path: Path, sample_rate: int) -> np.ndarray:
    """A file as float32 mono at ``sample_rate`` (channels averaged, then resampled)."""
    audio, sr = sf.read(str(path), dtype="float32", always_2d=True)
    return resample(audio.mean(axis=1), sr, sample_rate)


def chunk(audio: np.ndarray, chunk_len: int, hop: int, min_active: float = 0.5,
          silence_db: float = -60.0) -> list[np.ndarray]:
    """Cut ``audio`` into ``chunk_len``-sample pieces every ``hop`` samples.

    A trailing piece shorter than ``chunk_len`` is kept if it is at least half a chunk. Pieces in
    which less than ``min_active`` of 10 ms windows exceed ``silence_db`` (RMS, dBFS) are dropped.
    """
    pieces = []
    starts = range(0, max(len(audio) - chunk_len // 2, 1), hop)
    for start in starts:
        piece = audio[start:start + chunk_len]
        if len(piece) < chunk_len // 2:
            break
        if _active_fraction(piece, silence_db) >= min_active:
            pieces.append(piece)
        if start + chunk_len >= len(audio):
            break
    return pieces


def _active_fraction(piece: np.ndarray, silence_db: float) -> float:
    win = 160 if len(piece) >= 160 else len(piece)
    n = len(piece) // win
    if n == 0:
        return 0.0
    rms = np.sqrt(np.mean(piece[: n * win].reshape(n, win) ** 2, axis=1) + 1e-20)
    return float(np.mean(20 * np.log10(rms) > silence_db))


@dataclass
class Corpus:
    """Chunks ready for training, split into training and validation sets."""

    train: list[np.ndarray]
    val: list[np.ndarray]


def build_corpus(folder: Path, sample_rate: int, chunk_seconds: float, overlap_seconds: float,
                 val_frac: float, seed: int) -> Corpus:
    """Read, chunk and split a folder of audio. Validation chunks come from whole files when there
    are enough files for ``val_frac`` of them to be at least one (so overlapping chunks of one file
    never straddle the split); otherwise ``val_frac`` of the chunks is held out."""
    files = find_audio_files(folder)
    if not files:
        raise FileNotFoundError(f"no audio files ({', '.join(AUDIO_SUFFIXES)}) under {folder}")
    chunk_len = int(round(chunk_seconds * sample_rate))
    hop = chunk_len - int(round(overlap_seconds * sample_rate))
    if chunk_len <= 0 or hop <= 0:
        raise ValueError("chunk length must be positive and larger than the overlap")
    per_file = [chunk(load_mono(f, sample_rate), chunk_len, hop) for f in files]
    rng = random.Random(seed)
    n_val = int(round(len(files) * val_frac))
    if 1 <= n_val < len(files):
        order = list(range(len(files)))
        rng.shuffle(order)
        val = [c for i in order[:n_val] for c in per_file[i]]
        train = [c for i in order[n_val:] for c in per_file[i]]
    else:
        chunks = [c for cs in per_file for c in cs]
        rng.shuffle(chunks)
        n_val = int(math.ceil(len(chunks) * val_frac)) if val_frac > 0 and len(chunks) > 1 else 0
        val, train = chunks[:n_val], chunks[n_val:]
    if not train:
        raise ValueError(f"{folder}: no non-silent audio left for training")
    return Corpus(train, val)


def batches(chunks: list[np.ndarray], batch_size: int, shuffle: bool, rng: random.Random
            ) -> Iterator[list[np.ndarray]]:
    """Groups of up to ``batch_size`` chunks of equal length (the shortest length in the group)."""
    order = list(range(len(chunks)))
    if shuffle:
        rng.shuffle(order)
    for i in range(0, len(order), batch_size):
        group = [chunks[j] for j in order[i:i + batch_size]]
        n = min(len(c) for c in group)
        yield [c[:n] for c in group]


def subsequences(q: np.ndarray, seq_len: int, context: int) -> Iterator[tuple[np.ndarray, bool]]:
    """Truncated-BPTT windows of (B, context + seq_len) classes over a (B, n) batch.

    ``q`` already starts with ``context`` samples of silence (PRiSM pads each file so). Windows
    overlap by ``context``; the flag is True for the first window (reset the RNN states).
    """
    usable = (q.shape[1] - context) // seq_len * seq_len
    for k, start in enumerate(range(0, usable, seq_len)):
        yield q[:, start:start + context + seq_len], k == 0
