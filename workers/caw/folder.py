"""Model folders: what a trained CAW model is on disk, ours and the original code's.

Our format (docs/models/caw.md)::

    <model_dir>/
      caw.json                    format "pdbridge-caw" 1: config, rate, norm_factor, one entry per scale
                                  (fs, length, channels, noise_amp, energy, epochs_done, seconds, losses)
      generator<k>.pt             scale k's generator state_dict (k = 0 is the coarsest)
      discriminator<k>.pt         its discriminator (training only: resuming, initialising scale k+1)
      reconstruction_noise.pt     {"noise": [tensor (1, 1, length + 2 pad) per scale]}: the fixed noise
                                  (zero-padded, times the scale's noise amp) that reconstructs the input
      real@<fs>Hz.wav             the training signal at each scale (float32)
      reconstructed@<fs>Hz.wav, fake@<fs>Hz.wav, losses@<fs>Hz.png   written as each scale finishes
      losses.json                 every epoch's losses per scale (for the plots)
      input.wav                   the clip as given (training reads it again when resuming)
      checkpoint.pt               the scale being trained (removed when it is done)

Every ``.pt`` file holds only tensors, numbers and strings and is read with ``weights_only=True``.
:func:`load_model` also reads the original code's folders (original.py).
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf
import torch

from .config import CAWConfig, ConfigError, ScaleInfo
from .model import FrozenGenerator, Generator

FORMAT = "pdbridge-caw"
FORMAT_VERSION = 1
MANIFEST = "caw.json"
NOISE_FILE = "reconstruction_noise.pt"


class ModelFolderError(ValueError):
    """Not a CAW model folder, or a damaged one; the text says what is missing."""


@dataclass
class CAWModel:
    """A trained (or partly trained) model: what generation needs."""

    config: CAWConfig
    fs: int
    """The finest scale's rate (the rate of everything the model makes)."""
    norm_factor: float
    """The input's peak: the model works on the input divided by it."""
    scales: list[ScaleInfo]
    generators: list[Generator]
    reconstruction_noise: list[torch.Tensor]
    folder: Path
    kind: str = "pdbridge"
    """"pdbridge" or "original" (a folder written by the original code)."""
    _frozen: dict[str, list[FrozenGenerator]] = field(default_factory=dict, repr=False)

    @property
    def fs_list(self) -> list[int]:
        return [s.fs for s in self.scales]

    @property
    def lengths(self) -> list[int]:
        return [s.length for s in self.scales]

    @property
    def noise_amps(self) -> list[float]:
        return [s.noise_amp for s in self.scales]

    def frozen(self, device: str = "cpu") -> list[FrozenGenerator]:
        """The generators folded for inference on ``device`` (made once)."""
        if device not in self._frozen:
            self._frozen[device] = [FrozenGenerator(g).to(device) for g in self.generators]
        return self._frozen[device]

    def real(self, scale: int) -> np.ndarray:
        """The training signal at a scale (normalised), as written when training started."""
        path = self.folder / f"real@{self.scales[scale].fs}Hz.wav"
        if not path.exists():
            raise ModelFolderError(f"{path} is missing (the training signal at {self.scales[scale].fs} Hz)")
        return sf.read(path, dtype="float32")[0]


def load_model(path: Path, device: str = "cpu") -> CAWModel:
    """A model folder of ours or of the original code, ready to generate on ``device``."""
    if not path.is_dir():
        raise ModelFolderError(f"{path} is not a folder (a CAW model is a folder)")
    if (path / MANIFEST).exists():
        return _load_ours(path, device)
    if (path / "log.txt").exists():
        from .original import load_original

        return load_original(path, device)
    raise ModelFolderError(f"{path} holds neither caw.json (pdbridge) nor log.txt (original CAW)")


def read_manifest(path: Path) -> dict[str, Any]:
    try:
        data = json.loads((path / MANIFEST).read_text())
    except (OSError, ValueError) as exc:
        raise ModelFolderError(f"cannot read {path / MANIFEST}: {exc}") from exc
    if data.get("format") != FORMAT or int(data.get("version", 0)) > FORMAT_VERSION:
        raise ModelFolderError(f"{path / MANIFEST} is not a {FORMAT} v{FORMAT_VERSION} manifest")
    return data


def write_manifest(path: Path, config: CAWConfig, fs: int, norm_factor: float, scales: list[ScaleInfo],
                   **extra: Any) -> None:
    data = {"format": FORMAT, "version": FORMAT_VERSION, "config": config.to_dict(), "fs": fs,
            "norm_factor": norm_factor, "scales": [s.to_dict() for s in scales], **extra}
    atomic_write_bytes(path / MANIFEST, json.dumps(data, indent=1).encode())


def _load_ours(path: Path, device: str) -> CAWModel:
    data = read_manifest(path)
    try:
        config = CAWConfig.from_dict(data["config"])
    except (ConfigError, TypeError) as exc:
        raise ModelFolderError(f"{path / MANIFEST}: {exc}") from exc
    scales = [ScaleInfo.from_dict(s) for s in data["scales"]]
    done = [s for s in scales if s.epochs_done >= config.num_epochs]
    if not done:
        raise ModelFolderError(f"{path} has no trained scale yet (is its training still running? "
                               "status shows it)")
    generators = []
    for k in range(len(done)):
        g = Generator.for_scale(config, k)
        g.load_state_dict(load_tensors(path / f"generator{k}.pt"))
        generators.append(g.to(device).eval().requires_grad_(False))
    noise = load_tensors(path / NOISE_FILE)["noise"][:len(done)]
    return CAWModel(config, int(data["fs"]), float(data["norm_factor"]), done, generators,
                    [n.to(device) for n in noise], path)


def load_tensors(path: Path) -> Any:
    """``torch.load(weights_only=True)`` on the CPU, with an error that names the file."""
    if not path.exists():
        raise ModelFolderError(f"{path} is missing")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many types for a damaged or foreign file
        raise ModelFolderError(f"cannot read {path}: {exc}") from exc


def save_tensors(path: Path, obj: Any) -> None:
    """``torch.save`` through a temporary file, so a stop never leaves half a file."""
    tmp = path.with_name(f".{path.name}.tmp")
    torch.save(obj, tmp)
    os.replace(tmp, path)


def atomic_write_bytes(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def write_wav(path: Path, samples: np.ndarray, fs: int) -> None:
    """Float32 WAV (exact); written through a temporary file."""
    tmp = path.with_name(f".{path.stem}.tmp.wav")
    sf.write(tmp, np.asarray(samples, dtype=np.float32), int(fs), subtype="FLOAT")
    os.replace(tmp, path)
