"""``pdbridge demo`` (``make demo``): a short sound from every installed model, rendered through real Pd.

Each model has a demo patch, ``pd_patches/examples/demo/<model>.pd``: it loads a small model,
renders into an array and writes it to the WAV named by ``demo-out`` (a symbol message), then quits (0 = success).
Models need weights nobody can download here, so a model's ``prepare`` module makes a small one
in the real upstream format first (cached in .cache/demo-models/<model>), passed as ``demo-model``.
"""
from __future__ import annotations

import asyncio
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import numpy as np
import soundfile

from . import fudi
from .config import PROJECT_ROOT, WorkerConfig, load_config
from .hub import Hub
from .launcher import run_module
from .pd import PATCH_DIR, find_pd, pd_command

DEMO_PATCHES = PATCH_DIR / "examples" / "demo"
MODEL_CACHE = PROJECT_ROOT / ".cache" / "demo-models"
PD_TIMEOUT_S = 900


@dataclass(frozen=True)
class Demo:
    model: str
    note: str
    prepare: Optional[str] = None
    """Module run as ``python -m MODULE DIR`` in the model's environment to make the demo model in DIR."""


DEMOS = [
    Demo("diagnostics", "bridge check (a test tone, not a model)"),
    Demo("samplernn", "SampleRNN: 3 s from a small model trained here on a synthetic melody",
         prepare="workers.samplernn.demo_model"),
    Demo("rave", "RAVE: a sound through a random-weight v2_small export (timbre transfer path)",
         prepare="workers.rave.demo_model"),
    Demo("gansynth", "GANSynth: one note from a small random-weight model in the official checkpoint layout",
         prepare="workers.gansynth.demo_model"),
    Demo("ddsp", "DDSP: a synthetic melody through a tiny model trained here with ddsp's own Trainer, one octave down",
         prepare="workers.ddsp.demo_model"),
    Demo("melody_rnn", "MelodyRNN: a phrase and the duet's answer from a small model trained here, through "
         "examples/ai_duet.pd's synth", prepare="workers.melody_rnn.demo_model"),
    Demo("caw", "CAW: a 3 s variation from a small model trained here on a two-note clip",
         prepare="workers.caw.demo_model"),
]


def _prepare(demo: Demo, worker: WorkerConfig) -> Optional[Path]:
    if demo.prepare is None:
        return None
    target = MODEL_CACHE / demo.model
    if not (target / ".ready").exists():
        target.mkdir(parents=True, exist_ok=True)
        print(f"  making a small {demo.model} model in {target} ...", flush=True)
        code = run_module(worker, demo.prepare, [str(target)])
        if code != 0:
            raise subprocess.CalledProcessError(code, demo.prepare)
        (target / ".ready").write_text("ok\n")
    return target


def _render(hub_port: int, demo: Demo, out: Path, model_dir: Optional[Path]) -> tuple[bool, str]:
    pd = find_pd()
    if pd is None:
        return False, "Pure Data not found (sudo apt install puredata)"
    sends = [f"demo-out symbol {fudi.escape_symbol(str(out))}"]
    if model_dir is not None:
        sends.append(f"demo-model symbol {fudi.escape_symbol(str(model_dir))}")
    cmd = pd_command(pd, DEMO_PATCHES / f"{demo.model}.pd", hub_port, headless=True, sends=sends)
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=PD_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        return False, f"Pd did not finish within {PD_TIMEOUT_S} s"
    console = (proc.stdout + proc.stderr).strip().splitlines()
    errors = [line for line in console if "error" in line]
    if proc.returncode != 0 or not out.exists():
        return False, f"Pd exited with {proc.returncode}: {' | '.join(errors[-3:]) or 'no output written'}"
    samples, sr = soundfile.read(out, dtype="float32")
    peak = float(np.max(np.abs(samples))) if len(samples) else 0.0
    if not np.isfinite(samples).all() or peak == 0.0:
        return False, f"{out} is silent or not finite"
    return True, f"{len(samples) / sr:.2f} s at {sr} Hz, peak {peak:.2f}"


def run_demo(out_dir: Path) -> int:
    out_dir = out_dir.resolve()
    out_dir.mkdir(parents=True, exist_ok=True)
    config = load_config()

    async def main() -> list[tuple[Demo, bool, str, Path]]:
        hub = Hub(pd_port=0)
        await hub.start()
        rows = []
        try:
            for demo in DEMOS:
                worker = config.workers.get(demo.model)
                wav = out_dir / f"{demo.model}.wav"
                wav.unlink(missing_ok=True)
                if worker is None or worker.missing_reason():
                    rows.append((demo, False, worker.missing_reason() if worker else "no worker configured", wav))
                    continue
                print(f"{demo.model}: rendering through Pd ...", flush=True)
                try:
                    model_dir = await asyncio.to_thread(_prepare, demo, worker)
                except subprocess.CalledProcessError as exc:
                    rows.append((demo, False, f"could not make the demo model ({exc})", wav))
                    continue
                ok, text = await asyncio.to_thread(_render, hub.pd_port, demo, wav, model_dir)
                rows.append((demo, ok, text, wav))
        finally:
            await hub.stop()
        return rows

    rows = asyncio.run(main())
    print("\npdbridge demo: sounds rendered through Pd")
    for demo, ok, text, wav in rows:
        where = str(wav) if ok else "-"
        print(f"  {'ok  ' if ok else 'FAIL'} {demo.model:12s} {demo.note}: {text}\n       {where}")
    print(f"WAV files are in {out_dir}")
    return 0 if all(ok for _, ok, _, _ in rows) else 1


if __name__ == "__main__":
    sys.exit(run_demo(Path(sys.argv[1] if len(sys.argv) > 1 else "demo-output")))
