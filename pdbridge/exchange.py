"""Arrays travel between Pd and Python as float32 WAV files in one temporary folder per hub run.

Pd loads a 64k-sample float32 WAV with ``[soundfiler] read -resize`` in about 6 ms (FUDI text
takes ~31 ms and loses nothing only at 9 digits), and writes arrays out exactly with
``soundfiler write -bytes 4``. Workers on the hub's machine read and write the files in this folder
themselves, so samples never pass through the hub; a worker elsewhere sends them as message buffers
and the hub writes the files. Files are named by a counter (and the writer), so concurrent requests
never share one, and each is deleted once it has been read.
"""
from __future__ import annotations

import itertools
import os
import shutil
import struct
import tempfile
from pathlib import Path
from typing import Optional

import numpy as np
import soundfile

_WAVE_FORMAT_IEEE_FLOAT = 3


def write_wav(path: Path, samples: np.ndarray, sample_rate: Optional[float] = None) -> None:
    """A mono float32 WAV for Pd to read: a 44-byte header and the samples in one write.

    The rate is written so the file is also playable elsewhere (Pd ignores it).
    """
    data = np.ascontiguousarray(samples, dtype="<f4")
    rate = int(round(sample_rate)) if sample_rate and sample_rate > 0 else 44100
    header = struct.pack("<4sI4s4sIHHIIHH4sI", b"RIFF", 36 + data.nbytes, b"WAVE", b"fmt ", 16,
                         _WAVE_FORMAT_IEEE_FLOAT, 1, rate, rate * 4, 4, 32, b"data", data.nbytes)
    with open(path, "wb") as f:
        f.write(header)
        f.write(memoryview(data).cast("B"))


def read_wav(path: Path) -> np.ndarray:
    """Samples Pd wrote with ``soundfiler write -bytes 4`` (mono), bit for bit."""
    data, _ = soundfile.read(path, dtype="float32", always_2d=False)
    return data if data.ndim == 1 else data[:, 0].copy()


class ArrayExchange:
    """The array folder: the hub's own (made here, removed by :meth:`close`) or, in a worker, the hub's.

    ``prefix`` keeps the names one writer makes apart from every other writer's.
    """

    def __init__(self, root: Optional[Path] = None, prefix: str = "") -> None:
        if root is None:
            # tmpfs when there is one: these files live for milliseconds and never need the disk
            shm = "/dev/shm" if os.path.isdir("/dev/shm") and os.access("/dev/shm", os.W_OK) else None
            root = Path(tempfile.mkdtemp(prefix="pdbridge-", dir=shm))
            self._owned = True
        else:
            self._owned = False
        self.root = root
        self.prefix = prefix
        self._ids = itertools.count(1)

    def new_path(self, label: str) -> Path:
        safe = "".join(c if c.isalnum() or c in "-_" else "_" for c in label)[:40]
        return self.root / f"{self.prefix}{next(self._ids)}-{safe}.wav"

    def write(self, label: str, samples: np.ndarray, sample_rate: Optional[float] = None) -> Path:
        path = self.new_path(label)
        write_wav(path, samples, sample_rate)
        return path

    def owns(self, path: Path) -> bool:
        """Whether ``path`` is a WAV file directly in this folder (a worker cannot point elsewhere)."""
        return path.parent == self.root and path.suffix == ".wav"

    def discard(self, path: Path) -> None:
        """Delete ``path`` if it is one of this folder's files; any other path is left alone."""
        if self.owns(path):
            path.unlink(missing_ok=True)

    def close(self) -> None:
        if self._owned:
            shutil.rmtree(self.root, ignore_errors=True)
