"""pdbridge's own checkpoints, and finding the model a user points at.

A pdbridge checkpoint is one ``checkpoint-<step>.pt`` file (``torch.save`` of plain tensors and
numbers, loadable with ``weights_only=True``) holding the config, the weights, and for resuming the
optimizer state and training counters. Training also writes ``samplernn.config.json`` beside it,
in PRiSM's format.

``resolve_model`` accepts what a student is likely to type in Pd: a pdbridge run folder, a
``.pt`` file, a PRiSM run folder (``model.ckpt-N.index`` files, the highest N wins, as in the
course), or a PRiSM checkpoint prefix. A PRiSM checkpoint needs its config: ``--config`` if given,
else the single ``*.config.json`` next to it; unlike the course, there is no silent fallback to a
default config, because loading weights into the wrong architecture only fails later or sounds wrong.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from .config import ConfigError, SampleRNNConfig
from .model import SampleRNN
from .prism import find_prism_checkpoints, load_prism_model

FORMAT = "pdbridge-samplernn"
FORMAT_VERSION = 1
CONFIG_NAME = "samplernn.config.json"
_PT_RE = re.compile(r"^checkpoint-(\d+)\.pt$")


class CheckpointError(ValueError):
    """No usable model at the given path; the message says what was looked for."""


@dataclass
class LoadedModel:
    """A model ready to run, with where it came from (shown to the user on ``load``)."""

    model: SampleRNN
    config: SampleRNNConfig
    source: str
    kind: str  # "pdbridge" or "prism"


def save_checkpoint(path: Path, model: SampleRNN, training: dict[str, Any]) -> None:
    """Write ``model`` plus training state (``step``, ``epoch``, ``optimizer``, losses...)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {"format": FORMAT, "version": FORMAT_VERSION, "config": model.config.to_dict(),
               "model": model.state_dict(), "training": training}
    tmp = path.with_suffix(".tmp")
    torch.save(payload, tmp)
    tmp.replace(path)
    model.config.to_json(path.parent / CONFIG_NAME)


def read_checkpoint(path: Path) -> dict[str, Any]:
    """Load a pdbridge checkpoint file (tensors on the CPU) and check its format marker."""
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises several types for foreign or damaged files
        raise CheckpointError(f"cannot read {path}: {exc}") from exc
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise CheckpointError(f"{path} is not a pdbridge SampleRNN checkpoint")
    if payload.get("version", 0) > FORMAT_VERSION:
        raise CheckpointError(f"{path} was written by a newer pdbridge (format {payload['version']})")
    return payload


def pdbridge_checkpoints(folder: Path) -> list[tuple[int, Path]]:
    """``(step, path)`` of every ``checkpoint-<step>.pt`` in ``folder``, oldest first."""
    found = [(int(m.group(1)), p) for p in (folder.iterdir() if folder.is_dir() else [])
             if (m := _PT_RE.match(p.name))]
    return sorted(found)


def _prism_config(prefix: Path, config_path: Path | None) -> SampleRNNConfig:
    if config_path is not None:
        return SampleRNNConfig.from_json(config_path)
    candidates = sorted(prefix.parent.glob("*.config.json"))
    if len(candidates) == 1:
        return SampleRNNConfig.from_json(candidates[0])
    found = ", ".join(c.name for c in candidates) or "none"
    raise CheckpointError(
        f"PRiSM checkpoint {prefix.name} needs its config: pass --config FILE "
        f"(found *.config.json next to it: {found})")


def resolve_model(path: str | Path, config_path: str | Path | None = None) -> LoadedModel:
    """Load the model at ``path`` (see the module docstring for what ``path`` may be)."""
    path = Path(path)
    cfg_path = Path(config_path) if config_path is not None else None
    if path.suffix == ".index" or ".data-" in path.suffix:  # a file chosen in a file dialog
        path = path.with_suffix("")
    if path.is_file() and path.suffix == ".pt":
        return _load_pdbridge(path, cfg_path)
    if Path(str(path) + ".index").is_file():
        return _load_prism(path, cfg_path)
    if not path.is_dir():
        raise CheckpointError(f"no checkpoint at {path}")
    ours = pdbridge_checkpoints(path)
    if ours:
        return _load_pdbridge(ours[-1][1], cfg_path)
    prism = find_prism_checkpoints(path)
    if prism:
        return _load_prism(prism[-1][1], cfg_path)
    raise CheckpointError(
        f"{path} holds no checkpoint (looked for checkpoint-N.pt from pdbridge and "
        f"model.ckpt-N.index from PRiSM SampleRNN)")


def _load_pdbridge(path: Path, config_path: Path | None) -> LoadedModel:
    payload = read_checkpoint(path)
    try:
        config = SampleRNNConfig.from_dict(payload["config"])
    except ConfigError as exc:
        raise CheckpointError(f"{path}: {exc}") from exc
    if config_path is not None:
        given = SampleRNNConfig.from_json(config_path)
        if given.with_changes(seq_len=config.seq_len, rnn_dropout=config.rnn_dropout,
                              sample_rate=config.sample_rate) != config:
            raise CheckpointError(
                f"--config {config_path} describes another architecture than {path.name}; "
                f"pdbridge checkpoints carry their own config, so leave --config out")
    model = SampleRNN(config)
    model.load_state_dict(payload["model"])
    model.eval()
    return LoadedModel(model, config, str(path), "pdbridge")


def _load_prism(prefix: Path, config_path: Path | None) -> LoadedModel:
    config = _prism_config(prefix, config_path)
    model, config = load_prism_model(prefix, config)
    return LoadedModel(model, config, str(prefix), "prism")
