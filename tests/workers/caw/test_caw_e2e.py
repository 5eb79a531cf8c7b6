"""[pdbridge.caw] in a real headless Pd, through the hub, to the CAW worker and its training job."""
from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Iterator

import numpy as np
import pytest
from conftest import SR, two_notes
from pdharness import SHARED_FIXTURES, HubThread, PdDriver, require_worker

from pdbridge.pd import find_pd
from workers.caw import generate as gen
from workers.caw.folder import load_model

pytestmark = pytest.mark.skipif(find_pd() is None, reason="Pure Data is not installed")
ARRAYS = Path(__file__).parent / "patches" / "caw_arrays.pd"
TINY_OPTIONS = ["--model_sr", SR, "--seconds", 1.5, "--layers", 6, "--channels", 16, "--seed", 7, "--sr", SR,
                "--threads", 1]


@pytest.fixture(scope="module")
def caw_hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[HubThread]:
    """A hub whose workers and jobs keep their job folders in this test's own place."""
    require_worker("caw")
    old = os.environ.get("PDBRIDGE_JOBS_DIR")
    os.environ["PDBRIDGE_JOBS_DIR"] = str(tmp_path_factory.mktemp("jobs"))
    hub = HubThread(log_dir=tmp_path_factory.mktemp("logs"))
    yield hub
    hub.stop()
    if old is None:
        os.environ.pop("PDBRIDGE_JOBS_DIR")
    else:
        os.environ["PDBRIDGE_JOBS_DIR"] = old


@pytest.fixture
def pd(caw_hub: HubThread) -> Iterator[PdDriver]:
    driver = PdDriver(caw_hub.port, "caw", extra_patches=[ARRAYS])
    yield driver
    driver.close()


