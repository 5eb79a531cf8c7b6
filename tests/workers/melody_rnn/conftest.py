"""MelodyRNN models for the tests, made once per session by magenta's own code.

Random-weight bundles of every config (full size: they are a megabyte each and written in under a
second), and a run folder of a small attention_rnn trained a few steps on a handful of melodies
with magenta's training loop, plus its bundle. Each file is named after something other than the
config it holds, so nothing can guess the config from the name.
"""
from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")  # as the worker sets it for users

from workers.melody_rnn import bundles  # noqa: E402
from workers.melody_rnn.model import CONFIGS  # noqa: E402

TRAINED_CONFIG = "attention_rnn"


@pytest.fixture(scope="session")
def random_bundles(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """config -> a bundle of it with random weights, in a file called model-<n>.mag."""
    folder = tmp_path_factory.mktemp("bundles")
    return {config: bundles.random_bundle(config, folder / f"model-{i}.mag", seed=i)
            for i, config in enumerate(CONFIGS)}


@pytest.fixture(scope="session")
def trained_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A melody_rnn_train run folder: 3 steps, then 3 more (a resumed run), so the newest
    checkpoint is model.ckpt-6 and older ones lie beside it."""
    run = tmp_path_factory.mktemp("runs") / "my_run"
    bundles.train_run(TRAINED_CONFIG, bundles.melodies(), run, steps=3)
    return bundles.train_run(TRAINED_CONFIG, bundles.melodies(), run, steps=3)


@pytest.fixture(scope="session")
def trained_bundle(trained_run: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The trained run as a bundle, named like a basic_rnn one."""
    return bundles.bundle_from_checkpoint(TRAINED_CONFIG, str(trained_run / "train"),
                                          tmp_path_factory.mktemp("trained") / "basic_rnn.mag",
                                          hparams=bundles.SMALL_HPARAMS, description="trained 6 steps")


@pytest.fixture
def misnamed(random_bundles: dict[str, Path], tmp_path: Path) -> Path:
    """A basic_rnn bundle in a file called attention_rnn.mag (the course took the name as the config)."""
    return Path(shutil.copy(random_bundles["basic_rnn"], tmp_path / "attention_rnn.mag"))
