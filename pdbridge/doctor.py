"""``pdbridge doctor``: one line per thing pdbridge needs, and the fix when it is missing.

Each FAIL line names one missing piece and the command that fixes it; docs/troubleshooting.md
has a section per line. A developer's checkout is fixed with ``make``, a student's install
(no Makefile in it) with install/install.sh, so the fix named is the one that applies here.
"""
from __future__ import annotations

import shutil
import subprocess
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Optional

from pdwire.folders import models_folder

from .config import PROJECT_ROOT, WorkerConfig, load_config, project_env
from .models import Manifest
from .pd import MIN_VERSION, PATCH_DIR, PDSETTINGS, find_pd, gui_and_extras, pd_version, read_pdsettings, search_paths
from .ticket import DEFAULT_PD_PORT, read_ticket, ticket_path

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


def installed() -> bool:
    """A student's install (install/install.sh copies no Makefile), not a developer's checkout."""
    return not (PROJECT_ROOT / "Makefile").exists()


def env_fix(name: str) -> str:
    return "run install/install.sh again" if installed() else f"run `make env-{name}`"


def check_pd_gui() -> tuple[str, str]:
    pd = find_pd()
    if pd is None:
        return BAD, "Pd's GUI: no Pd (see the Pd line)"
    gui, _ = gui_and_extras(pd)
    if gui is None:
        return BAD, ("Pd's GUI not found, so pd cannot open a patch window (couldn't read pd-gui.tcl): "
                     "sudo apt install puredata-gui")
    return OK, f"Pd's GUI at {gui}"


def check_pd_extras() -> tuple[str, str]:
    pd = find_pd()
    _, extra = gui_and_extras(pd) if pd else (None, None)
    if extra is None:
        return BAD, "Pd's extra objects (bob~, bonk~, sigmund~, ...) not found: sudo apt install puredata-extra"
    return OK, f"Pd's extra objects in {extra}"


def registered_folder(settings: Optional[Path] = None) -> Optional[Path]:
    """The folder on this user's Pd search path that holds the pdbridge abstractions, if any."""
    for path in search_paths(read_pdsettings(settings or PDSETTINGS)):
        if (Path(path).expanduser() / "pdbridge.conn.pd").exists():
            return Path(path).expanduser()
    return None


def check_pd_path() -> tuple[str, str]:
    folder = registered_folder()
    if folder is None:
        return BAD, (f"Pd's search path ({PDSETTINGS}) has no pdbridge folder, so [pdbridge.gansynth] is not "
                     f"found from your patches: run install/install.sh (or add {PATCH_DIR} in Pd's Preferences "
                     "-> Path)")
    return OK, f"Pd finds the pdbridge objects in {folder} (search path in {PDSETTINGS})"


def check_autostart() -> tuple[str, str]:
    folder = registered_folder()
    plugin = folder / "pdbridge-plugin.tcl" if folder else None
    if plugin is None or not plugin.exists():
        return BAD, ("no pdbridge GUI plugin on Pd's search path, so no hub starts with Pd: run "
                     "install/install.sh (or start one yourself: pdbridge serve)")
    fields = read_ticket(ticket_path(DEFAULT_PD_PORT))
    running = f"a hub is running now (pid {fields.get('pid')})" if fields.get("state") == "up" else \
        "no hub is running now; Pd's GUI starts one"
    return OK, f"hub starts with Pd's GUI ({plugin}); {running}"


def check_launcher() -> tuple[str, str]:
    found = shutil.which("pdbridge")
    if found is None:
        return INFO, ("pdbridge command: not on PATH (log in again after install/install.sh, or use "
                      "~/.local/bin/pdbridge)")
    return OK, f"pdbridge command: {found}"


def check_models() -> tuple[str, str]:
    folder = models_folder()
    names = sorted(Manifest.read(folder).entries)
    if not names:
        return INFO, f"models: none fetched yet into {folder} (pdbridge models list shows what can be fetched)"
    return OK, f"models in {folder}: {', '.join(names)}"


def check_env(name: str, worker: WorkerConfig) -> tuple[str, str]:
    missing = worker.missing_reason()
    if missing:
        return BAD, f"environment {name}: not installed: {env_fix(name)}"
    out = _run(worker, "import sys; print(sys.version.split()[0])")
    if out is None:
        return BAD, f"environment {name}: {worker.python} does not run: {env_fix(name)}"
    return OK, f"environment {name}: Python {out} ({_shown(worker.python)})"


def check_worker(worker: WorkerConfig) -> tuple[str, str]:
    if worker.missing_reason():
        return BAD, f"worker {worker.model}: needs the {worker.env} environment: {env_fix(worker.env)}"
    proc = subprocess.run([str(worker.python), "-c", f"import {worker.module}"], capture_output=True, text=True,
                          timeout=300, cwd=PROJECT_ROOT, env=project_env())
    if proc.returncode != 0:
        last = (proc.stderr.strip().splitlines() or ["unknown error"])[-1]
        return BAD, f"worker {worker.model}: does not import ({last}): {env_fix(worker.env)}"
    return OK, f"worker {worker.model}: imports ({worker.env} environment)"


def check_gpu() -> tuple[str, str]:
    smi = shutil.which("nvidia-smi")
    if smi:
        out = subprocess.run([smi, "-L"], capture_output=True, text=True, timeout=30)
        if out.returncode == 0 and out.stdout.strip():
            return OK, f"GPU: {out.stdout.strip().splitlines()[0]} (models use it with --device auto)"
    return INFO, "GPU: none visible; models run on the CPU"


def _as_note(result: tuple[str, str]) -> tuple[str, str]:
    return (INFO, result[1]) if result[0] == BAD else result


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
    """Print every check; 1 when any failed. The Pd-user checks (GUI, extras, search path, hub
    autostart, launcher, models) concern a student's install; a developer's checkout, which opens
    patches through `pdbridge open`, shows them as notes rather than failures."""
    config = load_config()
    envs = {w.env: w for w in config.workers.values()}
    checks = [check_pd, check_pd_gui, check_pd_extras]
    user_checks = [check_pd_path, check_autostart, check_launcher, check_models]
    checks += [lambda c=c: c() if installed() else _as_note(c()) for c in user_checks]
    checks += [lambda n=n, w=w: check_env(n, w) for n, w in sorted(envs.items())]
    checks += [lambda w=w: check_worker(w) for _, w in sorted(config.workers.items())]
    checks.append(check_gpu)
    with ThreadPoolExecutor(max_workers=4) as pool:  # importing TensorFlow takes a while: overlap
        results = list(pool.map(lambda c: c(), checks))
    for status, text in results:
        print(f"{status} {text}")
    return 1 if any(status == BAD for status, _ in results) else 0
