"""Small DDSP models made here with ddsp's own code, in the layouts ddsp writes.

No DDSP weights can be downloaded, so the tests, ``make demo`` and the benchmark make their own:

* :func:`train_tiny` trains a small DDSP-VST-style model (ddsp's ``models/vst/vst.gin`` with
  narrower layers) for a few hundred steps on a synthetic harmonic tone, through
  ``train_util.train`` and ``trainers.Trainer`` as ``ddsp_run --mode=train`` does, so the folder
  holds ``operative_config-0.gin``, ``ckpt-N.*`` every ``steps_per_save`` steps and the
  ``checkpoint`` index, exactly as a student's training run leaves it.
* :func:`write_random` writes a full-size model (e.g. ``models/solo_instrument.gin``) with random
  weights after one forward pass, in the same layout: the real size for loading and timing.

Run ``python -m workers.ddsp.training DIR [--steps N]`` to train the tiny model into DIR.
"""
from __future__ import annotations

import argparse
import logging
import os
from pathlib import Path
from typing import Iterable, Optional

import numpy as np

from . import crepe_module

crepe_module.install()

import gin  # noqa: E402
import tensorflow as tf  # noqa: E402
import ddsp.training  # noqa: E402
from ddsp.training import data, train_util, trainers  # noqa: E402

GIN_DIR = Path(ddsp.training.__file__).parent / "gin"
SAMPLE_RATE = 16000
TINY_SECONDS = 1.0
TINY_BINDINGS = (
    # ddsp's DDSP-VST training config, made small enough to train on a CPU in seconds
    "RnnFcDecoder.rnn_channels = 64",
    "RnnFcDecoder.ch = 32",
    "n_samples = 16320",  # 1 s examples at frame rate 50, plus the extra frame vst.gin pads with
    "FilteredNoiseReverb.reverb_length = 4000",
    "FilteredNoiseReverb.n_frames = 40",
    "Trainer.learning_rate = 0.003",
)


def synthetic_tone(f0_hz: np.ndarray, loudness: np.ndarray, frame_rate: int, seed: int,
                   sample_rate: int = SAMPLE_RATE, harmonics: int = 12) -> np.ndarray:
    """A harmonic tone (1/k partials) following ``f0_hz`` and the 0..1 envelope ``loudness``,
    both given per frame, with a little noise: the kind of sound a DDSP model learns from."""
    hop = sample_rate // frame_rate
    n = (len(f0_hz) - 1) * hop
    frames = np.arange(len(f0_hz)) * hop
    f0 = np.interp(np.arange(n), frames, f0_hz)
    env = np.interp(np.arange(n), frames, loudness)
    phase = 2 * np.pi * np.cumsum(f0) / sample_rate
    audio = np.zeros(n)
    for k in range(1, harmonics + 1):
        audio += np.where(k * f0 < sample_rate / 2, np.sin(k * phase) / k, 0.0)
    rng = np.random.default_rng(seed)
    return (0.3 * env * audio + 0.003 * env * rng.standard_normal(n)).astype(np.float32)


class ToneProvider(data.DataProvider):
    """Examples of :func:`synthetic_tone` with their exact f0 (the features ddsp_prepare_tfrecord
    would store: audio, f0_hz, f0_confidence, loudness_db)."""

    def __init__(self, count: int = 32, seconds: float = TINY_SECONDS, frame_rate: int = 50, seed: int = 0) -> None:
        super().__init__(SAMPLE_RATE, frame_rate)
        rng = np.random.default_rng(seed)
        n_frames = int(seconds * frame_rate) + 1
        self.examples: dict[str, list[np.ndarray]] = {"audio": [], "f0_hz": [], "f0_confidence": [],
                                                      "loudness_db": []}
        for i in range(count):
            start, end = rng.uniform(150, 600, size=2)
            f0 = np.geomspace(start, end, n_frames) * (1 + 0.01 * np.sin(np.linspace(0, 12, n_frames)))
            env = np.clip(np.sin(np.linspace(0, np.pi, n_frames)) * rng.uniform(0.1, 1.0) * 1.5, 0, 1)
            audio = synthetic_tone(f0, env, frame_rate, seed=i)
            audio = np.pad(audio, (0, int(seconds * SAMPLE_RATE) - len(audio)))
            self.examples["audio"].append(audio)
            self.examples["f0_hz"].append(f0.astype(np.float32))
            self.examples["f0_confidence"].append(np.ones(n_frames, np.float32))
            self.examples["loudness_db"].append(ddsp.spectral_ops.compute_loudness(
                audio, SAMPLE_RATE, frame_rate, use_tf=False).astype(np.float32)[:n_frames])

    def get_dataset(self, shuffle: bool = True) -> tf.data.Dataset:
        ds = tf.data.Dataset.from_tensor_slices({k: np.stack(v) for k, v in self.examples.items()})
        return ds.shuffle(len(self.examples["audio"])) if shuffle else ds


