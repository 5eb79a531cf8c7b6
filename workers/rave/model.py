"""RAVE TorchScript exports on whole arrays: load, describe, encode, decode, forward, sample.

A RAVE export (``rave export``, or the older ``export_rave.py`` of RAVE v1) is a TorchScript module
that describes itself the way nn~ expects: for each usable method ``m`` a buffer ``m_params`` holds
``[in_channels, in_ratio, out_channels, out_ratio]``. ``encode`` turns audio into a latent signal
with one channel per latent dimension and one frame per ``ratio`` samples; ``decode`` goes back;
``prior`` (only when the export was made with ``--prior``) turns a temperature signal into latents.
The model's sample rate is the int attribute ``sr`` (v2), the buffer ``sampling_rate`` (v1) or a
``get_sample_rate()`` method; some exports carry none of these, so the caller may say it.

Here the methods run on whole arrays rather than on audio blocks as in nn~, and each request is
the export's own methods on the input as given, so that its result is what the user gets by calling
the export after ``torch.manual_seed(seed)``: ``forward`` is the export's ``forward``, ``encode`` its
``encode``. Two departures, both documented in docs/models/rave.md: edits go between the export's
``encode`` and ``decode`` (one random stream, as its ``forward`` runs them), and an input that is
not a whole number of latent frames is zero-padded only for exports that refuse it or drop its end.
Streaming exports (cached convolutions) keep the past of the signal in buffers; we restore those to
their state at load before every request, so a result depends only on its input (and the seed),
never on what the previous request processed.
"""
from __future__ import annotations

import math
import warnings
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional

import numpy as np
import torch

from workers.runtime.resample import resample

DEFAULT_SAMPLE_RATE = 44100
"""Assumed for exports that do not store their rate: RAVE's v1/v2 configs train at 44.1 kHz."""
METHOD_NAMES = ("encode", "decode", "forward", "prior")

Progress = Callable[[float], None]


class RaveExportError(Exception):
    """The file is not a RAVE export we can use; the message says why, for the student."""


@dataclass(frozen=True)
class MethodShape:
    """nn~'s description of a method: channels in/out and how many samples make one frame."""

    in_channels: int
    in_ratio: int
    out_channels: int
    out_ratio: int


@dataclass
class LatentEdits:
    """Per-dimension changes applied to latents before decoding: ``z[d] * scale[d] + bias[d]``."""

    bias: dict[int, float] = field(default_factory=dict)
    scale: dict[int, float] = field(default_factory=dict)

    def __bool__(self) -> bool:
        return bool(self.bias or self.scale)

    def updated(self, other: "LatentEdits") -> "LatentEdits":
        """These edits with ``other``'s values taking over the dimensions it names."""
        return LatentEdits({**self.bias, **other.bias}, {**self.scale, **other.scale})

    def check(self, latent_size: int) -> None:
        """Every edited dimension must exist in the model's latent space."""
        for kind, values in (("bias", self.bias), ("scale", self.scale)):
            bad = sorted(d for d in values if not 0 <= d < latent_size)
            if bad:
                raise ValueError(f"{kind} for latent dimension {bad[0]}: this model has dimensions "
                                 f"0 to {latent_size - 1}")

    def apply(self, latent: np.ndarray) -> np.ndarray:
        """A copy of ``latent`` (dims, frames) with the edits applied; other dimensions untouched."""
        self.check(latent.shape[0])
        out = np.array(latent, dtype=np.float32, copy=True)
        for d, s in self.scale.items():
            out[d] *= s
        for d, b in self.bias.items():
            out[d] += b
        return out


def _read_shape(module: torch.jit.ScriptModule, method: str) -> Optional[MethodShape]:
    if not module._c.hasattr(f"{method}_params"):
        return None
    params = module._c.getattr(f"{method}_params")
    values = [int(v) for v in torch.as_tensor(params).flatten().tolist()]
    if len(values) != 4:
        return None
    return MethodShape(*values)


def _available_methods(module: torch.jit.ScriptModule) -> list[str]:
    """Methods usable as nn~ would find them: ``get_methods()`` if exported, else ``*_params``."""
    names = module._c._method_names()
    if "get_methods" in names:
        listed = [str(m) for m in module.get_methods()]
    else:
        listed = [m for m in names if module._c.hasattr(f"{m}_params")]
    usable = [m for m in listed if m in names and _read_shape(module, m) is not None]
    return sorted(usable, key=lambda m: (METHOD_NAMES.index(m) if m in METHOD_NAMES else len(METHOD_NAMES), m))


