"""[pdbridge.samplernn] in a real headless Pd, through the hub, to the SampleRNN worker (torch env)."""
from __future__ import annotations

from pathlib import Path
from typing import Iterator, Union

import numpy as np
import pytest
import torch
from pdharness import SHARED_FIXTURES, HubThread, PdDriver, require_worker

from pdbridge import fudi
from pdbridge.pd import PATCH_DIR, find_pd
from workers.runtime.envelope import Env
from workers.samplernn.checkpoint import resolve_model, save_checkpoint
from workers.samplernn.config import SampleRNNConfig
from workers.samplernn.generate import Sampler, generate_audio, temperature_matrix
from workers.samplernn.model import SampleRNN

pytestmark = pytest.mark.skipif(find_pd() is None, reason="Pure Data is not installed")

SR = 8000


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A pdbridge checkpoint folder holding a small untrained model (weights from a fixed seed)."""
    root = tmp_path_factory.mktemp("samplernn_e2e") / "run"
    torch.manual_seed(0)
    config = SampleRNNConfig(seq_len=64, frame_sizes=(8, 32), dim=24, num_rnn_layers=2, q_type="mu-law",
                             emb_size=8, sample_rate=SR)
    save_checkpoint(root / "checkpoint-10.pt", SampleRNN(config), {"step": 10, "epoch": 1})
    return root


@pytest.fixture(scope="module")
def samplernn_hub(hub: HubThread) -> HubThread:
    """The shared hub, once we know the samplernn worker's environment exists."""
    require_worker("samplernn")
    return hub


@pytest.fixture
def pd(samplernn_hub: HubThread) -> Iterator[PdDriver]:
    driver = PdDriver(samplernn_hub.port, "samplernn")
    yield driver
    driver.close()


def test_course_messages_generate_into_arrays(pd: PdDriver, run_dir: Path) -> None:
    pd.send("load", "--", "--num_seqs", 2, "--ckpt_dir", str(run_dir), "--precision", "fp32")
    assert pd.result("loaded", timeout=120) == [2.0, float(SR)]
    env = "Env([0.7,1.05],[0.5],[-2])"  # one symbol; a message box writes the commas as \\,
    pd.send("generate", "--out_sr", SR, "--dur", 0.5, "--temp", 1, "--out", "drv-a",
            "--temp", env, "--out", "drv-b", "--rng_seed", 5)
    n = SR // 2 - 32
    assert pd.result("generated", timeout=120) == ["drv-a", float(SR), float(n)]
    assert pd.result("generated") == ["drv-b", float(SR), float(n)]
    # The same request run here, without Pd, gives the same samples.
    model = resolve_model(run_dir).model
    temps = temperature_matrix([1.0, Env.parse("Env([0.7,1.05],[0.5],[-2])")], n, SR)
    expected = generate_audio(Sampler(model, "fp32"), n, temps, rng_seed=5)
    np.testing.assert_array_equal(pd.read_array("drv-a"), expected[0])
    np.testing.assert_array_equal(pd.read_array("drv-b"), expected[1])

    # Seed audio from a Pd array primes the model: same RNG seed, different output.
    pd.write_array("drv-c", 0.5 * np.sin(2 * np.pi * 220 * np.arange(2000) / SR))
    pd.send("generate", "--dur", 0.5, "--temp", 1, "--out", "drv-a", "--seed", "drv-c",
            "--seed_sr", SR, "--rng_seed", 5)
    assert pd.result("generated", timeout=120) == ["drv-a", float(SR), float(n)]
    assert not np.array_equal(pd.read_array("drv-a"), expected[0])


def test_errors_a_student_can_act_on(pd: PdDriver, run_dir: Path) -> None:
    pd.send("generate", "--temp", 1, "--out", "drv-a")
    assert "load -- --ckpt_dir" in pd.error()
    pd.send("load", "--", "--ckpt_dir", "no/such/folder")
    assert "not found" in pd.error()
    pd.send("load", "--", "--ckpt_dir", str(run_dir))
    pd.result("loaded", timeout=120)
    pd.send("generate", "--dur", 1, "--temp", 1, "--out", "drv-a", "--out", "drv-b")
    assert "one --temp per --out" in pd.error()
    pd.send("generate", "--dur", 1, "--temp", 1, "--out", "no-such-array")
    assert "no-such-array" in pd.error()
    pd.send("generate", "--dur", 1, "--temp", 0, "--out", "drv-a")
    assert "positive" in pd.error()


def test_generation_reports_progress_and_can_be_cancelled(pd: PdDriver, run_dir: Path) -> None:
    pd.send("load", "--", "--ckpt_dir", str(run_dir))
    pd.result("loaded", timeout=120)
    pd.send("generate", "--dur", 600, "--temp", 1, "--out", "drv-a")
    first = pd.next(timeout=60)
    assert first[:2] == ["status", "progress"]
    pd.send("cancel")
    assert pd.expect("status", "cancelled", timeout=60) == ["generate"]
    pd.send("generate", "--dur", 0.1, "--temp", 1, "--out", "drv-a")
    assert pd.result("generated", timeout=60)[0] == "drv-a"


def _message_boxes(patch: Path, selector: str) -> list[list[Union[str, float]]]:
    """The atoms of every message box starting with ``selector``, as Pd would send them."""
    messages = []
    for line in patch.read_text().splitlines():
        if line.startswith("#X msg ") and line.split(" ", 4)[4].startswith(selector + " "):
            messages.append(fudi.parse_atoms(line.split(" ", 4)[4].removesuffix(";")))
    return messages


def test_example_patch_messages_work(pd: PdDriver, run_dir: Path) -> None:
    """Every generate message of examples/samplernn.pd, sent to a loaded model, fills both arrays."""
    example = PATCH_DIR / "examples" / "samplernn.pd"
    generates = _message_boxes(example, "generate")
    assert len(generates) == 2 and any("Env(" in str(a) for a in generates[1])
    pd.send("load", "--", "--num_seqs", 2, "--ckpt_dir", str(run_dir))
    pd.result("loaded", timeout=120)
    for atoms in generates:
        renamed = [{"snd1": "drv-a", "snd2": "drv-b"}.get(a, a) if isinstance(a, str) else a for a in atoms]
        pd.send(*renamed)
        # The model runs at 8 kHz; --out_sr 16000 resamples its (4 s x 8000 - 32) samples.
        assert pd.result("generated", timeout=120) == ["drv-a", 16000.0, 63936.0]
        assert pd.result("generated") == ["drv-b", 16000.0, 63936.0]
        assert np.abs(pd.read_array("drv-b")).max() > 0


def test_prism_checkpoint_through_pd(pd: PdDriver) -> None:
    """A PRiSM run folder loads with its config; like the course, --out_sr is the model's rate."""
    fixture = SHARED_FIXTURES / "samplernn_prism"
    pd.send("load", "--", "--ckpt_dir", str(fixture / "checkpoint"))
    assert "--config" in pd.error(timeout=120)
    pd.send("load", "--", "--ckpt_dir", str(fixture / "checkpoint"), "--config", str(fixture / "tiny.config.json"))
    assert pd.result("loaded", timeout=120) == [1.0, 16000.0]
    pd.send("generate", "--out_sr", 22050, "--dur", 0.5, "--temp", 0.95, "--out", "drv-a")
    # 0.5 s x 22050 rounded down to whole big frames (11008), minus the dropped first one; no resampling.
    assert pd.result("generated", timeout=120) == ["drv-a", 22050.0, 10944.0]
    pd.send("info")
    assert pd.result("checkpoint") == ["prism", str(fixture / "checkpoint" / "model.ckpt-2")]
