"""CAW's networks: per scale a generator and a discriminator of dilated 1-D convolutions.

Both are stacks of ``num_layers`` weight-normalised convolutions (filter 9, dilations 1, 2, ... 128,
no padding), each but the last followed by BatchNorm and LeakyReLU(0.2). The generator ends in a
gated unit (tanh(conv) * sigmoid(conv), both padded to keep the length), a 1x1 convolution to one
channel and a pre-emphasis filter, and adds its result to the previous scale's (upsampled) signal:
it learns the detail a scale adds. Its input is the noise plus that signal, zero-padded by
:attr:`CAWConfig.pad` on each side so the output is as long as the signal. The discriminator ends
in a convolution to one channel and the same pre-emphasis, giving one score per position.

For inference (and for drawing the coarser scales' signals during training) a trained generator
becomes a :class:`FrozenGenerator`: weight norm and BatchNorm folded into plain convolution weights.
"""
from __future__ import annotations

import math
from typing import Any, Optional, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from .config import CAWConfig

PRE_EMPHASIS = 0.97
LEAKY_SLOPE = 0.2
BN_EPS = 1e-5
BN_MOMENTUM = 0.1

Interval = tuple[int, int]
"""An inclusive (first, last) range of positions (inpainting holes)."""


def pre_emphasis(x: torch.Tensor) -> torch.Tensor:
    """``y[0] = x[0]``, ``y[t] = x[t] - 0.97 x[t-1]`` along the last axis: tilts the output's
    spectrum towards high frequencies, so the networks need not produce them with large weights."""
    return torch.cat((x[..., :1], x[..., 1:] - PRE_EMPHASIS * x[..., :-1]), dim=-1)


class WNConv1d(nn.Module):
    """A 1-D convolution with weight normalisation, ``w = g * v / |v|`` per output channel
    (Salimans & Kingma 2016): the direction and the length of each filter are learnt apart."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, dilation: int = 1,
                 padding: int = 0) -> None:
        super().__init__()
        self.dilation, self.padding = dilation, padding
        v = torch.empty(out_channels, in_channels, kernel_size)
        nn.init.kaiming_uniform_(v, a=math.sqrt(5))  # torch's Conv1d default, as the published models had
        bound = 1 / math.sqrt(in_channels * kernel_size)
        self.weight_v = nn.Parameter(v)
        self.weight_g = nn.Parameter(v.norm(dim=(1, 2), keepdim=True))
        self.bias = nn.Parameter(torch.empty(out_channels).uniform_(-bound, bound))

    def weight(self) -> torch.Tensor:
        return self.weight_g * self.weight_v / self.weight_v.norm(dim=(1, 2), keepdim=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.weight_v.shape[-1] == 1 or x.is_cuda:  # cuDNN's own gradients are fast
            return F.conv1d(x, self.weight(), self.bias, padding=self.padding, dilation=self.dilation)
        return DilatedConv.apply(x, self.weight(), self.bias, self.dilation, self.padding)


class DilatedConv(torch.autograd.Function):
    """``F.conv1d`` with a faster gradient for its input.

    Training spends much of its time in the convolutions' backward pass, and on CPUs the library's
    input gradient of a dilated 1-D convolution is 2-3x slower than the same sum written as one
    matrix product per filter tap (``dx[t + k d] += W_k^T dy[t]``). That form is used for ordinary
    backward passes; when the backward pass is itself differentiated (the gradient penalty) the
    library's differentiable operation is used. Results equal ``F.conv1d``'s up to rounding.
    """

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor, dilation: int,
                padding: int) -> torch.Tensor:
        ctx.save_for_backward(x, weight)
        ctx.dilation, ctx.padding = dilation, padding
        return F.conv1d(x, weight, bias, padding=padding, dilation=dilation)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[Optional[torch.Tensor], ...]:
        x, weight = ctx.saved_tensors
        d, p = ctx.dilation, ctx.padding
        want_x, want_w, want_b = ctx.needs_input_grad[:3]
        if torch.is_grad_enabled():  # create_graph: stay differentiable
            gx, gw, gb = torch.ops.aten.convolution_backward(
                grad, x, weight, [weight.shape[0]], [1], [p], [d], False, [0], 1, [want_x, want_w, want_b])
            return gx, gw, gb, None, None
        gx = None
        if want_x:
            gx = grad.new_zeros(x.shape[0], x.shape[1], x.shape[2] + 2 * p)
            m = grad.shape[-1]
            taps = weight.permute(2, 1, 0)  # (k, in, out)
            for b in range(x.shape[0]):
                for k in range(weight.shape[-1]):
                    gx[b, :, k * d:k * d + m].addmm_(taps[k], grad[b])
            gx = gx[..., p:gx.shape[-1] - p] if p else gx
        gw = gb = None
        if want_w or want_b:
            _, gw, gb = torch.ops.aten.convolution_backward(
                grad, x, weight, [weight.shape[0]], [1], [p], [d], False, [0], 1, [False, want_w, want_b])
        return gx, gw, gb, None, None


class ConvBlock(nn.Module):
    """Convolution, BatchNorm, LeakyReLU(0.2). BatchNorm's scale starts near 1 (N(1, 0.02))."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, dilation: int) -> None:
        super().__init__()
        self.conv = WNConv1d(in_channels, out_channels, kernel_size, dilation)
        self.norm = nn.BatchNorm1d(out_channels, eps=BN_EPS, momentum=BN_MOMENTUM)
        with torch.no_grad():
            self.norm.weight.normal_(1.0, 0.02)
            self.norm.bias.zero_()

    def forward(self, x: torch.Tensor, valid: Optional[torch.Tensor] = None) -> torch.Tensor:
        y = self.conv(x)
        y = self.norm(y) if valid is None else masked_batch_norm(y, self.norm, valid)
        return F.leaky_relu(y, LEAKY_SLOPE)


