"""Build one pdbridge environment into .cache/envs/<name> from environment/envs.toml.

Each model family needs its own Python and its own pins (TensorFlow 2.15 on Python 3.10, torch
2.13 on Python 3.11), so each gets a venv built from a fully pinned lock file. The build is
skipped when nothing it depends on changed (a stamp holds their hash), done in a scratch folder
and moved into place only when it worked, so an interrupted build never leaves a broken env.

Usage: python install/build_env.py NAME [--force]
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
from typing import Callable, Optional

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib  # type: ignore[no-redef]

ROOT = Path(__file__).resolve().parent.parent
ENV_DIR = ROOT / "environment"
CACHE = Path(os.environ.get("PDBRIDGE_ENVS", ROOT / ".cache" / "envs"))
STAMP = ".pdbridge-stamp"


def find_python(version: str) -> Optional[Path]:
    """An interpreter of ``version`` (e.g. "3.10"): on PATH, from pyenv, or from uv; None if none."""
    candidates: list[str] = []
    found = shutil.which(f"python{version}")
    if found:
        candidates.append(found)
    if shutil.which("pyenv"):
        out = subprocess.run(["pyenv", "versions", "--bare"], capture_output=True, text=True).stdout.split()
        root = subprocess.run(["pyenv", "root"], capture_output=True, text=True).stdout.strip()
        for v in sorted((v for v in out if re.fullmatch(re.escape(version) + r"\.\d+", v)), reverse=True):
            candidates.append(os.path.join(root, "versions", v, "bin", "python"))
    if shutil.which("uv"):
        out = subprocess.run(["uv", "python", "find", version], capture_output=True, text=True)
        if out.returncode == 0 and out.stdout.strip():
            candidates.append(out.stdout.strip())
    for cand in candidates:
        try:
            real = subprocess.run([cand, "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
                                  capture_output=True, text=True, timeout=30).stdout.strip()
        except (OSError, subprocess.TimeoutExpired):
            continue
        if real == version:
            return Path(cand)
    return None


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


def stamp_of(name: str, spec: dict) -> str:
    h = hashlib.sha256(json.dumps(spec, sort_keys=True).encode())
    h.update((ENV_DIR / spec["lock"]).read_bytes())
    h.update(Path(__file__).read_bytes())
    return h.hexdigest()


def build(name: str, force: bool = False) -> Path:
    with open(ENV_DIR / "envs.toml", "rb") as f:
        specs = tomllib.load(f)
    if name not in specs:
        sys.exit(f"build_env: unknown environment {name!r} (known: {', '.join(specs)})")
    spec = specs[name]
    target = CACHE / name
    stamp = stamp_of(name, spec)
    if not force and (target / STAMP).exists() and (target / STAMP).read_text().strip() == stamp:
        print(f"environment {name}: up to date ({target})")
        return target
    python = find_python(spec["python"])
    if python is None:
        sys.exit(f"build_env: no Python {spec['python']} found for the {name} environment. Install it "
                 f"(e.g. `pyenv install {spec['python']}` or `uv python install {spec['python']}`) and run "
                 f"`make env-{name}` again.")
    scratch = CACHE / f".{name}.building"
    shutil.rmtree(scratch, ignore_errors=True)
    CACHE.mkdir(parents=True, exist_ok=True)
    print(f"environment {name}: building with {python} into {target}", flush=True)
    subprocess.run([str(python), "-m", "venv", str(scratch)], check=True)
    venv_python = scratch / "bin" / "python"
    pip = [str(venv_python), "-m", "pip", "--disable-pip-version-check", "install", "--quiet"]
    subprocess.run([*pip, "--no-deps", "-r", str(ENV_DIR / spec["lock"])], check=True)
    for fixup in spec.get("fixups", []):
        FIXUPS[fixup](venv_python)
    subprocess.run([str(venv_python), "-c", "import zmq, numpy, soundfile"], check=True)
    shutil.rmtree(target, ignore_errors=True)
    scratch.rename(target)
    _repoint_scripts(scratch, target)
    (target / STAMP).write_text(stamp + "\n")
    print(f"environment {name}: ready", flush=True)
    return target


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
    args = parser.parse_args()
    build(args.name, args.force)


if __name__ == "__main__":
    main()
