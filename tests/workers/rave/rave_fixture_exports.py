"""Small TorchScript modules with the interface of RAVE exports, made by the tests themselves.

They follow what ``rave export`` (RAVE 2.x, via nn_tilde.Module) and RAVE v1's ``export_rave.py``
store, without needing acids-rave: buffers ``<method>_params = [in_ch, in_ratio, out_ch, out_ratio]``,
the rate as the int attribute ``sr`` (v2) or the buffer ``sampling_rate`` (v1), ``full_latent_size``
(v2) or a ``latent_size`` buffer (v1), ``get_methods()`` (v2 only), an optional ``prior``. The
"networks" are one strided convolution each way, deterministic by default, so tests can compare exactly.
A streaming variant keeps one frame of past input in a buffer named ``cache.pad`` like
cached_conv's padding, which makes its output depend on the previous call unless reset.

Options reproduce what real exports do that the bridge must follow exactly:

- ``partial_frames``: what ``encode`` does with a length that is not a whole number of frames.
  ``"cover"`` (like every acids-rave 2.3.1 export but the mel-input one) encodes the partial last
  frame itself, here by repeating the last sample, so its result differs from encoding the input
  zero-padded; ``"refuse"`` raises; ``"drop"`` (like the mel-input ``hybrid`` config) returns whole
  frames only, losing the end of the input.
- ``noise``: draw from torch's random generator like RAVE does (the encoder samples its latent, the
  decoder fills the dimensions past ``latent_size`` with noise), so only the same seed and the same
  order of draws reproduces a result.
- ``own_forward``: ``forward`` is not ``decode(encode(x))`` (it halves the output): nothing obliges
  an export's ``forward`` to be, and nn~ calls it as it is.
"""
from __future__ import annotations

import math
import warnings
from pathlib import Path
from typing import List

import numpy as np
import torch
from torch import nn


class FramePad(nn.Module):
    """Delays the signal by one frame, remembering the tail between calls (cached_conv-like)."""

    def __init__(self, channels: int, ratio: int) -> None:
        super().__init__()
        self.register_buffer("pad", torch.zeros(1, channels, ratio))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        joined = torch.cat([self.pad.expand(x.shape[0], -1, -1), x], -1)
        self.pad.copy_(joined[:1, :, -self.pad.shape[-1]:])
        return joined[..., :x.shape[-1]]


