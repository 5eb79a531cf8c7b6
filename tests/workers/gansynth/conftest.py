"""Checkpoints for the GANSynth tests, built once per test session with magenta's own code.

Building a GANSynth graph takes seconds even for the tiny config on 2 cores, so the checkpoints
and one loaded model are shared by every test module.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Callable, Iterator

import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from workers.gansynth.checkpoint_random import CUSTOM_PITCHES, TINY, make_checkpoint  # noqa: E402
from workers.gansynth.model import GANSynth  # noqa: E402


@pytest.fixture(scope="session")
def tiny_ckpt(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Official layout (experiment.json + stage_00012/model.ckpt-11000000.*), NSynth pitches 24-84."""
    return make_checkpoint(tmp_path_factory.mktemp("gansynth") / "tiny", TINY, seed=1)


@pytest.fixture(scope="session")
def custom_ckpt(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A course-style custom model: meta.json says which pitches were trained."""
    return make_checkpoint(tmp_path_factory.mktemp("gansynth") / "custom", TINY, pitches=CUSTOM_PITCHES, seed=2)


@pytest.fixture(scope="session")
def tiny_models(tiny_ckpt: Path) -> Iterator[Callable[[int], GANSynth]]:
    """``tiny_models(batch)``: the tiny checkpoint loaded once per batch size.

    References for the worker's audio use the worker's batch size: the same graph then gives the
    same samples bit for bit, while another batch size lets oneDNN pick other convolution kernels
    (differences of ~1e-4 by the end of a note, as the phase is integrated over time).
    """
    models: dict[int, GANSynth] = {}

    def get(batch: int) -> GANSynth:
        if batch not in models:
            models[batch] = GANSynth.load(tiny_ckpt, batch_size=batch)
        return models[batch]

    yield get
    for model in models.values():
        model.close()


@pytest.fixture(scope="session")
def tiny_model(tiny_models: Callable[[int], GANSynth]) -> GANSynth:
    """The tiny checkpoint loaded with batch size 3 (not a divisor of the note counts used)."""
    return tiny_models(3)
