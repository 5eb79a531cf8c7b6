"""Arrays between Pd and Python: float32 WAV files in the hub's private folder, or message buffers.

Pd loads a 64k-sample float32 WAV with ``[soundfiler] read -resize`` in about 6 ms (FUDI text
takes ~31 ms and loses nothing only at 9 digits), and writes arrays out exactly with
``soundfiler write -bytes 4``. The files live in one folder per hub run, readable by its user only.
Files Pd reads or writes are named by a number alone (``12.wav``): Pd builds the path itself from the
folder named in its ticket and that number, so whatever the hub says, Pd touches no other file.
Workers on the hub's machine write their outputs into the same folder under their own prefix
(``w3-7.wav``) and the hub renames them to a number before Pd reads them; a worker elsewhere sends
samples as message buffers, cut into frames of at most :data:`MAX_BUFFER_BYTES`.
"""
from __future__ import annotations

import itertools
import struct
from pathlib import Path
from typing import Any, Iterator, Optional

import numpy as np
import soundfile

from .messages import Buffer, InvalidMessage

_WAVE_FORMAT_IEEE_FLOAT = 3
MAX_BUFFER_BYTES = 16 * 2**20
"""Largest buffer frame: the hub's network socket refuses bigger frames from anyone."""
PD_FILE_NUMBERS = 2**24
"""Pd's floats hold whole numbers exactly up to 2^24: file numbers wrap there."""


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


class ArrayFolder:
    """The hub's array folder as one writer sees it: new file names, and which files it may delete.

    ``prefix`` keeps one writer's names apart from every other's; the hub's own prefix is empty,
    so its files are the numbered ones Pd may read and write.
    """

    def __init__(self, root: Path, prefix: str = "") -> None:
        self.root = root
        self.prefix = prefix
        self._ids = itertools.count(1)

    def next_number(self) -> int:
        """1, 2, ... up to 2^24 - 1, then from 1 again (a file lives milliseconds, not 16 million requests)."""
        return (next(self._ids) - 1) % (PD_FILE_NUMBERS - 1) + 1

    def path_for(self, number: int) -> Path:
        return self.root / f"{self.prefix}{number}.wav"

    def new_path(self) -> tuple[int, Path]:
        number = self.next_number()
        return number, self.path_for(number)

    def write(self, samples: np.ndarray, sample_rate: Optional[float] = None) -> Path:
        _, path = self.new_path()
        write_wav(path, samples, sample_rate)
        return path

    def owns(self, path: Path) -> bool:
        """Whether ``path`` is a WAV file directly in this folder (a worker cannot point elsewhere)."""
        return path.parent == self.root and path.suffix == ".wav" and path.name != ".wav"

    def discard(self, path: Path) -> None:
        """Delete ``path`` if it is one of this folder's files; any other path is left alone."""
        if self.owns(path):
            path.unlink(missing_ok=True)


def array_to_buffers(samples: np.ndarray) -> tuple[dict[str, Any], list[np.ndarray]]:
    """Describe a (frames,) or (channels, frames) float32 array and cut it into buffer frames."""
    data = np.ascontiguousarray(samples, dtype="<f4")
    if data.ndim not in (1, 2):
        raise ValueError(f"arrays are 1-D (mono) or 2-D (channels, frames), got shape {data.shape}")
    flat = data.reshape(-1)
    step = MAX_BUFFER_BYTES // 4
    chunks = [flat[i:i + step] for i in range(0, flat.size, step)] or [flat]
    return {"shape": list(data.shape), "dtype": "float32", "buffers": len(chunks)}, chunks


def buffers_to_array(meta: dict[str, Any], buffers: Iterator[Buffer]) -> np.ndarray:
    """The inverse of :func:`array_to_buffers`: takes ``meta["buffers"]`` frames from ``buffers``."""
    try:
        shape = tuple(int(n) for n in meta["shape"])
        count = int(meta.get("buffers", 1))
    except (KeyError, TypeError, ValueError) as exc:
        raise InvalidMessage(f"bad array description {meta!r}") from exc
    if meta.get("dtype") != "float32":
        raise InvalidMessage(f"unsupported array dtype {meta.get('dtype')!r}")
    try:
        parts = [np.frombuffer(next(buffers), dtype="<f4") for _ in range(count)]
    except StopIteration:
        raise InvalidMessage("fewer buffers than the arrays describe") from None
    except ValueError as exc:
        raise InvalidMessage(f"array buffer is not float32 data: {exc}") from exc
    arr = parts[0] if len(parts) == 1 else np.concatenate(parts)
    if arr.size != int(np.prod(shape)):
        raise InvalidMessage(f"array buffers hold {arr.size} values, the description says {shape}")
    return arr.reshape(shape)