class TinyRaveCore(nn.Module):
    def __init__(self, latent_size: int, full_latent_size: int, ratio: int, channels: int,
                 out_channels: int, streaming: bool, partial_frames: str = "cover", noise: bool = False,
                 own_forward: bool = False) -> None:
        super().__init__()
        torch.manual_seed(1234)
        self.cropped = latent_size
        self.full = full_latent_size
        self.ratio = ratio
        self.streaming = streaming
        self.partial_frames = partial_frames
        self.noise = noise
        self.own_forward = own_forward
        self.cache = FramePad(channels, ratio) if streaming else nn.Identity()
        self.encoder = nn.Conv1d(channels, full_latent_size, ratio, stride=ratio)
        self.decoder = nn.ConvTranspose1d(full_latent_size, out_channels, ratio, stride=ratio)
        self.register_buffer("encode_params", torch.tensor([channels, 1, latent_size, ratio]))
        self.register_buffer("decode_params", torch.tensor([latent_size, ratio, out_channels, 1]))
        self.register_buffer("forward_params", torch.tensor([channels, 1, out_channels, 1]))

    @torch.jit.export
    def encode(self, x: torch.Tensor) -> torch.Tensor:
        rest = (self.ratio - x.shape[-1] % self.ratio) % self.ratio
        if rest and self.partial_frames == "refuse":
            raise RuntimeError("the input must be a whole number of frames")
        if rest and self.partial_frames == "cover":
            x = nn.functional.pad(x, [0, rest], mode="replicate")
        if self.streaming:
            x = self.cache(x)
        z = self.encoder(x)
        if self.noise:
            z = z + 0.1 * torch.randn_like(z)
        return z[:, :self.cropped]

    @torch.jit.export
    def decode(self, z: torch.Tensor) -> torch.Tensor:
        shape = [z.shape[0], self.full - z.shape[1], z.shape[-1]]
        rest = torch.randn(shape) if self.noise else torch.zeros(shape)
        return torch.tanh(self.decoder(torch.cat([z, rest], 1)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.decode(self.encode(x))
        return 0.5 * y if self.own_forward else y


class TinyRaveV2(TinyRaveCore):
    """``rave export`` layout: ``sr`` int attribute, ``get_methods``, optional prior."""

    def __init__(self, latent_size: int, full_latent_size: int, ratio: int, channels: int,
                 out_channels: int, streaming: bool, sr: int, prior: bool, partial_frames: str = "cover",
                 noise: bool = False, own_forward: bool = False) -> None:
        super().__init__(latent_size, full_latent_size, ratio, channels, out_channels, streaming,
                         partial_frames, noise, own_forward)
        self.sr = sr
        self.full_latent_size = full_latent_size
        self._methods = ["encode", "decode", "forward"]
        self.has_prior = prior
        if prior:
            self.register_buffer("prior_params", torch.tensor([1, ratio, latent_size, ratio]))
            self._methods.append("prior")

    @torch.jit.export
    def get_methods(self) -> List[str]:
        return self._methods

    @torch.jit.export
    def prior(self, temp: torch.Tensor) -> torch.Tensor:
        """Deterministic curves, one per dimension, scaled by (1 + temperature)."""
        t = torch.arange(temp.shape[-1], dtype=torch.float32)[None, None, :] + 1.0
        d = torch.arange(self.cropped, dtype=torch.float32)[None, :, None] + 1.0
        return torch.sin(0.1 * t * d) * (1.0 + temp.mean(1, keepdim=True))


class TinyRaveV1(TinyRaveCore):
    """``export_rave.py`` (RAVE v1) layout: ``sampling_rate`` and ``latent_size`` buffers."""

    def __init__(self, latent_size: int, full_latent_size: int, ratio: int, channels: int,
                 out_channels: int, sr: int) -> None:
        super().__init__(latent_size, full_latent_size, ratio, channels, out_channels, False)
        self.register_buffer("sampling_rate", torch.tensor(sr))
        self.register_buffer("latent_size", torch.tensor(full_latent_size))


class TinyRaveNoRate(TinyRaveCore):
    """An export that stores no sample rate anywhere."""

    def __init__(self, latent_size: int, full_latent_size: int, ratio: int) -> None:
        super().__init__(latent_size, full_latent_size, ratio, 1, 1, False)


class NotRave(nn.Module):
    """Valid TorchScript, but nothing RAVE-like about it."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * 2


def save(module: nn.Module, path: Path) -> Path:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # torch 2.13 deprecates torch.jit
        torch.jit.script(module).save(str(path))
    return path


def make_export(path: Path, style: str = "v2", latent_size: int = 4, full_latent_size: int = 8,
                ratio: int = 64, sr: int = 44100, channels: int = 1, out_channels: int = 1,
                streaming: bool = False, prior: bool = False, partial_frames: str = "cover",
                noise: bool = False, own_forward: bool = False) -> Path:
    """Write a fixture export of the given ``style`` ("v2", "v1" or "norate") to ``path``.

    ``partial_frames``, ``noise`` and ``own_forward`` (v2 style only) are explained in the module's
    docstring.
    """
    if style == "v2":
        module: nn.Module = TinyRaveV2(latent_size, full_latent_size, ratio, channels, out_channels,
                                       streaming, sr, prior, partial_frames, noise, own_forward)
    elif style == "v1":
        module = TinyRaveV1(latent_size, full_latent_size, ratio, channels, out_channels, sr)
    elif style == "norate":
        module = TinyRaveNoRate(latent_size, full_latent_size, ratio)
    else:
        raise ValueError(style)
    return save(module, path)


def exports_own(path: Path, method: str, x: np.ndarray, seed: int) -> np.ndarray:
    """The reference a result must equal: the export's own ``method`` on ``x`` ((n,) audio or
    (dims, frames) latents) after ``torch.manual_seed(seed)``, freshly loaded, as a user would call it."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        module = torch.jit.load(str(path))
    tensor = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))
    torch.manual_seed(seed)
    with torch.inference_mode():
        return getattr(module, method)(tensor[None, None] if tensor.dim() == 1 else tensor[None])[0].numpy()


def sine(seconds: float, sr: int, freq: float = 220.0) -> np.ndarray:
    """A test input: half-scale sine, float32."""
    n = int(math.ceil(seconds * sr))
    return (0.5 * np.sin(2 * np.pi * freq * np.arange(n) / sr)).astype(np.float32)
