"""MelodyRNN models as magenta 2.1.4 runs them, and the answer one gives to a phrase.

A model is magenta's own ``MelodyRnnSequenceGenerator``, loaded from a ``.mag`` generator bundle
(the config is the bundle's generator id, as ``melody_rnn_generate --bundle_file`` reads it) or from
a ``melody_rnn_train`` run folder (newest checkpoint, config named by the user, as
``melody_rnn_generate --run_dir --config`` needs it). An answer is what that generator returns for
the phrase as primer, minus the primer: notes timed from the answer's first step.
"""
from __future__ import annotations

import contextlib
import copy
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator, Optional

import numpy as np
import tensorflow.compat.v1 as tf
from google.protobuf.message import DecodeError
from magenta.models.melody_rnn import melody_rnn_model, melody_rnn_sequence_generator
from magenta.models.shared import sequence_generator_bundle
from magenta.pipelines import melody_pipelines
import note_seq
from note_seq.protobuf import generator_pb2

from . import phrase

tf.disable_v2_behavior()
tf.logging.set_verbosity(tf.logging.ERROR)

log = logging.getLogger("pdbridge.melody_rnn")

CONFIGS = tuple(melody_rnn_model.default_configs)
"""basic_rnn, mono_rnn, lookback_rnn, attention_rnn."""
GENERATION_BATCH = 1
"""Batch size of the graph built for a run folder (and of the bundles made here): one answer at a
time, beam search running its branches one after another; the configs' 128 (a training batch)
would compute 127 padding copies of every step."""


class ModelError(Exception):
    """A file that is not a MelodyRNN model, or a config that does not fit it (text for the student)."""


@dataclass(frozen=True)
class Answer:
    """The generated continuation of a phrase, without the phrase."""

    notes: tuple[tuple[float, int, int, float], ...]
    """(onset s from the answer's first step, pitch, velocity, duration s), in time order."""
    steps: int
    qpm: float
    steps_per_quarter: int
    transposed: tuple[tuple[int, int], ...] = ()
    """(played, heard) for each phrase pitch the model heard moved by octaves (see :func:`heard_as`)."""
    model_ms: float = field(default=0.0, compare=False)
    """How long magenta's generator took: what a faster machine or a smaller beam would shorten."""

    @property
    def seconds(self) -> float:
        return self.steps * 60.0 / (self.qpm * self.steps_per_quarter)

    def sequence(self) -> note_seq.NoteSequence:
        """The answer alone as a NoteSequence from time 0, at its tempo."""
        sequence = note_seq.NoteSequence(ticks_per_quarter=note_seq.STANDARD_PPQ, total_time=self.seconds)
        sequence.tempos.add(qpm=self.qpm)
        for onset, pitch, velocity, duration in self.notes:
            sequence.notes.add(pitch=pitch, velocity=velocity, start_time=onset, end_time=onset + duration)
        return sequence

    def write_midi(self, path: Path) -> None:
        note_seq.sequence_proto_to_midi_file(self.sequence(), str(path))


