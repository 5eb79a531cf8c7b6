"""Make the GANSynth checkpoint that ``make demo`` plays: ``python -m workers.gansynth.demo_model DIR``.

No trained GANSynth can be downloaded here, so ``DIR`` gets a checkpoint written by magenta's own
model code with random weights (:mod:`workers.gansynth.checkpoint_random`), in the layout of the
published all_instruments folder (``experiment.json`` + ``stage_00012/model.ckpt-11000000.*``,
NSynth pitches 24-84). The channel counts are the tiny ones the tests use, so it is written in
seconds; everything else (resolution schedule, latent size, 4 s at 16 kHz) is ``mel_prog_hires``.
Untrained weights make a noisy 4 s note rather than an instrument.
"""
from __future__ import annotations

import contextlib
import logging
import os
import sys
import warnings
from pathlib import Path

# Run by `make demo` in the user's terminal: keep TensorFlow's deprecation chatter (dozens of lines
# that look like failures) out of it, as the worker does for the Pd console.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
warnings.filterwarnings("ignore", category=UserWarning)
warnings.filterwarnings("ignore", category=RuntimeWarning, module="pydub")
logging.getLogger("tensorflow").setLevel(logging.ERROR)

from .checkpoint_random import TINY, make_checkpoint  # noqa: E402
from .model import GANSynth  # noqa: E402


def make(target: Path) -> Path:
    """Write the checkpoint into ``target``, check the worker can load it, and return ``target``."""
    with contextlib.redirect_stdout(sys.stderr):  # magenta prints its flags while building the graph
        make_checkpoint(target, TINY, seed=1, batch_size=1)
        GANSynth.load(target, batch_size=1).close()
    return target


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: python -m workers.gansynth.demo_model DIR")
    print(f"demo model: {make(Path(sys.argv[1]))}")
