"""Make the MelodyRNN bundle that ``make demo`` plays: ``python -m workers.melody_rnn.demo_model DIR``.

No trained MelodyRNN can be downloaded here, so ``DIR/duet.mag`` is a small attention_rnn trained by
magenta's own training loop for 300 steps (about 40 s on 2 cores) on the handful of C major melodies
in :func:`workers.melody_rnn.bundles.melodies`, and bundled by magenta's own writer. That is enough
for its answers to move along the scale rather than jump at random, which is all a demo needs.
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

from .bundles import bundle_from_checkpoint, melodies, train_run  # noqa: E402
from .model import MelodyModel  # noqa: E402

CONFIG = "attention_rnn"
HPARAMS = "batch_size=8,rnn_layer_sizes=[32,32]"
STEPS = 300


def make(target: Path) -> Path:
    """Train into ``target/run``, write ``target/duet.mag``, check the worker loads it; return the bundle."""
    with contextlib.redirect_stdout(sys.stderr):  # magenta logs its training steps
        run = train_run(CONFIG, melodies(), target / "run", STEPS, HPARAMS)
        bundle = bundle_from_checkpoint(CONFIG, str(run / "train"), target / "duet.mag", HPARAMS,
                                        f"{CONFIG} {HPARAMS}, {STEPS} steps on C major melodies (pdbridge demo)")
        MelodyModel.load(bundle).close()
    return bundle


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: python -m workers.melody_rnn.demo_model DIR")
    print(f"demo model: {make(Path(sys.argv[1]))}")
