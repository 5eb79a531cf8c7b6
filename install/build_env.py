"""Build one pdbridge environment into .cache/envs/<name> from environment/envs.toml.

Each model family needs its own Python and its own pins (TensorFlow 2.15 on Python 3.10, torch
2.13 on Python 3.11), so each gets a venv built from a fully pinned lock file. The build is
skipped when nothing it depends on changed (a stamp holds their hash), done in a scratch folder
and moved into place only when it worked, so an interrupted build never leaves a broken env.

An environment may have a CUDA variant (``cuda_lock`` in envs.toml, an overlay on the CPU lock):
it is chosen where an NVIDIA GPU with a new enough driver is found, so a lab machine with a GPU gets
GPU builds of torch/TensorFlow and every other machine the smaller CPU builds.

Usage: python install/build_env.py NAME [--force] [--variant auto|cpu|cuda] [--python PATH]
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from dataclasses import dataclass
from typing import Callable, Optional

ROOT = Path(__file__).resolve().parent.parent
ENV_DIR = ROOT / "environment"
CACHE = Path(os.environ.get("PDBRIDGE_ENVS", ROOT / ".cache" / "envs"))
STAMP = ".pdbridge-stamp"
RECIPE = 2
"""How environments are built (venv, pip --no-deps, fixups, import check). Bump it when that changes:
it is in every stamp, so the next run rebuilds. The stamp does not hash this file itself, so a change
to the installer that builds the same thing does not cost every user a 5 GB rebuild."""


@dataclass(frozen=True)
class FoundPython:
    """An interpreter and how it was found, so the installer can say what it used and why."""
    path: Path
    how: str


def python_candidates(version: str) -> list[FoundPython]:
    """Where an interpreter of ``version`` may be, in the order they are preferred: PATH (what the
    machine's admin installed), then pyenv, then uv's managed Pythons."""
    candidates: list[FoundPython] = []
    found = shutil.which(f"python{version}")
    if found:
        candidates.append(FoundPython(Path(found), f"python{version} on PATH"))
    if shutil.which("pyenv"):
        out = subprocess.run(["pyenv", "versions", "--bare"], capture_output=True, text=True).stdout.split()
        root = subprocess.run(["pyenv", "root"], capture_output=True, text=True).stdout.strip()
        for v in sorted((v for v in out if re.fullmatch(re.escape(version) + r"\.\d+", v)), reverse=True):
            candidates.append(FoundPython(Path(root, "versions", v, "bin", "python"), f"pyenv's {v}"))
    if shutil.which("uv"):
        out = subprocess.run(["uv", "python", "find", "--no-python-downloads", version],
                             capture_output=True, text=True)
        if out.returncode == 0 and out.stdout.strip():
            candidates.append(FoundPython(Path(out.stdout.strip()), "uv's managed Python"))
    return candidates


def python_version_of(python: Path) -> Optional[str]:
    """"3.10" for an interpreter that runs and can make venvs; None for one that does not (a stale
    pyenv shim, or Debian's python3 without the python3-venv package, which lacks ensurepip)."""
    try:
        return subprocess.run([str(python), "-c", "import sys, ensurepip, venv; print('%d.%d' % sys.version_info[:2])"],
                              capture_output=True, text=True, timeout=30).stdout.strip() or None
    except (OSError, subprocess.TimeoutExpired):
        return None


def find_python(version: str) -> Optional[FoundPython]:
    """An interpreter of ``version`` (e.g. "3.10"): on PATH, from pyenv, or from uv; None if none."""
    for cand in python_candidates(version):
        if python_version_of(cand.path) == version:
            return cand
    return None


@dataclass(frozen=True)
class Gpu:
    """What the NVIDIA driver reports: the first card's name and the driver's major version."""
    name: str
    driver: int


def detect_nvidia_gpu() -> Optional[Gpu]:
    """The machine's NVIDIA GPU, from nvidia-smi or the kernel driver; None without one.

    The driver, not a toolkit, decides: PyPI's CUDA wheels carry their own CUDA libraries and need
    only a driver new enough for them (``cuda_driver`` in envs.toml).
    """
    smi = shutil.which("nvidia-smi")
    if smi:
        try:
            out = subprocess.run([smi, "--query-gpu=name,driver_version", "--format=csv,noheader"],
                                 capture_output=True, text=True, timeout=30)
        except (OSError, subprocess.TimeoutExpired):
            out = None
        if out is not None and out.returncode == 0 and out.stdout.strip():
            name, _, driver = out.stdout.strip().splitlines()[0].rpartition(",")
            match = re.match(r"\s*(\d+)", driver)
            if match:
                return Gpu(name.strip(), int(match.group(1)))
    try:
        text = Path("/proc/driver/nvidia/version").read_text()
    except OSError:
        return None
    match = re.search(r"Kernel Module\s+(?:for \S+\s+)?(\d+)\.", text)
    return Gpu("NVIDIA GPU", int(match.group(1))) if match else None


VARIANTS = ("auto", "cpu", "cuda")


def choose_variant(requested: str, spec: dict, gpu: Optional[Gpu]) -> tuple[str, str]:
    """("cpu" or "cuda", why) for an environment: CUDA builds only where the environment has a CUDA
    variant and a GPU whose driver can run it; asking for cuda where that cannot work is an error."""
    if requested not in VARIANTS:
        raise ValueError(f"variant must be one of {', '.join(VARIANTS)}, got {requested!r}")
    has_cuda = "cuda_lock" in spec
    need = int(spec.get("cuda_driver", 0))
    if requested == "cpu":
        return "cpu", "CPU build asked for"
    if not has_cuda:
        if requested == "cuda":
            raise ValueError("this environment has no CUDA variant (it runs on the CPU only)")
        return "cpu", "CPU only: nothing in this environment uses a GPU"
    if gpu is None:
        if requested == "cuda":
            return "cuda", "CUDA build asked for (no NVIDIA GPU found on this machine)"
        return "cpu", "no NVIDIA GPU found"
    if gpu.driver < need:
        if requested == "cuda":
            return "cuda", f"CUDA build asked for ({gpu.name}: driver {gpu.driver} is older than the {need} it needs)"
        return "cpu", f"{gpu.name} found, but its driver {gpu.driver} is older than the {need} the CUDA build needs"
    return "cuda", f"{gpu.name} found (driver {gpu.driver})"


def _package(line: str) -> Optional[str]:
    """The normalised package name of a requirement line; None for comments and blank lines."""
    line = line.split("#", 1)[0].strip()
    match = re.match(r"([A-Za-z0-9][A-Za-z0-9._-]*)", line)
    return re.sub(r"[-_.]+", "-", match.group(1)).lower() if match else None


def requirements(spec: dict, variant: str) -> list[str]:
    """The pinned lines pip installs: the lock, with the CUDA overlay's lines replacing the lock's
    line for the same package (torch+cpu -> torch) and adding the rest (the CUDA libraries)."""
    lines = [ln.strip() for ln in (ENV_DIR / spec["lock"]).read_text().splitlines() if _package(ln)]
    if variant != "cuda":
        return lines
    overlay = [ln.strip() for ln in (ENV_DIR / spec["cuda_lock"]).read_text().splitlines() if _package(ln)]
    replaced = {_package(ln) for ln in overlay}
    return [ln for ln in lines if _package(ln) not in replaced] + overlay


def reachable(url: str, timeout: float = 10.0) -> bool:
    """Whether an index answers at all: pip retries an unreachable index for every package it
    looks up (minutes), so one that cannot be reached is left out instead."""
    import urllib.request

    try:
        with urllib.request.urlopen(urllib.request.Request(url, method="HEAD"), timeout=timeout):
            return True
    except OSError as exc:
        return getattr(exc, "code", None) is not None  # an HTTP error status: it is there


def pip_index_args(spec: dict, variant: str, can_reach: Callable[[str], bool] = reachable) -> list[str]:
    """Extra indexes the variant's pins come from (PyTorch's CPU wheels are not on PyPI); one that
    cannot be reached is left out with a note (pip's own configuration may still hold the wheels)."""
    args = []
    for url in spec.get(f"{variant}_indexes", []):
        if can_reach(url):
            args += ["--extra-index-url", url]
        else:
            print(f"note: {url} cannot be reached; pip looks for its pins in its configured indexes", flush=True)
    return args


def strip_torchaudio_cuda(python: Path) -> None:
    """PyPI's torchaudio is a CUDA build whose .so files cannot load next to CPU torch; without them
    torchaudio runs its pure-PyTorch code (transforms, resample), which is all RAVE uses."""
    site = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                          capture_output=True, text=True, check=True).stdout.strip()
    lib = Path(site) / "torchaudio" / "lib"
    if not (Path(site) / "torchaudio").exists():
        return
    for so in lib.glob("*.so"):
        so.unlink()


FIXUPS: dict[str, Callable[[Path], None]] = {"strip-torchaudio-cuda": strip_torchaudio_cuda}


def load_specs() -> dict[str, dict]:
    """environment/envs.toml: each environment's Python version, lock, variants and fixups.

    tomllib is imported here, not at the top, so that install/installer.py can import this module on
    an older system Python (3.8) to find or obtain the 3.11 it then re-runs itself with."""
    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10
        import tomli as tomllib  # type: ignore[no-redef]
    with open(ENV_DIR / "envs.toml", "rb") as f:
        return tomllib.load(f)


def stamp_of(spec: dict, variant: str) -> str:
    """What the built environment depends on: its spec, the pins it got and the recipe."""
    h = hashlib.sha256(json.dumps([spec, variant, RECIPE], sort_keys=True).encode())
    h.update("\n".join(requirements(spec, variant)).encode())
    return h.hexdigest()


def is_current(name: str, variant: str) -> bool:
    """Whether .cache/envs/<name> was built from exactly what it would be built from now."""
    stamp = CACHE / name / STAMP
    return stamp.exists() and stamp.read_text().strip() == stamp_of(load_specs()[name], variant)


def build(name: str, force: bool = False, variant: str = "auto", python: Optional[Path] = None) -> Path:
    specs = load_specs()
    if name not in specs:
        sys.exit(f"build_env: unknown environment {name!r} (known: {', '.join(specs)})")
    spec = specs[name]
    target = CACHE / name
    try:
        chosen, why = choose_variant(variant, spec, detect_nvidia_gpu() if variant == "auto" else None)
    except ValueError as exc:
        sys.exit(f"build_env: {name}: {exc}")
    stamp = stamp_of(spec, chosen)
    if not force and (target / STAMP).exists() and (target / STAMP).read_text().strip() == stamp:
        print(f"environment {name}: up to date ({target}, {chosen} build)")
        return target
    found = FoundPython(python, "given with --python") if python else find_python(spec["python"])
    if found is None:
        sys.exit(f"build_env: no Python {spec['python']} found for the {name} environment. Install it "
                 f"(e.g. `pyenv install {spec['python']}` or `uv python install {spec['python']}`) and run "
                 f"`make env-{name}` again.")
    scratch = CACHE / f".{name}.building"
    shutil.rmtree(scratch, ignore_errors=True)
    CACHE.mkdir(parents=True, exist_ok=True)
    print(f"environment {name}: building a {chosen} build ({why}) with Python {spec['python']} at "
          f"{found.path} ({found.how}) into {target}", flush=True)
    try:
        _make_venv(found.path, scratch, spec, chosen)
    except subprocess.CalledProcessError as exc:
        shutil.rmtree(scratch, ignore_errors=True)  # a failed build leaves nothing half-made behind
        sys.exit(f"build_env: building the {name} environment failed ({exc}); the output above says why")
    shutil.rmtree(target, ignore_errors=True)
    scratch.rename(target)
    _repoint_scripts(scratch, target)
    (target / STAMP).write_text(stamp + "\n")
    print(f"environment {name}: ready", flush=True)
    return target


def _make_venv(python: Path, scratch: Path, spec: dict, variant: str) -> None:
    """The venv in ``scratch``: the variant's pins with pip --no-deps, the fixups, an import check."""
    subprocess.run([str(python), "-m", "venv", str(scratch)], check=True)
    venv_python = scratch / "bin" / "python"
    pins = scratch / "requirements.txt"
    pins.write_text("\n".join(requirements(spec, variant)) + "\n")
    pip = [str(venv_python), "-m", "pip", "--disable-pip-version-check", "install", "--quiet"]
    subprocess.run([*pip, "--no-deps", *pip_index_args(spec, variant), "-r", str(pins)], check=True)
    for fixup in spec.get("fixups", []):
        FIXUPS[fixup](venv_python)
    subprocess.run([str(venv_python), "-c", "import zmq, numpy, soundfile"], check=True)


def _repoint_scripts(old: Path, new: Path) -> None:
    """A venv records its own path in activate scripts and shebangs: fix them after the move."""
    for script in (new / "bin").iterdir():
        if script.is_file() and not script.is_symlink():
            try:
                text = script.read_text()
            except UnicodeDecodeError:
                continue
            if str(old) in text:
                script.write_text(text.replace(str(old), str(new)))
    cfg = new / "pyvenv.cfg"
    cfg.write_text(cfg.read_text().replace(str(old), str(new)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("name")
    parser.add_argument("--force", action="store_true", help="rebuild even if up to date")
    parser.add_argument("--variant", choices=VARIANTS, default=os.environ.get("PDBRIDGE_GPU", "auto"),
                        help="cuda: GPU builds of torch/TensorFlow; cpu: CPU builds; auto (default, or "
                             "$PDBRIDGE_GPU): cuda where an NVIDIA GPU with a new enough driver is found")
    parser.add_argument("--python", type=Path, help="the interpreter to build with (default: found by version)")
    args = parser.parse_args()
    build(args.name, args.force, args.variant, args.python)


if __name__ == "__main__":
    main()
