"""Model configuration, read from and written to PRiSM SampleRNN's ``*.config.json`` keys.

A PRiSM config file works here unchanged, and the files pdbridge writes can be read by PRiSM
(the extra keys pdbridge adds are ignored there). Keys and defaults are PRiSM's
(``default.config.json``): seq_len, frame_sizes, dim, rnn_type, num_rnn_layers, q_type, q_levels,
emb_size, and the optional skip_conn and rnn_dropout. pdbridge adds ``sample_rate``, the rate the
model was trained at (PRiSM leaves it to the user to remember).

``emb_size`` note: PRiSM ignores it and always builds a ``q_levels x q_levels`` embedding. Models
trained with pdbridge use ``emb_size``; checkpoints imported from PRiSM get ``emb_size = q_levels``
(the importer sets it from the stored embedding table).
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from .quantize import Q_TYPES

RNN_TYPES = ("gru", "lstm")
_KNOWN_KEYS = {"seq_len", "frame_sizes", "dim", "rnn_type", "num_rnn_layers", "q_type", "q_levels",
               "emb_size", "skip_conn", "rnn_dropout", "sample_rate"}


class ConfigError(ValueError):
    """The configuration cannot describe a SampleRNN; the message names the key to fix."""


@dataclass(frozen=True)
class SampleRNNConfig:
    """Hyper-parameters of a 3-tier SampleRNN (big frame RNN, frame RNN, sample MLP)."""

    seq_len: int = 1024
    frame_sizes: tuple[int, int] = (16, 64)
    dim: int = 1024
    rnn_type: str = "gru"
    num_rnn_layers: int = 4
    q_type: str = "mu-law"
    q_levels: int = 256
    emb_size: int = 256
    skip_conn: bool = False
    rnn_dropout: float = 0.0
    sample_rate: int = 16000
    extra: dict[str, Any] = field(default_factory=dict, compare=False)

    def __post_init__(self) -> None:
        fs = self.frame_sizes
        if len(fs) != 2 or not all(isinstance(f, int) and f > 0 for f in fs):
            raise ConfigError(f"frame_sizes must be two positive integers, got {list(fs)}")
        if fs[1] % fs[0] != 0 or fs[1] <= fs[0]:
            raise ConfigError(
                f"frame_sizes {list(fs)}: the second (big frame) must be a larger multiple of the first")
        if self.seq_len <= 0 or self.seq_len % fs[1] != 0:
            raise ConfigError(f"seq_len {self.seq_len} must be a positive multiple of {fs[1]}")
        if self.rnn_type not in RNN_TYPES:
            raise ConfigError(f"rnn_type {self.rnn_type!r} must be one of {RNN_TYPES}")
        if self.q_type not in Q_TYPES:
            raise ConfigError(f"q_type {self.q_type!r} must be one of {Q_TYPES}")
        if self.q_type == "mu-law" and self.q_levels != 256:
            raise ConfigError("q_levels must be 256 for mu-law (as in PRiSM)")
        if self.q_levels < 2:
            raise ConfigError(f"q_levels {self.q_levels} must be at least 2")
        for key in ("dim", "num_rnn_layers", "emb_size", "sample_rate"):
            if getattr(self, key) <= 0:
                raise ConfigError(f"{key} must be positive, got {getattr(self, key)}")
        if not 0.0 <= self.rnn_dropout < 1.0:
            raise ConfigError(f"rnn_dropout {self.rnn_dropout} must be in [0, 1)")

    @property
    def frame_size(self) -> int:
        """Samples per frame of the middle tier (PRiSM's frame_sizes[0])."""
        return self.frame_sizes[0]

    @property
    def big_frame_size(self) -> int:
        """Samples per frame of the top tier; also the length of the initial context."""
        return self.frame_sizes[1]

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "SampleRNNConfig":
        """Build from PRiSM's keys; ``None`` for skip_conn/rnn_dropout means off, as in PRiSM."""
        kwargs: dict[str, Any] = {}
        try:
            for key in ("seq_len", "dim", "num_rnn_layers", "q_levels", "emb_size", "sample_rate"):
                if key in data:
                    kwargs[key] = int(data[key])
            if "frame_sizes" in data:
                kwargs["frame_sizes"] = tuple(int(f) for f in data["frame_sizes"])
            if data.get("rnn_type") is not None:
                kwargs["rnn_type"] = str(data["rnn_type"]).lower()
            if "q_type" in data:
                kwargs["q_type"] = str(data["q_type"]).lower()
            kwargs["skip_conn"] = bool(data.get("skip_conn") or False)
            kwargs["rnn_dropout"] = float(data.get("rnn_dropout") or 0.0)
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"bad value in SampleRNN config: {exc}") from exc
        kwargs["extra"] = {k: v for k, v in data.items() if k not in _KNOWN_KEYS}
        return cls(**kwargs)

    @classmethod
    def from_json(cls, path: str | Path) -> "SampleRNNConfig":
        """Read a ``*.config.json`` file (PRiSM's or pdbridge's)."""
        try:
            data = json.loads(Path(path).read_text())
        except (OSError, json.JSONDecodeError) as exc:
            raise ConfigError(f"cannot read SampleRNN config {path}: {exc}") from exc
        if not isinstance(data, dict):
            raise ConfigError(f"{path}: a SampleRNN config must be a JSON object")
        return cls.from_dict(data)

    def to_dict(self) -> dict[str, Any]:
        """PRiSM-compatible dict (plus sample_rate and any unknown keys that were read)."""
        data = asdict(self)
        extra = data.pop("extra")
        data["frame_sizes"] = list(self.frame_sizes)
        data.update(extra)
        return data

    def to_json(self, path: str | Path) -> None:
        """Write the config beside a checkpoint so the folder is self-describing."""
        Path(path).write_text(json.dumps(self.to_dict(), indent=4) + "\n")

    def with_changes(self, **changes: Any) -> "SampleRNNConfig":
        """Copy with some fields replaced (validated again)."""
        return replace(self, **changes)
