"""GANSynth checkpoints with random weights, written by magenta's own model code in the official layout.

No trained GANSynth can be downloaded here, yet the tests, the benchmark and ``make demo`` need
folders exactly like the ones users unzip. The layout is what ``gansynth_train`` leaves and the
published zips contain: ``experiment.json`` (``json.dump`` of the training flags) and
``stage_000NN/model.ckpt-N.*`` saved with the model's own ``tf.train.Saver``. Progress is set to the
end of training (``current_image_id`` = ``total_num_images``) so the generator runs at full
resolution, as a trained model does.

``TINY`` shrinks only the channel counts (fmap_base/fmap_max): the graph, resolution schedule,
latent size and audio length are those of ``mel_prog_hires``, so every code path is the real one.
Build one from the command line:
``python -m workers.gansynth.checkpoint_random OUT_DIR [--full] [--pitches 32 33]``.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Mapping, Optional, Sequence

import numpy as np
import tensorflow.compat.v1 as tf
from magenta.models.gansynth.configs import mel_prog_hires
from magenta.models.gansynth.lib import flags as lib_flags
from magenta.models.gansynth.lib import model as lib_model

from .model import NO_DATA_DATASET, PITCH_COUNTS_KEY, build_model

TINY = {"fmap_base": 256, "fmap_max": 8}
"""Channel counts small enough to build, save and generate quickly on 2 CPU cores."""
CUSTOM_PITCHES = (32, 33, 36)
"""Pitches of the tests' course-style custom model (listed in its meta.json)."""


def make_checkpoint(root: Path, hparams: Optional[Mapping] = None, pitches: Optional[Sequence[int]] = None,
                    seed: int = 0, batch_size: int = 8) -> Path:
    """Write a random-weight GANSynth checkpoint to ``root`` and return it.

    ``pitches`` makes a course-style custom model: ``meta.json`` lists one note per pitch and
    ``experiment.json`` names the course's ``nsynth_tfrecord`` dataset, as its training did.
    """
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    flags = lib_flags.Flags()
    flags.load(mel_prog_hires.hparams)
    flags.load(dict(hparams or {}))
    flags["train_root_dir"] = str(root)
    if pitches:
        flags["dataset_name"] = "nsynth_tfrecord"
        flags["train_data_path"] = str(root / "data.tfrecord")
        flags["train_meta_path"] = str(root / "meta.json")
    lib_model.set_flags(flags)
    (root / "experiment.json").write_text(json.dumps(flags, indent=2, sort_keys=True))
    if pitches:
        meta = {f"sound_{i:03d}_{p:03d}": {"pitch": int(p), "instrument_source": 0}
                for i, p in enumerate(pitches)}
        (root / "meta.json").write_text(json.dumps(meta, indent=2))

    stage_id = 2 * flags["num_resolutions"] - 2
    build = lib_flags.Flags(flags)
    build["dataset_name"] = NO_DATA_DATASET
    if pitches:
        build[PITCH_COUNTS_KEY] = {int(p): 1 for p in pitches}
    model = build_model(stage_id, batch_size, build, seed=seed)
    with model.sess.graph.as_default():
        model.sess.run(tf.global_variables_initializer())
        step = int(flags["total_num_images"])
        model.sess.run(model.current_image_id.assign(step))
        stage = root / f"stage_{stage_id:05d}"
        stage.mkdir(exist_ok=True)
        model.saver.save(model.sess, str(stage / "model.ckpt"), global_step=step)
    model.sess.close()
    return root


def generator_parameter_count(root: Path) -> int:
    """Trainable generator weights stored in the checkpoint (EMA copies and optimiser slots excluded)."""
    ckpt = tf.train.latest_checkpoint(str(sorted(Path(root).glob("stage_*"))[-1]))
    reader = tf.train.load_checkpoint(ckpt)
    return int(sum(np.prod(shape) for name, shape in reader.get_variable_to_shape_map().items()
                   if name.startswith("Generator/") and "ExponentialMovingAverage" not in name
                   and "Adam" not in name))


def main() -> None:
    parser = argparse.ArgumentParser(description="write a random-weight GANSynth checkpoint")
    parser.add_argument("out", type=Path)
    parser.add_argument("--full", action="store_true", help="the published mel_prog_hires size (default: tiny)")
    parser.add_argument("--pitches", type=int, nargs="*", help="custom model with meta.json for these pitches")
    args = parser.parse_args()
    make_checkpoint(args.out, None if args.full else TINY, args.pitches)
    print(args.out, generator_parameter_count(args.out))


if __name__ == "__main__":
    main()