def _export_sample_rate(module: torch.jit.ScriptModule) -> Optional[int]:
    """The rate stored in the export, or None when it stores none."""
    c = module._c
    for name in ("sr", "sampling_rate"):
        if c.hasattr(name):
            value = c.getattr(name)
            if isinstance(value, torch.Tensor):
                if value.numel() != 1:
                    continue
                value = value.item()
            if isinstance(value, (int, float)) and value > 0:
                return int(value)
    if "get_sample_rate" in c._method_names():
        value = module.get_sample_rate()
        if isinstance(value, (int, float)) and value > 0:
            return int(value)
    return None


def _full_latent_size(module: torch.jit.ScriptModule, latent_size: int) -> int:
    """Dimensions the decoder really uses; ``decode`` fills those past ``latent_size`` itself."""
    for name in ("full_latent_size", "latent_size"):
        if module._c.hasattr(name):
            value = module._c.getattr(name)
            if isinstance(value, torch.Tensor) and value.numel() == 1:
                value = value.item()
            if isinstance(value, (int, float)) and value >= latent_size:
                return int(value)
    return latent_size


def _load_script(path: Path) -> torch.jit.ScriptModule:
    if not path.exists():
        raise RaveExportError(f"no such file: {path}")
    if path.is_dir():
        raise RaveExportError(f"{path} is a folder; give the exported .ts file inside it")
    if zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as archive:
            entries = archive.namelist()
        if not any("/code/" in e for e in entries) and any(e.endswith("data.pkl") for e in entries):
            raise RaveExportError(
                f"{path.name} is a PyTorch checkpoint, not a TorchScript export: export it first with "
                "`rave export --run <run folder> --streaming`, then load the .ts file")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)  # torch 2.13 deprecates torch.jit
            return torch.jit.load(str(path), map_location="cpu")
    except (RuntimeError, ValueError) as exc:
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise RaveExportError(f"{path.name} is not a TorchScript export (.ts): {reason}") from exc


