"""``pdbridge train caw``: the training job from a shell, in the foreground or detached, resumable."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import soundfile as sf
from conftest import SR, two_notes
from pdharness import require_worker, wait_until

ROOT = Path(__file__).resolve().parents[3]
TINY = ["--model_sr", str(SR), "--seconds", "1.5", "--layers", "6", "--channels", "16", "--threads", "1",
        "--seed", "7"]


def pdbridge(*args: str, cwd: Path, timeout: float = 240) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(ROOT), PDBRIDGE_JOBS_DIR=str(cwd / "jobs"))
    return subprocess.run([sys.executable, "-m", "pdbridge", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=timeout, env=env)


def test_train_from_a_shell_stops_and_resumes(tmp_path: Path) -> None:
    require_worker("caw")
    sf.write(tmp_path / "clip.wav", two_notes(), SR)
    out = pdbridge("train", "caw", "clip.wav", "m", "--epochs", "80", "--detach", *TINY, cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    job = out.stdout.split()[1]
    folder = tmp_path / "m"  # relative to where the command ran
    wait_until(lambda: (folder / "checkpoint.pt").exists() or "epoch" in pdbridge("jobs", cwd=tmp_path).stdout,
               timeout=120, what="training to start")
    assert pdbridge("jobs", "stop", job, cwd=tmp_path).returncode == 0
    wait_until(lambda: "stopped" in pdbridge("jobs", "show", job, cwd=tmp_path).stdout, timeout=60,
               what="the job to stop")
    stopped = json.loads((folder / "caw.json").read_text())
    assert (folder / "checkpoint.pt").exists() and stopped["scales"][-1]["epochs_done"] == 0
    # the same command again goes on with that job, in the foreground, to the end
    again = pdbridge("train", "caw", "clip.wav", "m", *TINY, cwd=tmp_path, timeout=600)
    assert again.returncode == 0, again.stdout + again.stderr
    assert f"job {job}: done" in again.stdout and "scale 4 done" in again.stdout
    done = json.loads((folder / "caw.json").read_text())
    assert [s["epochs_done"] for s in done["scales"]] == [80] * 4
    assert "done" in pdbridge("jobs", cwd=tmp_path).stdout
    refused = pdbridge("train", "caw", "clip.wav", "m", cwd=tmp_path)
    assert refused.returncode == 2 and "already trained" in refused.stderr