def masked_batch_norm(y: torch.Tensor, norm: nn.BatchNorm1d, valid: torch.Tensor) -> torch.Tensor:
    """BatchNorm (training mode) whose statistics come only from the positions where ``valid`` is
    true: in inpainting, the positions a hole reaches must not shape the discriminator."""
    kept = y[..., valid]
    mean = kept.mean(dim=(0, 2))
    var = kept.var(dim=(0, 2), unbiased=False)
    if norm.training and norm.running_mean is not None and norm.running_var is not None:
        with torch.no_grad():
            count = kept.shape[0] * kept.shape[2]
            norm.running_mean.lerp_(mean, BN_MOMENTUM)
            norm.running_var.lerp_(var * count / max(count - 1, 1), BN_MOMENTUM)
            norm.num_batches_tracked += 1
    scale = norm.weight * torch.rsqrt(var + norm.eps)
    return (y - mean[:, None]) * scale[:, None] + norm.bias[:, None]


class Generator(nn.Module):
    """One scale's generator; ``forward(noise + prev, prev)`` with both zero-padded by ``pad``."""

    def __init__(self, channels: int, filter_size: int, dilations: Sequence[int]) -> None:
        super().__init__()
        k = filter_size
        self.head = ConvBlock(1, channels, k, dilations[0])
        self.body = nn.ModuleList(ConvBlock(channels, channels, k, d) for d in dilations[1:-1])
        self.tail = WNConv1d(channels, channels, k, dilations[-1])
        self.filter = WNConv1d(channels, channels, k, padding=(k - 1) // 2)
        self.gate = WNConv1d(channels, channels, k, padding=(k - 1) // 2)
        self.out = WNConv1d(channels, 1, 1)

    @classmethod
    def for_scale(cls, config: CAWConfig, scale: int) -> "Generator":
        return cls(config.channels(scale), config.filter_size, config.dilations)

    def forward(self, x: torch.Tensor, prev: torch.Tensor) -> torch.Tensor:
        h = self.head(x)
        for block in self.body:
            h = block(h)
        h = self.tail(h)
        h = torch.tanh(self.filter(h)) * torch.sigmoid(self.gate(h))
        return pre_emphasis(self.out(h)) + center_crop(prev, x.shape[-1] - h.shape[-1])


def center_crop(x: torch.Tensor, total: int) -> torch.Tensor:
    """``x`` without ``total // 2`` samples at each end."""
    cut = total // 2
    return x[..., cut:x.shape[-1] - cut]


class Discriminator(nn.Module):
    """One scale's discriminator: a score for every position the signal fully covers
    (``length - receptive_field + 1`` of them)."""

    def __init__(self, channels: int, filter_size: int, dilations: Sequence[int]) -> None:
        super().__init__()
        k = filter_size
        self.head = ConvBlock(1, channels, k, dilations[0])
        self.body = nn.ModuleList(ConvBlock(channels, channels, k, d) for d in dilations[1:-1])
        self.tail = WNConv1d(channels, 1, k, dilations[-1])
        self.shrink = [(k - 1) * d for d in dilations]

    @classmethod
    def for_scale(cls, config: CAWConfig, scale: int) -> "Discriminator":
        return cls(config.channels(scale), config.filter_size, config.dilations)

    def forward(self, x: torch.Tensor, holes: Sequence[Interval] = ()) -> torch.Tensor:
        """Scores; with ``holes`` (inpainting, in input positions) BatchNorm ignores what the holes
        reach, and only the scores the holes do not reach are returned."""
        if not holes:
            h = self.head(x)
            for block in self.body:
                h = block(h)
            return pre_emphasis(self.tail(h))
        masks = self.valid_masks(x.shape[-1], holes, x.device)
        h = self.head(x, masks[0])
        for block, valid in zip(self.body, masks[1:]):
            h = block(h, valid)
        return pre_emphasis(self.tail(h))[..., masks[-1]]

    def valid_masks(self, length: int, holes: Sequence[Interval], device: torch.device) -> list[torch.Tensor]:
        """Per layer, the output positions no hole reaches (the last also after pre-emphasis, which
        looks one sample back)."""
        masks, spans = [], list(holes)
        for i, shrink in enumerate(self.shrink):
            length -= shrink
            spans = [(a - shrink, b + (1 if i == len(self.shrink) - 1 else 0)) for a, b in spans]
            valid = torch.ones(length, dtype=torch.bool, device=device)
            for a, b in spans:
                valid[max(a, 0):max(b + 1, 0)] = False
            masks.append(valid)
        return masks


class FrozenGenerator:
    """A trained generator for inference: weight norm and BatchNorm (with its running statistics)
    folded into each convolution, no autograd. Same results as ``Generator.eval()`` up to rounding."""

    def __init__(self, g: Generator) -> None:
        with torch.no_grad():
            self.blocks = [_fold(b) for b in (g.head, *g.body)]
            self.tail = (g.tail.weight().detach().clone(), g.tail.bias.detach().clone(), g.tail.dilation)
            self.filter = (g.filter.weight().detach().clone(), g.filter.bias.detach().clone())
            self.gate = (g.gate.weight().detach().clone(), g.gate.bias.detach().clone())
            self.out = (g.out.weight().detach().clone(), g.out.bias.detach().clone())
        self.pad = (self.filter[0].shape[-1] - 1) // 2

    def to(self, device: torch.device | str) -> "FrozenGenerator":
        self.blocks = [(w.to(device), b.to(device), d) for w, b, d in self.blocks]
        self.tail = (self.tail[0].to(device), self.tail[1].to(device), self.tail[2])
        self.filter, self.gate, self.out = [(w.to(device), b.to(device)) for w, b in (self.filter, self.gate, self.out)]
        return self

    def __call__(self, x: torch.Tensor, prev: torch.Tensor) -> torch.Tensor:
        with torch.inference_mode():
            h = x
            for w, b, d in self.blocks:
                h = F.leaky_relu_(F.conv1d(h, w, b, dilation=d), LEAKY_SLOPE)
            h = F.conv1d(h, self.tail[0], self.tail[1], dilation=self.tail[2])
            gated = torch.tanh_(F.conv1d(h, *self.filter, padding=self.pad))
            gated.mul_(torch.sigmoid_(F.conv1d(h, *self.gate, padding=self.pad)))
            return pre_emphasis(F.conv1d(gated, *self.out)) + center_crop(prev, x.shape[-1] - gated.shape[-1])


def _fold(block: ConvBlock) -> tuple[torch.Tensor, torch.Tensor, int]:
    """Weights and bias of one convolution equal to conv followed by BatchNorm in eval mode."""
    norm = block.norm
    assert norm.running_mean is not None and norm.running_var is not None
    scale = norm.weight * torch.rsqrt(norm.running_var + norm.eps)
    weight = block.conv.weight() * scale[:, None, None]
    bias = (block.conv.bias - norm.running_mean) * scale + norm.bias
    return weight.detach().clone(), bias.detach().clone(), block.conv.dilation
