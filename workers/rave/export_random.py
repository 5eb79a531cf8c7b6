"""Real RAVE exports made by acids-rave itself from a randomly initialised run (no weights needed).

No trained RAVE can be downloaded here, yet the demo, the compat tests and the benchmark need files
exactly like the ``.ts`` files users download. So this builds the run folder ``rave train`` leaves
(``config.gin``, the operative gin config, and ``version_0/checkpoints/last.ckpt`` holding
``{"state_dict": ...}``) with acids-rave's public ``rave.RAVE`` class, then lets acids-rave's own
``rave export`` command turn it into the ``.ts``. Untrained weights leave the PCA ``fidelity`` at
zero, which would crop the exported latent to one dimension; we store the cumulative explained
variance of halving component variances instead (as training would measure it), so the export keeps
4 dimensions at the default ``--fidelity 0.95``.

Needs acids-rave installed (the torch environment has it); imported lazily so that importing this
module costs nothing.
"""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path


def build_random_run(run_dir: Path, config: str = "v2_small", seed: int = 0) -> Path:
    """Write a RAVE run folder with random weights for one of acids-rave's bundled configs."""
    import gin
    import rave
    import torch

    gin.clear_config()
    configs = Path(rave.__file__).parent / "configs"
    gin.parse_config_files_and_bindings([str(configs / f"{config}.gin")], [])
    torch.manual_seed(seed)
    model = rave.RAVE(n_channels=1)
    state = model.state_dict()
    variance = 0.5 ** torch.arange(state["fidelity"].numel(), dtype=torch.float32)
    state["fidelity"] = torch.cumsum(variance, 0) / variance.sum()
    checkpoints = run_dir / "version_0" / "checkpoints"
    checkpoints.mkdir(parents=True, exist_ok=True)
    (run_dir / "config.gin").write_text(gin.operative_config_str())
    torch.save({"state_dict": state}, checkpoints / "last.ckpt")
    gin.clear_config()
    return run_dir


def export(run_dir: Path, out_dir: Path, streaming: bool) -> Path:
    """Run acids-rave's ``rave export`` (in a child process, as a user would) and return the .ts."""
    cli = Path(sys.executable).with_name("rave")
    command = [str(cli), "export", "--run", str(run_dir), "--output", str(out_dir), "--name", run_dir.name]
    if streaming:
        command.append("--streaming")
    done = subprocess.run(command, capture_output=True, text=True, timeout=600,
                          env={**os.environ, "PYTHONWARNINGS": "ignore"})
    if done.returncode != 0:
        raise RuntimeError(f"rave export failed ({done.returncode}):\n{done.stderr[-3000:]}")
    return out_dir / (run_dir.name + ("_streaming" if streaming else "") + ".ts")
