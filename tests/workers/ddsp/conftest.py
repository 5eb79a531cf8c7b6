"""DDSP models for the tests, made once per test session with ddsp's own code.

The tiny model is trained with ddsp's Trainer for 200 steps on a synthetic harmonic tone (about
30 s on 2 cores), in the layout ``ddsp_run`` writes; every DDSP test module shares it.
"""
from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from workers.ddsp.training import train_tiny  # noqa: E402


@pytest.fixture(scope="session", autouse=True)
def eager_tensorflow() -> None:
    """DDSP is TensorFlow 2 (eager) code; magenta's GANSynth switches the whole process to TF1 graph
    mode when imported, so the two test folders need their own pytest processes (as the workers
    have their own processes)."""
    import tensorflow as tf

    if not tf.executing_eagerly():
        pytest.fail("TensorFlow runs in TF1 graph mode in this pytest process (tests/workers/gansynth imports "
                    "magenta's GANSynth, which disables TF2 behaviour): run tests/workers/ddsp in a pytest "
                    "process of its own", pytrace=False)


@pytest.fixture(scope="session")
def tiny_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """ddsp_run's layout: operative_config-0.gin, ckpt-100, ckpt-200 (+ checkpoint index)."""
    return train_tiny(tmp_path_factory.mktemp("ddsp") / "tiny", steps=200, steps_per_save=100)


@pytest.fixture(scope="session")
def tiny_export(tiny_folder: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny model exported as DDSP-VST users export theirs (SavedModel + .tflite + metadata)."""
    from vst_export import export
    from workers.ddsp.training import ToneProvider

    return export(tiny_folder, tmp_path_factory.mktemp("ddsp") / "export", ToneProvider(count=8))
