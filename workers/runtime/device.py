"""Choosing where a model runs: ``--device auto|cpu|cuda``.

The runtime itself imports no ML framework; each worker passes a probe that asks its own
framework whether a GPU is usable, so ``auto`` means "the GPU when this environment can use one".
"""
from __future__ import annotations

from typing import Callable, Optional

DEVICES = ("auto", "cpu", "cuda")


def choose_device(requested: str, cuda_available: Optional[Callable[[], bool]]) -> str:
    """Resolve ``requested`` to "cpu" or "cuda"; asking for cuda without a GPU is an error."""
    if requested not in DEVICES:
        raise ValueError(f"--device must be one of {', '.join(DEVICES)}, got {requested!r}")
    has_cuda = bool(cuda_available and cuda_available())
    if requested == "cuda" and not has_cuda:
        raise RuntimeError("--device cuda was asked for, but no CUDA GPU is usable in this environment")
    if requested == "auto":
        return "cuda" if has_cuda else "cpu"
    return requested


def torch_cuda_available() -> bool:
    """Probe for torch-based workers (imported lazily: the runtime must not need torch)."""
    import torch

    return bool(torch.cuda.is_available())


def tensorflow_gpu_available() -> bool:
    """Probe for TensorFlow-based workers."""
    import tensorflow as tf

    return bool(tf.config.list_physical_devices("GPU"))