class RaveModel:
    """A loaded RAVE export and what it says about itself. Arrays in and out are numpy float32."""

    def __init__(self, module: torch.jit.ScriptModule, path: Path, device: str = "cpu",
                 sample_rate: Optional[int] = None) -> None:
        self.path = path
        self.device = device
        self.methods = _available_methods(module)
        missing = [m for m in ("encode", "decode") if m not in self.methods]
        if missing:
            found = ", ".join(self.methods) or "none"
            raise RaveExportError(
                f"{path.name} is TorchScript but not a RAVE export: it has no usable {' or '.join(missing)} "
                f"(a RAVE export has encode and decode with encode_params/decode_params; methods found: {found})")
        self.encode_shape = _read_shape(module, "encode")
        self.decode_shape = _read_shape(module, "decode")
        assert self.encode_shape is not None and self.decode_shape is not None
        if (self.encode_shape.in_ratio != 1 or self.decode_shape.out_ratio != 1
                or self.encode_shape.out_channels != self.decode_shape.in_channels
                or self.encode_shape.out_ratio != self.decode_shape.in_ratio):
            raise RaveExportError(
                f"{path.name}: encode_params {self.encode_shape} and decode_params {self.decode_shape} "
                "do not describe an audio -> latent -> audio pair")
        self.latent_size = self.encode_shape.out_channels
        self.ratio = self.encode_shape.out_ratio
        self.in_channels = self.encode_shape.in_channels
        self.out_channels = self.decode_shape.out_channels
        self.full_latent_size = _full_latent_size(module, self.latent_size)
        self.prior_shape = _read_shape(module, "prior") if "prior" in self.methods else None

        stored = _export_sample_rate(module)
        if stored is not None and sample_rate is not None and sample_rate != stored:
            raise RaveExportError(
                f"{path.name} says it runs at {stored} Hz; a sample rate may only be given for exports "
                "that do not store theirs")
        if stored is not None:
            self.sample_rate, self.sample_rate_source = stored, "export"
        elif sample_rate is not None:
            self.sample_rate, self.sample_rate_source = int(sample_rate), "given"
        else:
            self.sample_rate, self.sample_rate_source = DEFAULT_SAMPLE_RATE, "assumed"

        self.module = module.to(device).eval()
        self.streaming = any(name.endswith(".pad") for name, _ in self.module.named_buffers())
        self._initial_buffers = {name: b.detach().clone() for name, b in self.module.named_buffers()}

    @classmethod
    def load(cls, path: Path | str, device: str = "cpu", sample_rate: Optional[int] = None) -> "RaveModel":
        """Load and check an export; ``sample_rate`` only for exports that do not store one."""
        p = Path(path)
        return cls(_load_script(p), p, device, sample_rate)

    # -- description ----------------------------------------------------------------------------
    @property
    def frame_rate(self) -> float:
        """Latent frames per second."""
        return self.sample_rate / self.ratio

    @property
    def has_prior(self) -> bool:
        return self.prior_shape is not None

    def frames_for(self, n_samples: int) -> int:
        """Latent frames covering ``n_samples`` at the model's rate (the last one possibly partial)."""
        return max(1, math.ceil(n_samples / self.ratio))

    # -- running --------------------------------------------------------------------------------
    def _reset(self) -> None:
        """Put streaming caches (and any other buffer a method mutates) back to their loaded state."""
        for name, buffer in self.module.named_buffers():
            buffer.copy_(self._initial_buffers[name])

    def _start(self, seed: Optional[int]) -> None:
        """Begin a request from the export's loaded state, then ``torch.manual_seed(seed)``.

        Without a seed torch's random stream simply goes on, so each request gets new randomness.
        """
        self._reset()
        if seed is not None:
            torch.manual_seed(seed)

    def _call(self, method: str, x: torch.Tensor) -> torch.Tensor:
        """One call of the export's own ``method`` on ``x`` (1, channels, time): (channels, time).

        A failure inside the export becomes a RaveExportError naming the method, with TorchScript's
        last line (the reason) rather than its interpreter traceback.
        """
        try:
            with torch.inference_mode():
                y = getattr(self.module, method)(x.to(self.device))
        except (RuntimeError, torch.jit.Error) as exc:  # torch.jit.Error: a `raise` in the export's code
            lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
            reason = lines[-1] if lines else type(exc).__name__
            raise RaveExportError(f"{self.path.name}: {method} failed on an input of shape "
                                  f"{tuple(x.shape)}: {reason}") from exc
        if not isinstance(y, torch.Tensor) or y.dim() != 3:
            raise RaveExportError(f"{self.path.name}: {method} returned {type(y).__name__} "
                                  "instead of a (batch, channels, time) tensor")
        return y[0].float().cpu()

    def _call_on_audio(self, method: str, x: np.ndarray, seed: Optional[int], needed: int) -> torch.Tensor:
        """The export's ``encode`` or ``forward`` of ``x`` (channels, n), on ``x`` as it is if it can.

        nn~ only ever hands an export whole latent frames, so nothing obliges an export to cope with
        a partial last frame. Most do (every acids-rave 2.3.1 export but the mel-input ``hybrid``
        config encodes it itself, differently from zero padding), and users compare with that
        result, so ``x`` goes in unchanged. Only when the export refuses that length, or returns
        fewer than ``needed`` steps along time (it dropped the end of the input), is ``x`` padded
        with zeros to whole frames and the call repeated from the same buffers and seed.
        """
        whole = self.frames_for(x.shape[-1]) * self.ratio
        self._start(seed)
        try:
            y = self._call(method, torch.from_numpy(x)[None])
        except RaveExportError:
            if whole == x.shape[-1]:
                raise  # already whole frames: padding cannot help
        else:
            if y.shape[-1] >= needed or whole == x.shape[-1]:
                return y
        padded = np.zeros((x.shape[0], whole), dtype=np.float32)
        padded[:, :x.shape[-1]] = x
        self._start(seed)
        return self._call(method, torch.from_numpy(padded)[None])

    def _audio_at_model_rate(self, audio: np.ndarray, sample_rate: Optional[int]) -> np.ndarray:
        """(channels, n) float32 at the model's rate: mono copied to every input channel, resampled."""
        x = np.asarray(audio, dtype=np.float32)
        if x.ndim == 1:
            x = x[None]
        if x.shape[0] == 1 and self.in_channels > 1:
            x = np.repeat(x, self.in_channels, axis=0)
        if x.shape[0] != self.in_channels:
            raise ValueError(f"this model takes {self.in_channels} channel(s), got {x.shape[0]}")
        if x.shape[-1] == 0:
            raise ValueError("the input is empty")
        if sample_rate is not None and sample_rate != self.sample_rate:
            x = resample(x, sample_rate, self.sample_rate)
        return np.ascontiguousarray(x)

    def _latent_in(self, latent: np.ndarray, edits: Optional[LatentEdits]) -> torch.Tensor:
        """(1, latent_size, frames) for ``decode``, edited."""
        z = np.asarray(latent, dtype=np.float32)
        if z.ndim != 2 or z.shape[0] != self.latent_size:
            raise ValueError(f"decode needs {self.latent_size} latent dimensions, got shape {z.shape}")
        if z.shape[1] == 0:
            raise ValueError("the latent arrays are empty")
        if edits:
            z = edits.apply(z)
        return torch.from_numpy(np.ascontiguousarray(z))[None]

    def _latent_out(self, z: torch.Tensor) -> np.ndarray:
        """``encode``'s result as (latent_size, frames), after checking it has the size it declares."""
        if z.shape[0] != self.latent_size:
            raise RaveExportError(f"{self.path.name}: encode gave {z.shape[0]} latent dimensions, "
                                  f"encode_params says {self.latent_size}")
        return z.numpy()

    def _audio_out(self, y: torch.Tensor, sample_rate: Optional[int]) -> np.ndarray:
        """The model's output (channels, time) at ``sample_rate`` (default: the model's)."""
        if sample_rate is not None and sample_rate != self.sample_rate:
            return resample(y.numpy(), self.sample_rate, sample_rate)
        return y.numpy()

    def encode(self, audio: np.ndarray, sample_rate: Optional[int] = None, seed: Optional[int] = None
               ) -> np.ndarray:
        """The export's ``encode`` of ``audio`` ((n,) or (channels, n) at ``sample_rate``): (latent_size, frames).

        The export gets the audio as it is (see :meth:`_call_on_audio` for the exports that need
        padding); frames = ceil(n / ratio) at the model's rate.
        """
        x = self._audio_at_model_rate(audio, sample_rate)
        return self._latent_out(self._call_on_audio("encode", x, seed, self.frames_for(x.shape[-1])))

    def decode(self, latent: np.ndarray, edits: Optional[LatentEdits] = None,
               sample_rate: Optional[int] = None, seed: Optional[int] = None) -> np.ndarray:
        """The export's ``decode`` of the edited ``latent``: audio (out_channels, frames * ratio) at
        ``sample_rate`` (default: the model's)."""
        z = self._latent_in(latent, edits)
        self._start(seed)
        return self._audio_out(self._call("decode", z)[:, :z.shape[-1] * self.ratio], sample_rate)

    def forward(self, audio: np.ndarray, sample_rate: Optional[int] = None,
                edits: Optional[LatentEdits] = None, seed: Optional[int] = None,
                progress: Optional[Progress] = None, with_latent: bool = False
                ) -> tuple[np.ndarray, Optional[np.ndarray]]:
        """Timbre transfer, as long as the input and at its rate: (audio (out_channels, n), latent).

        Without edits this is the export's own ``forward`` (after ``torch.manual_seed(seed)``), whatever
        that method does. Edits must go between encoding and decoding, so with edits (or for an export
        without ``forward``) it is the export's ``encode``, the edits, then its ``decode``, in one random
        stream and without resetting buffers in between, as RAVE's own ``forward`` runs them.
        ``latent`` (None unless ``with_latent``) holds the latents decoded; without edits they come
        from a separate ``encode`` call from the same seed, the latents ``forward`` decodes for every
        export whose ``forward`` is ``decode(encode(x))``, as all acids-rave exports are.
        """
        n = np.asarray(audio).shape[-1]
        x = self._audio_at_model_rate(audio, sample_rate)
        frames = self.frames_for(x.shape[-1])
        if edits or "forward" not in self.methods:
            z = self._latent_in(self._latent_out(self._call_on_audio("encode", x, seed, frames)), edits)
            if progress:
                progress(0.5)
            y = self._audio_out(self._call("decode", z), sample_rate)
            return y[:, :n], z[0].numpy() if with_latent else None
        latent = None
        if with_latent:
            if seed is None:  # both calls must draw the same noise
                seed = int(torch.randint(0, 2**62, ()))
            latent = self._latent_out(self._call_on_audio("encode", x, seed, frames))
            if progress:
                progress(0.5)
        y = self._audio_out(self._call_on_audio("forward", x, seed, x.shape[-1]), sample_rate)
        return y[:, :n], latent

    def sample(self, seconds: float, temperature: float = 0.0, edits: Optional[LatentEdits] = None,
               sample_rate: Optional[int] = None, seed: Optional[int] = None,
               progress: Optional[Progress] = None) -> tuple[np.ndarray, np.ndarray]:
        """New audio from the export's prior: (audio (out_channels, n), the latent decoded).

        The export's ``prior`` then its ``decode`` of the edited latents, in one random stream from
        ``torch.manual_seed(seed)``, as an nn~ patch chaining the two would run them.
        ``temperature`` is the value fed to the prior's input signal (RAVE's prior maps it through
        softplus(t)/ln 2, so 0 gives its normal temperature 1 and larger values more variety).
        """
        if self.prior_shape is None:
            raise ValueError(f"{self.path.name} has no prior: export it with `rave export --prior ...` "
                             "to sample from it")
        if not seconds > 0:
            raise ValueError("seconds must be more than 0")
        frames = self.frames_for(round(seconds * self.sample_rate))
        temp = torch.full((1, self.prior_shape.in_channels, frames), float(temperature))
        self._start(seed)
        z = self._latent_in(self._call("prior", temp).numpy(), edits)
        if progress:
            progress(0.5)
        y = self._audio_out(self._call("decode", z), sample_rate)
        return y[:, :round(seconds * (sample_rate or self.sample_rate))], z[0].numpy()
