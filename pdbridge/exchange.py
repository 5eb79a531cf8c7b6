"""Arrays travel between Pd and the hub as float32 WAV files in one temporary folder per hub run.

Pd loads a 64k-sample float32 WAV with ``[soundfiler] read -resize`` in about 6 ms (FUDI text
takes ~31 ms and loses nothing only at 9 digits), and writes arrays out exactly with
``soundfiler write -bytes 4``. Files are named by a counter, so concurrent requests never share one,
and each is deleted once Pd has read it or the hub has.
"""
from __future__ import annotations

import itertools
import os
import shutil
import struct
import tempfile
from pathlib import Path

import numpy as np
import soundfile

_WAVE_FORMAT_IEEE_FLOAT = 3


class ArrayExchange:
    """The per-run folder and the WAV reading/writing in it."""

    def __init__(self) -> None:
        # tmpfs when there is one: these files live for milliseconds and never need the disk
        shm = "/dev/shm" if os.path.isdir("/dev/shm") and os.access("/dev/shm", os.W_OK) else None
        self.root = Path(tempfile.mkdtemp(prefix="pdbridge-", dir=shm))
        self._ids = itertools.count(1)

    def new_path(self, label: str) -> Path:
        safe = "".join(c if c.isalnum() or c in "-_" else "_" for c in label)[:40]
        return self.root / f"{next(self._ids)}-{safe}.wav"

    def write(self, label: str, samples: np.ndarray, sample_rate: float | None = None) -> Path:
        """A mono float32 WAV for Pd to read: a 44-byte header and the samples in one write.

        The rate is written so the file is also playable elsewhere (Pd ignores it).
        """
        data = np.ascontiguousarray(samples, dtype="<f4")
        rate = int(round(sample_rate)) if sample_rate and sample_rate > 0 else 44100
        header = struct.pack("<4sI4s4sIHHIIHH4sI", b"RIFF", 36 + data.nbytes, b"WAVE", b"fmt ", 16,
                             _WAVE_FORMAT_IEEE_FLOAT, 1, rate, rate * 4, 4, 32, b"data", data.nbytes)
        path = self.new_path(label)
        with open(path, "wb") as f:
            f.write(header)
            f.write(memoryview(data).cast("B"))
        return path

    @staticmethod
    def read(path: Path) -> np.ndarray:
        """Samples Pd wrote with ``soundfiler write -bytes 4`` (mono), bit for bit."""
        data, _ = soundfile.read(path, dtype="float32", always_2d=False)
        return data if data.ndim == 1 else data[:, 0].copy()

    def discard(self, path: Path) -> None:
        path.unlink(missing_ok=True)

    def close(self) -> None:
        shutil.rmtree(self.root, ignore_errors=True)
