"""MelodyRNN bundles and training runs made by magenta 2.1.4's own code (tests, demo, benchmark).

No trained MelodyRNN can be downloaded here, so models are made the ways magenta makes them:

- :func:`random_bundle`: the generation graph of a config (``events_rnn_graph``) with its initial
  random weights, saved as a checkpoint;
- :func:`train_run`: a few steps of ``melody_rnn_train``'s loop (``events_rnn_train.run_training``)
  on melodies turned into SequenceExamples by ``melody_rnn_create_dataset``'s pipeline, into a run
  folder laid out as ``melody_rnn_train --run_dir`` lays it out;

and either becomes a ``.mag`` file through :func:`bundle_from_checkpoint`: magenta's
``create_bundle_file``, what ``melody_rnn_generate --save_generator_bundle`` runs.
"""
from __future__ import annotations

import contextlib
import tempfile
from pathlib import Path
from typing import Iterator, Sequence

import note_seq
import tensorflow.compat.v1 as tf
from magenta.models.melody_rnn import melody_rnn_model, melody_rnn_pipeline, melody_rnn_sequence_generator
from magenta.models.shared import events_rnn_graph, events_rnn_train
from magenta.pipelines import pipeline

from .model import GENERATION_BATCH, config_for

SMALL_HPARAMS = "batch_size=4,rnn_layer_sizes=[16,16]"
"""Small enough to train a few steps in seconds on 2 cores (the configs' defaults are 128 x 2 LSTMs
at batch 128)."""


def random_bundle(config_name: str, path: Path, hparams: str = "", seed: int = 0,
                  description: str = "random weights (made by pdbridge)") -> Path:
    """A bundle of ``config_name`` whose weights are the graph's random initial values."""
    config = config_for(config_name, hparams)
    config.hparams.batch_size = GENERATION_BATCH
    with tempfile.TemporaryDirectory() as tmp, tf.Graph().as_default():
        tf.set_random_seed(seed)
        events_rnn_graph.get_build_graph_fn("generate", config)()
        with tf.Session() as session:
            session.run(tf.global_variables_initializer())
            checkpoint = tf.train.Saver().save(session, str(Path(tmp) / "model.ckpt"))
        return bundle_from_checkpoint(config_name, checkpoint, path, hparams, description)


def train_run(config_name: str, melodies: Sequence[note_seq.NoteSequence], run_dir: Path, steps: int,
              hparams: str = SMALL_HPARAMS) -> Path:
    """``steps`` more training steps on ``melodies`` into ``run_dir/train`` (going on from its newest
    checkpoint if it has one), the dataset into ``run_dir/data``; returns ``run_dir``. A melody
    needs 7 bars and 5 pitches to be used, as in ``melody_rnn_create_dataset``."""
    config = config_for(config_name, hparams)
    data = run_dir / "data"
    data.mkdir(parents=True, exist_ok=True)
    pipeline.run_pipeline_serial(melody_rnn_pipeline.get_pipeline(config, eval_ratio=0.0), melodies, str(data))
    build = events_rnn_graph.get_build_graph_fn("train", config, [str(data / "training_melodies.tfrecord")])
    with tf_slim_on_tf215():
        events_rnn_train.run_training(build, str(run_dir / "train"), num_training_steps=steps,
                                      summary_frequency=max(steps, 1))
    return run_dir


def bundle_from_checkpoint(config_name: str, checkpoint: str, path: Path, hparams: str = "",
                           description: str = "") -> Path:
    """A ``.mag`` file from a checkpoint (a file prefix, or a folder: its newest)."""
    config = config_for(config_name, hparams)
    config.hparams.batch_size = GENERATION_BATCH
    generator = melody_rnn_sequence_generator.MelodyRnnSequenceGenerator(
        melody_rnn_model.MelodyRnnModel(config), config.details, steps_per_quarter=config.steps_per_quarter,
        checkpoint=checkpoint)
    try:
        generator.create_bundle_file(str(path), description)
    finally:
        generator.close()
    return path


def melodies() -> list[note_seq.NoteSequence]:
    """A handful of 8-bar melodies (C major, 120 qpm, eighth notes) to train on."""
    scale = [60, 62, 64, 65, 67, 69, 71, 72]
    lines = [(scale + scale[::-1]) * 4, [60, 64, 67, 72, 67, 64, 62, 65] * 8, [62, 65, 69, 65, 64, 67, 71, 67] * 8,
             [72, 71, 69, 67, 65, 64, 62, 60] * 8, [60, 60, 67, 67, 69, 69, 67, 65, 65, 64, 64, 62, 62, 60, 67, 65] * 4]
    out = []
    for line in lines:
        sequence = note_seq.NoteSequence(ticks_per_quarter=note_seq.STANDARD_PPQ)
        sequence.tempos.add(qpm=120)
        for i, pitch in enumerate(line):
            sequence.notes.add(pitch=pitch, velocity=90, start_time=i * 0.25, end_time=i * 0.25 + 0.2)
        sequence.total_time = len(line) * 0.25
        out.append(sequence)
    return out


@contextlib.contextmanager
def tf_slim_on_tf215() -> Iterator[None]:
    """Let magenta's training loop run on TensorFlow 2.15.

    It clips gradients with tf_slim 1.1.0 (the last release), which looks for ``IndexedSlices`` in
    ``tensorflow.python.framework.ops``; TensorFlow moved it to ``indexed_slices`` (2.13). Put the
    name back there while training, and take it away after.
    """
    from tensorflow.python.framework import indexed_slices, ops

    missing = not hasattr(ops, "IndexedSlices")
    if missing:
        ops.IndexedSlices = indexed_slices.IndexedSlices
    try:
        yield
    finally:
        if missing:
            del ops.IndexedSlices