def job_line(pd: PdDriver, job: str, state: str, word: str = "", timeout: float = 240) -> list:
    """Job lines from the right outlet until one says ``state`` (and ``word``); a failure ends the wait."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        msg = pd.next(max(0.1, deadline - time.monotonic()))
        if msg[:3] == ["status", "job", job]:
            if msg[3] == state and (not word or word in msg):
                return msg[4:]
            assert msg[3] != "failed", msg
    raise AssertionError(f"job {job} never {state}")


def test_train_from_an_array_then_generate_and_edit_through_pd(pd: PdDriver, tmp_path: Path) -> None:
    clip = two_notes()
    pd.write_array("drv-a", clip)
    folder = tmp_path / "model"
    pd.send("train", "drv-a", str(folder), "--epochs", 15, *TINY_OPTIONS)
    job = pd.result("started")[0]
    running = job_line(pd, job, "running", "scale")
    assert "epoch" in running and "left" in running  # scale k of K, epoch, losses, time left
    job_line(pd, job, "done")
    manifest = json.loads((folder / "caw.json").read_text())
    assert [s["epochs_done"] for s in manifest["scales"]] == [15] * 4
    assert all((folder / f"losses@{s['fs']}Hz.png").exists() for s in manifest["scales"])

    pd.send("load", str(folder))
    assert pd.result("loaded") == [4.0, float(SR), 1.5]
    pd.send("generate", "cv-0", "cv-1", "cv-2", "--length", 1, "--seed", 3, "--sr", 8000)
    for i in range(3):
        assert pd.result("generated", timeout=60) == [f"cv-{i}", 8000.0, 8000.0]
    made = [pd.read_array(f"cv-{i}") for i in range(3)]
    model = load_model(folder)
    rng = gen.generator_for(3)
    for got in made:
        expected = gen.variation(model, "cpu", 1.0, rng) * model.norm_factor
        assert np.abs(got).max() > 0.05
        np.testing.assert_allclose(got[::2], expected, atol=0.05)  # 8 kHz out of the model's 4 kHz
    assert np.linalg.norm(made[0] - made[1]) > 0.1 * np.linalg.norm(made[0])

    pd.send("reconstruct", "drv-b")
    assert pd.result("reconstructed", timeout=60) == ["drv-b", 6000.0, float(SR)]
    expected = gen.reconstruct(model, "cpu")[-1] * model.norm_factor
    np.testing.assert_allclose(pd.read_array("drv-b"), expected, atol=1e-4)

    pd.send("inpaint", "drv-a", "drv-c", 0.5, 0.65, "--in_sr", SR, "--seed", 1)
    assert pd.result("inpainted", timeout=60) == ["drv-c", 6000.0, float(SR)]
    filled = pd.read_array("drv-c")
    np.testing.assert_allclose(filled[:1500], clip[:1500], atol=1e-6)
    assert np.sqrt(np.mean(filled[2000:2600] ** 2)) > 0.05

    pd.write_array("drv-c", clip[::2])  # as if recorded at 2 kHz (the notes are below 1 kHz)
    pd.send("extend", "drv-c", "drv-b", "--in_sr", 2000)
    assert pd.result("extended", timeout=60) == ["drv-b", 6000.0, float(SR)]
    pd.send("condition", "drv-a", "drv-c", "--in_sr", SR, "--seed", 2)
    assert pd.result("conditioned", timeout=60) == ["drv-c", 6000.0, float(SR)]
    pd.send("denoise", "drv-a", "drv-c")
    assert pd.result("denoised", timeout=60) == ["drv-c", 6000.0, float(SR)]
    pd.send("info")
    assert pd.result("folder") == [str(folder)]

    # bad input: a clear error, and no array is touched
    before = pd.read_array("drv-b")
    pd.send("train", "drv-a", str(folder), *TINY_OPTIONS)
    assert "already holds a CAW model" in pd.error()
    pd.send("inpaint", "drv-a", "drv-b", 1.2, 9)
    assert "not inside the clip" in pd.error()
    pd.send("generate", "drv-b", "no-such-array")
    assert "no-such-array" in pd.error()
    pd.send("extend", "drv-a", "drv-b", "--in_sr", 8000)
    assert "not below the model's rate" in pd.error()
    np.testing.assert_array_equal(pd.read_array("drv-b"), before)


def test_a_job_stops_and_resumes_to_the_same_epochs(pd: PdDriver, tmp_path: Path) -> None:
    pd.write_array("drv-a", two_notes())
    folder = tmp_path / "model"
    pd.send("train", "drv-a", str(folder), "--epochs", 40, *TINY_OPTIONS)
    job = pd.result("started")[0]
    job_line(pd, job, "running", "scale")
    pd.send("stop", job)
    assert pd.result("stopping") == [job]
    job_line(pd, job, "stopped")
    assert (folder / "checkpoint.pt").exists()
    pd.send("status", str(folder))
    assert pd.result("job")[:2] == [job, "stopped"]
    pd.send("resume", str(folder))  # a job is also named by the model folder it trains
    assert pd.result("resumed") == [job]
    job_line(pd, job, "done")
    manifest = json.loads((folder / "caw.json").read_text())
    assert [s["epochs_done"] for s in manifest["scales"]] == [40] * 4


@pytest.mark.skipif(not (SHARED_FIXTURES / "caw_original").exists(), reason="no shared/fixtures/caw_original")
def test_an_original_model_folder_reconstructs_in_pd(pd: PdDriver) -> None:
    fixture = SHARED_FIXTURES / "caw_original"
    pd.send("load", str(fixture / "outputs" / "twonote"))
    assert pd.result("loaded") == [5.0, 8000.0, 3.5]
    pd.send("reconstruct", "drv-a")
    assert pd.result("reconstructed", timeout=60) == ["drv-a", 28000.0, 8000.0]
    reference = np.load(fixture / "reconstruction_reference.npz")["reconstruction@8000Hz"]
    np.testing.assert_allclose(pd.read_array("drv-a"), reference * 0.7793228, atol=1e-5)
    pd.send("generate", "drv-b", "--length", 2, "--seed", 1)
    assert pd.result("generated", timeout=60) == ["drv-b", 16000.0, 8000.0]