def parse_config(gin_files: Iterable[str], bindings: Iterable[str] = ()) -> None:
    """Start from a clean gin config with ddsp's config folder on the search path, as ddsp_run does."""
    gin.clear_config()
    gin.add_config_file_search_path(str(GIN_DIR))
    with gin.unlock_config():
        gin.parse_config_files_and_bindings(list(gin_files), list(bindings))


def _untracked_losses(model: "ddsp.training.models.Model") -> "ddsp.training.models.Model":
    """Keep the model's loss dict a plain dict, so the training step can return it.

    Keras wraps dict attributes in a tracking ``_DictWrapper``; TensorFlow 2.15 checks a value a
    ``tf.function`` returns against a typing Protocol, and typing_extensions >= 4.6 (which IPython,
    imported by ddsp's dependencies, needs) cannot inspect a ``_DictWrapper``: the first training
    step fails with "this __dict__ descriptor does not support '_DictWrapper' objects". ddsp's
    Model assigns a fresh dict on every call; it holds only that step's loss values, never
    variables, so we stop the model (not its layers) from tracking new attributes.
    """
    model._setattr_tracking = False
    return model


def train_tiny(save_dir: Path, steps: int = 200, steps_per_save: int = 100, seed: int = 0,
               batch_size: int = 4) -> Path:
    """Train the tiny DDSP-VST-style model into ``save_dir`` (ddsp_run's layout); returns it."""
    tf.random.set_seed(seed)
    np.random.seed(seed)
    parse_config(["models/vst/vst.gin"], TINY_BINDINGS)
    strategy = train_util.get_strategy()
    with strategy.scope():
        model = _untracked_losses(ddsp.training.models.get_model())
        trainer = trainers.get_trainer_class()(model, strategy)
    save_dir.mkdir(parents=True, exist_ok=True)
    logging.getLogger().setLevel(logging.WARNING)
    train_util.train(ToneProvider(seed=seed), trainer, batch_size=batch_size, num_steps=steps,
                     steps_per_summary=steps, steps_per_save=steps_per_save, save_dir=str(save_dir),
                     restore_dir=str(save_dir))
    return save_dir


def write_random(save_dir: Path, gin_file: str = "models/solo_instrument.gin", seed: int = 0,
                 bindings: Iterable[str] = ()) -> Path:
    """A model of ``gin_file``'s full size with random weights, saved as ddsp_run saves (step 0)."""
    tf.random.set_seed(seed)
    parse_config([gin_file], bindings)
    strategy = train_util.get_strategy()
    with strategy.scope():
        model = ddsp.training.models.get_model()
        trainer = trainers.get_trainer_class()(model, strategy)
    n_samples = gin.query_parameter("Harmonic.n_samples")
    n_frames = gin.query_parameter("F0LoudnessPreprocessor.time_steps")
    batch = {"audio": tf.zeros([1, n_samples]), "f0_hz": tf.fill([1, n_frames], 220.0),
             "f0_confidence": tf.ones([1, n_frames]), "loudness_db": tf.fill([1, n_frames], -30.0)}
    trainer.build(batch)
    save_dir.mkdir(parents=True, exist_ok=True)
    train_util.write_gin_config(tf.summary.create_noop_writer(), str(save_dir), 0)
    trainer.save(str(save_dir))
    return save_dir


def main(argv: Optional[list[str]] = None) -> None:
    parser = argparse.ArgumentParser(description="train the tiny DDSP test model (ddsp_run layout)")
    parser.add_argument("save_dir", type=Path)
    parser.add_argument("--steps", type=int, default=200)
    args = parser.parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    train_tiny(args.save_dir, steps=args.steps)


if __name__ == "__main__":
    main()
