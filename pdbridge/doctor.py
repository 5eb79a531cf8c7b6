"""``pdbridge doctor``: one line per thing pdbridge needs, and the fix when it is missing."""
from __future__ import annotations

import shutil
import subprocess
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Optional

from .config import PROJECT_ROOT, WorkerConfig, load_config, project_env
from .pd import MIN_VERSION, find_pd, pd_version

OK, BAD, INFO = "ok  ", "FAIL", "--  "


def check_pd() -> tuple[str, str]:
    pd = find_pd()
    if pd is None:
        return BAD, "Pure Data not found: sudo apt install puredata (or set PDBRIDGE_PD to its path)"
    version = pd_version(pd)
    if version is None:
        return BAD, f"Pd at {pd} does not report a version: is it Pure Data?"
    text = ".".join(map(str, version))
    if version[:2] < MIN_VERSION:
        return BAD, f"Pd {text} at {pd} is too old: pdbridge needs {'.'.join(map(str, MIN_VERSION))} or newer"
    return OK, f"Pd {text} at {pd}"


def check_env(name: str, worker: WorkerConfig) -> tuple[str, str]:
    missing = worker.missing_reason()
    if missing:
        return BAD, f"environment {name}: not installed: run `make env-{name}`"
    out = _run(worker, "import sys; print(sys.version.split()[0])")
    if out is None:
        return BAD, f"environment {name}: {worker.python} does not run: rebuild with `make env-{name}`"
    return OK, f"environment {name}: Python {out} ({_shown(worker.python)})"


def check_worker(worker: WorkerConfig) -> tuple[str, str]:
    if worker.missing_reason():
        return BAD, f"worker {worker.model}: needs the {worker.env} environment: run `make env-{worker.env}`"
    proc = subprocess.run([str(worker.python), "-c", f"import {worker.module}"], capture_output=True, text=True,
                          timeout=300, cwd=PROJECT_ROOT, env=project_env())
    if proc.returncode != 0:
        last = (proc.stderr.strip().splitlines() or ["unknown error"])[-1]
        return BAD, f"worker {worker.model}: does not import ({last}): rebuild with `make env-{worker.env}`"
    return OK, f"worker {worker.model}: imports ({worker.env} environment)"


def check_gpu() -> tuple[str, str]:
    smi = shutil.which("nvidia-smi")
    if smi:
        out = subprocess.run([smi, "-L"], capture_output=True, text=True, timeout=30)
        if out.returncode == 0 and out.stdout.strip():
            return OK, f"GPU: {out.stdout.strip().splitlines()[0]} (models use it with --device auto)"
    return INFO, "GPU: none visible; models run on the CPU"


def _shown(path: Path) -> str:
    """Paths inside the project are shown relative to it, as the README and the Makefile write them."""
    try:
        return str(path.relative_to(PROJECT_ROOT))
    except ValueError:
        return str(path)


def _run(worker: WorkerConfig, code: str) -> Optional[str]:
    try:
        proc = subprocess.run([str(worker.python), "-c", code], capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return proc.stdout.strip() if proc.returncode == 0 else None


def run_doctor() -> int:
    config = load_config()
    envs = {w.env: w for w in config.workers.values()}
    checks = [check_pd]
    checks += [lambda n=n, w=w: check_env(n, w) for n, w in sorted(envs.items())]
    checks += [lambda w=w: check_worker(w) for _, w in sorted(config.workers.items())]
    checks.append(check_gpu)
    with ThreadPoolExecutor(max_workers=4) as pool:  # importing TensorFlow takes a while: overlap
        results = list(pool.map(lambda c: c(), checks))
    for status, text in results:
        print(f"{status} {text}")
    return 1 if any(status == BAD for status, _ in results) else 0
