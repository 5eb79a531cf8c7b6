"""A fetched checkpoint loads by its short name through real Pd: `pdbridge models fetch` puts it in
the models folder, and `[load tone(` finds it there (the diagnostics worker loads the way models do)."""
from __future__ import annotations

import hashlib
import io
import os
from pathlib import Path
from typing import Iterator

import numpy as np
import pytest
import soundfile

from pdbridge import models
from pdharness import HubThread


@pytest.fixture(scope="module")
def models_dir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The models folder, set before the module's hub starts so its workers inherit it."""
    folder = tmp_path_factory.mktemp("models")
    old = os.environ.get("PDBRIDGE_MODELS")
    os.environ["PDBRIDGE_MODELS"] = str(folder)
    yield folder
    if old is None:
        del os.environ["PDBRIDGE_MODELS"]
    else:
        os.environ["PDBRIDGE_MODELS"] = old


@pytest.fixture(scope="module")
def hub(models_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[HubThread]:
    h = HubThread(log_dir=tmp_path_factory.mktemp("logs"))
    yield h
    h.stop()


def test_load_by_short_name_after_fetch(pd_driver, models_dir: Path, tmp_path: Path) -> None:
    tone = np.sin(np.arange(4410) * 0.05).astype(np.float32)
    wav = tmp_path / "served.wav"
    soundfile.write(wav, tone, 44100, subtype="FLOAT")
    entry = models.Entry("tone", "diagnostics", "", url=wav.as_uri(),
                         sha256=hashlib.sha256(wav.read_bytes()).hexdigest())
    assert models.fetch(entry, out=io.StringIO()) == models_dir / "tone.wav"
    pd = pd_driver("diagnostics")
    pd.send("load", "tone")
    assert pd.result("loaded") == [4410.0, 44100.0]
    pd.send("load", "nosuch")
    assert f"no model called nosuch in {models_dir}" in pd.error()
