"""CAW's parameters: the paper's published values, our presets, and what follows from them.

One :class:`CAWConfig` describes a training run; it is stored in every model folder we write
(caw.json) and rebuilt from the original code's log.txt (original.py), so generation knows the
architecture and scales of any model it loads.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any, Mapping, Optional

FS_LIST = (320, 400, 500, 640, 800, 1000, 1280, 1600, 2000, 2500, 4000, 8000, 10000, 12000, 14400, 16000)
"""The paper's scale rates in Hz, coarse to fine; truncated to the model's rate (which is appended)."""
RUN_MODES = ("normal", "inpainting", "denoising")
SPEECH_MIN_FS = 500
"""Speech skips the energy rule and starts at the first scale of at least 500 Hz (as published)."""
FALLBACK_FIRST_FS = 500
"""When no scale reaches the energy threshold, the published code starts at the third scale (500 Hz)."""


class ConfigError(ValueError):
    """A setting a student can fix (out of range, inconsistent with the input)."""


@dataclass(frozen=True)
class CAWConfig:
    """Everything that defines a CAW model and its training (defaults: the paper's)."""

    sample_rate: int = 16000
    """The finest scale's rate: the input is resampled down to it when it is higher."""
    max_seconds: float = 25.0
    num_epochs: int = 2000
    """Optimisation steps per scale (one discriminator and one generator step on the whole signal)."""
    learning_rate: float = 0.0015
    beta1: float = 0.5
    lr_decay: float = 0.1
    """The learning rate is multiplied by this at 2/3 of the epochs of each scale."""
    filter_size: int = 9
    num_layers: int = 8
    hidden_channels_init: int = 16
    """Channels at the coarsest scale."""
    channels_factor: int = 6
    """Every other scale has ``hidden_channels_init * channels_factor`` channels (96)."""
    lambda_grad: float = 0.01
    alpha1: float = 0.0
    """Weight of the time-domain L2 reconstruction loss (speech, inpainting, denoising: 10)."""
    alpha2: float = 1e-4
    """Weight of the multi-scale spectrogram reconstruction loss (music, normal mode: 1e-4)."""
    mss_n_fft: tuple[int, ...] = (2048, 1024, 512)
    mss_hop: tuple[int, ...] = (240, 120, 50)
    mss_window: tuple[int, ...] = (1200, 600, 240)
    min_energy: float = 0.0025
    """The first scale is the first whose mean energy (peak-normalised input) reaches this."""
    initial_noise_amp: float = 1.0
    noise_amp_factor: float = 0.01
    add_cond_noise: bool = True
    """Scale 1's noise amplitude is the spread of scale 0's reconstruction (music, inpainting)."""
    run_mode: str = "normal"
    speech: bool = False
    holes: tuple[tuple[int, int], ...] = ()
    """Inpainting: the holes as (start, end) sample indices at ``sample_rate``."""
    seed: Optional[int] = None

    # -- derived ---------------------------------------------------------------------------------
    @property
    def dilations(self) -> list[int]:
        return [2 ** i for i in range(self.num_layers)]

    @property
    def pad(self) -> int:
        """Zeros added on each side of a generator's input, so its output is as long as the signal."""
        return math.ceil(sum(self.dilations) * (self.filter_size - 1) / 2)

    @property
    def receptive_field(self) -> int:
        """Samples one output sample depends on."""
        return self.filter_size * self.dilations[0] + sum(self.dilations[1:]) * (self.filter_size - 1)

    def channels(self, scale: int) -> int:
        return self.hidden_channels_init if scale == 0 else self.hidden_channels_init * self.channels_factor

    @property
    def milestone(self) -> int:
        return int(self.num_epochs * 2 / 3)

    def fs_list(self, input_rate: int) -> list[int]:
        """The candidate scale rates for an input at ``input_rate`` (before the energy rule)."""
        top = min(self.sample_rate, input_rate)
        rates = [f for f in FS_LIST if f <= top]
        return rates if rates and rates[-1] == top else rates + [top]

    # -- checking and storing --------------------------------------------------------------------
    def validated(self) -> "CAWConfig":
        """Self, or a ConfigError naming the first setting out of range."""
        checks = [
            (1000 <= self.sample_rate <= 48000, "the model's rate must be 1000..48000 Hz"),
            (0 < self.max_seconds <= 120, "the clip length must be more than 0 and at most 120 s"),
            (1 <= self.num_epochs <= 100000, "epochs must be 1..100000"),
            (2 <= self.num_layers <= 12, "layers must be 2..12"),
            (1 <= self.hidden_channels_init <= 512 and 1 <= self.channels_factor <= 16, "channels out of range"),
            (self.run_mode in RUN_MODES, f"--run_mode must be one of {', '.join(RUN_MODES)}"),
            (self.run_mode != "inpainting" or bool(self.holes),
             "--run_mode inpainting needs --inpainting_indices start end [start end ...]"),
            (all(0 <= s < e for s, e in self.holes), "each hole needs 0 <= start < end"),
        ]
        for ok, problem in checks:
            if not ok:
                raise ConfigError(problem)
        return self

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["holes"] = [list(h) for h in self.holes]
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "CAWConfig":
        """The inverse of :meth:`to_dict`; unknown keys are an error (a newer folder format)."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ConfigError(f"unknown CAW settings {', '.join(unknown)}")
        values = dict(data)
        for key in ("mss_n_fft", "mss_hop", "mss_window"):
            if key in values:
                values[key] = tuple(int(v) for v in values[key])
        if "holes" in values:
            values["holes"] = tuple((int(s), int(e)) for s, e in values["holes"])
        return cls(**values)


def for_mode(config: CAWConfig) -> CAWConfig:
    """Losses and conditional noise as the paper sets them for the signal type and run mode:
    music in normal mode uses the spectrogram loss; speech, inpainting and denoising the L2 loss."""
    if config.speech or config.run_mode != "normal":
        return replace(config, alpha1=10.0, alpha2=0.0,
                       add_cond_noise=config.run_mode == "inpainting" and not config.speech)
    return replace(config, alpha1=0.0, alpha2=1e-4, add_cond_noise=True)


PRESETS: dict[str, dict[str, Any]] = {
    "paper": {},
    "quick": {"sample_rate": 8000, "max_seconds": 8.0, "num_epochs": 200, "hidden_channels_init": 16,
              "channels_factor": 2},
}
"""``paper``: the published settings (16 kHz, 25 s, 2000 epochs, 16/96 channels; hours on a GPU).
``quick``: 8 kHz, at most 8 s, 200 epochs, 16/32 channels, to try things out: about 35 min of one
2-core CPU core (bench/caw.py), against days for the paper preset on the same machine."""


def preset(name: str, **overrides: Any) -> CAWConfig:
    """A preset with some settings changed (``None`` values are left at the preset's)."""
    if name not in PRESETS:
        raise ConfigError(f"--preset must be one of {', '.join(PRESETS)}")
    values = {**PRESETS[name], **{k: v for k, v in overrides.items() if v is not None}}
    return for_mode(CAWConfig(**values)).validated()


@dataclass
class ScaleInfo:
    """What training found out about one scale; stored in the model folder."""

    fs: int
    length: int
    channels: int
    noise_amp: float
    energy: float
    epochs_done: int = 0
    seconds: float = 0.0
    losses: dict[str, float] = field(default_factory=dict)
    """The last epoch's losses: d_real, d_fake, gp, rec."""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "ScaleInfo":
        return cls(**{k: data[k] for k in data if k in {f.name for f in fields(cls)}})
