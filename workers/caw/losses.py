"""CAW's losses: WGAN-GP for realism, and a reconstruction loss that ties the fixed noise to the clip.

The reconstruction loss is the multi-scale spectrogram loss for music (magnitudes at three STFT
resolutions, so phase is free) or the time-domain L2 loss for speech, inpainting and denoising.
"""
from __future__ import annotations

from typing import Optional, Sequence

import torch

from .config import CAWConfig
from .model import Discriminator, Interval


def spectrogram_loss(config: CAWConfig, real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
    """Mean over the resolutions of the Frobenius norm of the magnitude difference."""
    losses = []
    for n_fft, hop, win in zip(config.mss_n_fft, config.mss_hop, config.mss_window):
        window = torch.hann_window(win, device=real.device, dtype=real.dtype)
        spec_real = torch.stft(real.reshape(1, -1), n_fft, hop, win, window, return_complex=True).abs()
        spec_fake = torch.stft(fake.reshape(1, -1), n_fft, hop, win, window, return_complex=True).abs()
        losses.append((spec_real - spec_fake).pow(2).sum().sqrt())
    return sum(losses) / len(losses)


def reconstruction_loss(config: CAWConfig, real: torch.Tensor, rec: torch.Tensor,
                        valid: Optional[torch.Tensor]) -> torch.Tensor:
    loss = real.new_zeros(())
    if config.alpha1 > 0:
        diff = (real - rec) if valid is None else (real - rec)[..., valid]
        loss = loss + config.alpha1 * diff.pow(2).mean()
    if config.alpha2 > 0:
        loss = loss + config.alpha2 * spectrogram_loss(config, real, rec)
    return loss


def gradient_penalty(config: CAWConfig, netD: Discriminator, real: torch.Tensor, fake: torch.Tensor,
                     alpha: torch.Tensor, holes: Sequence[Interval] = ()) -> torch.Tensor:
    """WGAN-GP (Gulrajani et al. 2017) at one mix ``alpha * real + (1 - alpha) * fake`` per step.

    As published, the gradient's norm is taken over the channel axis, which has one channel: the
    penalty is ``lambda * mean((|dD/dx_t| - 1)^2)`` over the positions t. With holes, only the scores
    outside them count, and the gradient is scaled by (all scores / counted scores).
    """
    mix = (alpha * real + (1 - alpha) * fake).requires_grad_(True)
    scores = netD(mix, holes)
    grad, = torch.autograd.grad(scores.sum(), mix, create_graph=True)
    ratio = 1.0
    if holes:
        total = mix.shape[-1] - sum(netD.shrink)
        ratio = total / scores.shape[-1]
    return config.lambda_grad * ((ratio * grad.abs() - 1) ** 2).mean()