class _SteppedModel(melody_rnn_model.MelodyRnnModel):
    """magenta's MelodyRnnModel, calling ``on_step`` before each generated step: a long answer can
    then be cancelled between two steps (``on_step`` raises) instead of running to its end."""

    on_step: Optional[Callable[[], None]] = None

    def _generate_step(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        if self.on_step is not None:
            self.on_step()
        return super()._generate_step(*args, **kwargs)


class MelodyModel:
    """One loaded generator: its config, where it came from, and :meth:`answer`."""

    def __init__(self, generator: melody_rnn_sequence_generator.MelodyRnnSequenceGenerator,
                 model: _SteppedModel, config: melody_rnn_model.MelodyRnnConfig, source: Path, description: str,
                 nbytes: int) -> None:
        self.generator = generator
        self._model = model
        self.config = config
        self.source = source
        self.description = description
        self.nbytes = nbytes
        """Size of the weights, for the worker's cache."""

    # -- loading ---------------------------------------------------------------------------------
    @classmethod
    def load(cls, path: Path, config_name: Optional[str] = None, hparams: str = "") -> "MelodyModel":
        """A ``.mag`` bundle (its generator id says the config) or a ``melody_rnn_train`` run folder
        (its newest checkpoint in ``train/``; ``config_name`` and ``hparams`` as it was trained)."""
        if path.is_dir():
            if config_name is None:
                raise ModelError(f"{path} is a training run folder: say which config it was trained with, "
                                 f"e.g. --config attention_rnn (one of {', '.join(CONFIGS)})")
            return cls._from_run(path, config_name, hparams)
        if config_name is not None or hparams:
            raise ModelError(f"{path.name} is a bundle: its config and hyperparameters are inside it, so "
                             "--config and --hparams are only for training run folders")
        return cls._from_bundle(path)

    @classmethod
    def _from_bundle(cls, path: Path) -> "MelodyModel":
        try:
            bundle = sequence_generator_bundle.read_bundle_file(str(path))
        except (sequence_generator_bundle.GeneratorBundleParseError, DecodeError) as exc:
            raise ModelError(f"{path} is not a magenta generator bundle (.mag): {exc}") from exc
        generator_id = bundle.generator_details.id
        if generator_id not in CONFIGS:
            raise ModelError(f"{path.name} holds a '{generator_id or 'unnamed'}' generator, not a MelodyRNN one "
                             f"({', '.join(CONFIGS)})")
        config = config_for(generator_id, "")
        description = bundle.bundle_details.description or bundle.generator_details.description
        return cls._start(config, path, description, len(bundle.checkpoint_file[0]), bundle=bundle)

    @classmethod
    def _from_run(cls, path: Path, config_name: str, hparams: str) -> "MelodyModel":
        if config_name not in CONFIGS:
            raise ModelError(f"unknown config '{config_name}' (one of {', '.join(CONFIGS)})")
        train_dir = path / "train" if (path / "train").is_dir() else path
        checkpoint = tf.train.latest_checkpoint(str(train_dir))
        if checkpoint is None:
            raise ModelError(f"no checkpoint in {train_dir} (melody_rnn_train writes <run_dir>/train/model.ckpt-N)")
        config = config_for(config_name, hparams)
        config.hparams.batch_size = GENERATION_BATCH
        nbytes = sum(f.stat().st_size for f in Path(checkpoint).parent.glob(Path(checkpoint).name + ".data-*"))
        description = f"{config_name} trained in {path.name} ({Path(checkpoint).name})"
        return cls._start(config, path, description, nbytes, checkpoint=checkpoint)

    @classmethod
    def _start(cls, config: melody_rnn_model.MelodyRnnConfig, source: Path, description: str, nbytes: int,
               **where: object) -> "MelodyModel":
        model = _SteppedModel(config)
        generator = melody_rnn_sequence_generator.MelodyRnnSequenceGenerator(
            model=model, details=config.details, steps_per_quarter=config.steps_per_quarter, **where)
        try:
            generator.initialize()
        except (tf.errors.NotFoundError, tf.errors.InvalidArgumentError, ValueError) as exc:
            log.info("restoring %s failed: %s", source, exc)
            shape = ", ".join(f"{k}={config.hparams.values()[k]}" for k in ("rnn_layer_sizes", "attn_length"))
            raise ModelError(f"{source.name} does not fit the {config.details.id} config ({shape}): give the "
                             "--config and --hparams it was trained with, e.g. --hparams rnn_layer_sizes=[64\\,64]"
                             ) from exc
        loaded = cls(generator, model, config, source, description, nbytes)
        loaded.answer(phrase.primer((), phrase.DEFAULT_QPM), 2)  # TensorFlow's first run is slow: not the first answer
        return loaded

    def close(self) -> None:
        self.generator.close()

    # -- what it is ------------------------------------------------------------------------------
    @property
    def config_name(self) -> str:
        return self.config.details.id

    @property
    def min_pitch(self) -> int:
        return self.config.min_note

    @property
    def max_pitch(self) -> int:
        """The highest pitch the model hears and plays (magenta's ``max_note`` is exclusive)."""
        return self.config.max_note - 1

    @property
    def steps_per_quarter(self) -> int:
        return self.config.steps_per_quarter

    def steps_in(self, seconds: float, qpm: float) -> int:
        """Whole steps in ``seconds`` at ``qpm`` (rounded down, as magenta ends a generated section)."""
        return int(seconds * _steps_per_second(self.steps_per_quarter, qpm) + 1e-9)

    # -- answering -------------------------------------------------------------------------------
    def answer(self, primer: note_seq.NoteSequence, steps: int, temperature: float = 1.0, beam_size: int = 1,
               branch_factor: int = 1, seed: Optional[int] = None,
               on_step: Optional[Callable[[], None]] = None) -> Answer:
        """``steps`` steps generated after ``primer`` by magenta's generator, starting one step after
        the primer's last note ends (as the course and AI Duet do).

        ``seed``: numpy's random state (magenta samples each step with ``np.random.choice``), so the
        same seed gives the same answer; None draws a fresh one. ``on_step`` is called before each
        generated step and may raise to stop.
        """
        qpm = primer.tempos[0].qpm
        sps = _steps_per_second(self.steps_per_quarter, qpm)
        quantized = note_seq.quantize_note_sequence(primer, self.steps_per_quarter)
        start = answer_start(quantized)
        options = generation_options(start, steps, sps, temperature, beam_size, branch_factor)
        np.random.seed(seed)
        with self._stepping(on_step):
            began = time.perf_counter()
            generated = self.generator.generate(primer, options)
            model_ms = 1000 * (time.perf_counter() - began)
        origin = start / sps
        notes = tuple((max(0.0, n.start_time - origin), n.pitch, n.velocity, n.end_time - n.start_time)
                      for n in sorted(generated.notes, key=lambda n: (n.start_time, n.pitch))
                      if n.start_time >= origin - 1e-6)
        return Answer(notes, steps, qpm, self.steps_per_quarter, heard_as(quantized, self.config), model_ms)

    @contextlib.contextmanager
    def _stepping(self, on_step: Optional[Callable[[], None]]) -> Iterator[None]:
        self._model.on_step = on_step
        try:
            yield
        finally:
            self._model.on_step = None


def answer_start(quantized: note_seq.NoteSequence) -> int:
    """The step an answer starts at: one after the step where the (quantized) phrase's last note ends."""
    return max((n.quantized_end_step for n in quantized.notes), default=0) + 1


def generation_options(start_step: int, steps: int, steps_per_second: float, temperature: float = 1.0,
                       beam_size: int = 1, branch_factor: int = 1) -> generator_pb2.GeneratorOptions:
    """GeneratorOptions for steps ``start_step`` .. ``start_step + steps`` (exclusive).

    Times are given half a step inside the section: magenta turns the start into a step with
    ``int(t * sps + 1)`` and the end with ``int(t * sps)``, which a time exactly on a step edge
    would put on either side depending on float rounding.
    """
    options = generator_pb2.GeneratorOptions()
    options.args["temperature"].float_value = temperature
    options.args["beam_size"].int_value = beam_size
    options.args["branch_factor"].int_value = branch_factor
    options.generate_sections.add(start_time=(start_step - 0.5) / steps_per_second,
                                  end_time=(start_step + steps + 0.5) / steps_per_second)
    return options


def heard_as(quantized: note_seq.NoteSequence, config: melody_rnn_model.MelodyRnnConfig) -> tuple[tuple[int, int], ...]:
    """Phrase pitches the model hears moved by octaves, as (played, heard) pairs.

    magenta moves the whole primer into the config's range (``Melody.squash``: to C, centred; the
    answer is moved back) and then folds by octaves, silently, every note still outside it: a
    phrase spanning more than the range. This runs magenta's own melody extraction and squash on a
    copy to say which notes that was; "heard" is in the phrase's own key and register.
    """
    melodies, _ = melody_pipelines.extract_melodies(
        quantized, search_start_step=0, min_bars=0, min_unique_pitches=1, gap_bars=float("inf"),
        ignore_polyphonic_notes=True)
    if not melodies or not len(melodies[0]):
        return ()
    melody = melodies[0]
    played = list(melody)
    shift = melody.squash(config.min_note, config.max_note, config.transpose_to_key)
    pairs = {(p, h - shift) for p, h in zip(played, melody) if p >= 0 and h - shift != p}
    return tuple(sorted(pairs))


def config_for(name: str, hparams: str) -> melody_rnn_model.MelodyRnnConfig:
    """A private copy of magenta's default config (its module-level ones are shared and mutable)."""
    config = copy.deepcopy(melody_rnn_model.default_configs[name])
    try:
        config.hparams.parse(hparams)
    except ValueError as exc:
        raise ModelError(f"--hparams {hparams}: {exc} (write name=value pairs, e.g. "
                         "batch_size=64\\,rnn_layer_sizes=[64\\,64])") from exc
    return config


def _steps_per_second(steps_per_quarter: int, qpm: float) -> float:
    return note_seq.steps_per_quarter_to_steps_per_second(steps_per_quarter, qpm)
