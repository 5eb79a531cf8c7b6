"""Reading model folders written by the original CAW code (galgreshler/Catch-A-Waveform).

Such a folder (``outputs/<name>/``) holds:

- ``log.txt``: every parameter as ``key = value`` (Python literals), then per scale a block with one
  ``noise_amp: <%.6f>`` line. The amplitudes are read back rounded to 6 decimals, as the original's
  own generation script does.
- ``netGScale<k>.pth``: the generators' state_dicts (k = 0 the coarsest), whose key names differ
  from ours only in nesting (see :data:`KEY_MAP`). ``netDScale*`` are not needed.
- ``reconstruction_noise_list.pt``: a list of per-scale fixed noise tensors, already zero-padded and
  multiplied by the scale's noise amp (the same convention as ours).
- ``real@<fs>Hz.wav``: the training signal at each scale (16-bit PCM).

Everything is read with ``torch.load(weights_only=True)``; nothing from the folder is executed.
"""
from __future__ import annotations

import ast
import re
from pathlib import Path
from typing import Any

import torch

from .config import CAWConfig, ScaleInfo
from .folder import CAWModel, ModelFolderError, load_tensors
from .model import Generator

KEY_MAP = [
    (re.compile(r"^head\.conv\.conv\.(.+)$"), r"head.conv.\1"),
    (re.compile(r"^head\.norm\.(.+)$"), r"head.norm.\1"),
    (re.compile(r"^body\.block(\d+)\.conv\.conv\.(.+)$"), None),
    (re.compile(r"^body\.block(\d+)\.norm\.(.+)$"), None),
    (re.compile(r"^tail\.tail0\.conv\.(.+)$"), r"tail.\1"),
    (re.compile(r"^filter\.0\.conv\.(.+)$"), r"filter.\1"),
    (re.compile(r"^gate\.0\.conv\.(.+)$"), r"gate.\1"),
    (re.compile(r"^out_conv\.conv\.(.+)$"), r"out.\1"),
]
"""Original generator key -> ours. Body blocks are numbered from 1 there and from 0 here."""

CONFIG_KEYS = {
    "max_length": "max_seconds", "num_epochs": "num_epochs", "learning_rate": "learning_rate", "beta1": "beta1",
    "scheduler_lr_decay": "lr_decay", "filter_size": "filter_size", "num_layers": "num_layers",
    "hidden_channels_init": "hidden_channels_init", "growing_hidden_channels_factor": "channels_factor",
    "lambda_grad": "lambda_grad", "alpha1": "alpha1", "alpha2": "alpha2", "multispec_loss_n_fft": "mss_n_fft",
    "multispec_loss_hop_length": "mss_hop", "multispec_loss_window_size": "mss_window",
    "min_energy_th": "min_energy", "initial_noise_amp": "initial_noise_amp", "noise_amp_factor": "noise_amp_factor",
    "add_cond_noise": "add_cond_noise", "run_mode": "run_mode", "speech": "speech",
}
"""Original parameter name -> CAWConfig field."""


def map_key(key: str) -> str:
    for pattern, replacement in KEY_MAP:
        m = pattern.match(key)
        if m is None:
            continue
        if replacement is None:  # body.block<i>.conv.conv.x / body.block<i>.norm.x
            part = "conv" if ".conv.conv." in key else "norm"
            return f"body.{int(m.group(1)) - 1}.{part}.{m.group(2)}"
        return m.expand(replacement)
    raise ModelFolderError(f"unexpected generator weight {key!r}: not an original CAW generator")


def parse_log(path: Path) -> tuple[dict[str, Any], list[float]]:
    """The parameters (the ``key = value`` lines before the first scale block) and the noise amps."""
    params: dict[str, Any] = {}
    amps: list[float] = []
    in_header = True
    for line in path.read_text(errors="replace").splitlines():
        if line.startswith("*"):
            in_header = False
        elif line.startswith("noise_amp:"):
            amps.append(float(line.split(":", 1)[1]))
        elif in_header and " = " in line:
            key, _, value = line.partition(" = ")
            params[key.strip()] = _literal(value.strip())
    return params, amps


def _literal(text: str) -> Any:
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text  # e.g. "device = cpu", "run_mode = normal"


def load_original(path: Path, device: str = "cpu") -> CAWModel:
    """An original CAW output folder as a :class:`CAWModel` (generation only: no discriminators)."""
    params, amps = parse_log(path / "log.txt")
    try:
        fs_list = [int(f) for f in params["fs_list"]]
        lengths = [int(n) for n in params["inputs_lengths"]]
        fs, norm_factor = int(params["Fs"]), float(params["norm_factor"])
    except (KeyError, TypeError, ValueError) as exc:
        raise ModelFolderError(f"{path / 'log.txt'} lacks fs_list, inputs_lengths, Fs or norm_factor") from exc
    values = {ours: params[theirs] for theirs, ours in CONFIG_KEYS.items() if theirs in params}
    for key in ("mss_n_fft", "mss_hop", "mss_window"):
        if key in values:
            values[key] = tuple(values[key])
    if params.get("run_mode") == "inpainting":
        values["holes"] = tuple((int(s), int(e)) for s, e in params.get("inpainting_indices", []))
    config = CAWConfig(sample_rate=fs, **values)
    dilations = params.get("dilation_factors", config.dilations)
    if list(dilations) != config.dilations:
        raise ModelFolderError(f"{path}: dilations {dilations} are not 1, 2, 4, ...: not a model this reader knows")
    available = [k for k in range(len(fs_list)) if (path / f"netGScale{k}.pth").exists()]
    if available != list(range(len(available))) or not available:
        raise ModelFolderError(f"{path} has no netGScale0.pth ... netGScale{len(fs_list) - 1}.pth")
    n = min(len(available), len(amps), len(fs_list))
    generators = []
    for k in range(n):
        state = {map_key(key): t for key, t in load_tensors(path / f"netGScale{k}.pth").items()}
        g = Generator.for_scale(config, k)
        try:
            g.load_state_dict(state)
        except RuntimeError as exc:
            raise ModelFolderError(f"{path / f'netGScale{k}.pth'} does not fit scale {k}: {exc}") from exc
        generators.append(g.to(device).eval().requires_grad_(False))
    noise = load_tensors(path / "reconstruction_noise_list.pt")
    if not isinstance(noise, list) or len(noise) < n or not all(isinstance(t, torch.Tensor) for t in noise[:n]):
        raise ModelFolderError(f"{path / 'reconstruction_noise_list.pt'} is not a list of {n} tensors")
    scales = [ScaleInfo(fs=fs_list[k], length=lengths[k], channels=config.channels(k), noise_amp=amps[k],
                        energy=float("nan"), epochs_done=config.num_epochs) for k in range(n)]
    return CAWModel(config, fs, norm_factor, scales, generators, [t.float().to(device) for t in noise[:n]], path,
                    kind="original")
