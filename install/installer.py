"""What install/install.sh does: set pdbridge up for one user on a lab machine, or take it away.

A student runs one command and then works from Pd's own menus. So this puts everything where Pd
and the desktop look for it, for this user only (no root needed when Pd is already installed):

- Pd vanilla with its GUI and extras (apt, as root or through sudo; else it says what to ask for);
- the project's code, copied to ``$PREFIX/app`` (``~/.local/share/pdbridge``), so the clone can go;
- each environment built from its lock file into ``$PREFIX/envs`` with a Python of the version it
  needs - found on PATH, in pyenv or uv, or else obtained through uv - saying which and why, with
  CUDA builds where an NVIDIA GPU is found (install/build_env.py decides);
- the abstraction folder on Pd's search path (``~/.pdsettings``), so ``[pdbridge.gansynth]`` is
  found from any patch and Help -> Browser lists the help patches, with the GUI plugin that keeps a
  hub running while Pd runs (``pdbridge-plugin.tcl`` in that folder);
- a ``pdbridge`` launcher in ``~/.local/bin`` and a desktop entry; then ``pdbridge doctor``.

Everything added outside ``$PREFIX`` is written down in ``$PREFIX/install-manifest.json``;
``--uninstall`` takes away exactly that and ``$PREFIX``, and nothing else. A second run finds each
step done (files compared byte for byte, environments by their stamps) and changes nothing.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Optional

sys.dont_write_bytecode = True  # the student's clone stays as it was cloned (no __pycache__ from us)
ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # pdbridge.pd (finding Pd, reading its preferences) once on Python 3.11
HOME = Path.home()
DATA_HOME = Path(os.environ.get("XDG_DATA_HOME") or HOME / ".local" / "share")
INSTALLER_PYTHON = (3, 11)
"""The installer itself needs tomllib; an older system Python only finds or obtains this one."""
APP_PARTS = ("pdbridge", "pdwire", "workers", "pd_patches", "environment", "install", "docs", "README.md",
             "pyproject.toml")
"""What of the project a user install needs (not the tests, benchmarks or caches)."""
APT_PACKAGES = ("puredata-core", "puredata-gui", "puredata-extra", "python3-venv")
PLUGIN = "pdbridge-plugin.tcl"
INSTALLED = ("app", "pd", "envs", "tools", "python", "cache", "install-manifest.json")
"""What the installer makes in $PREFIX; --uninstall removes these and leaves anything else there."""
LAUNCHER_MARK = "# pdbridge launcher, written by install/install.sh"
DESKTOP_MARK = "X-pdbridge-installer=true"


def say(status: str, text: str) -> None:
    """One line per step, in doctor's style: ok / -- (nothing to do or a note) / FAIL."""
    print(f"{status:4s} {text}", flush=True)


# -- Pd -----------------------------------------------------------------------------------------

def pd_pieces() -> dict[str, Optional[Path]]:
    """Where Pd's core, its GUI (pd-gui.tcl) and its extras (the puredata-extra package) are."""
    from pdbridge.pd import find_pd, gui_and_extras

    pd = find_pd()
    gui, extra = gui_and_extras(pd) if pd else (None, None)
    return {"pd": pd, "gui": gui, "extra": extra}


def system_python_makes_venvs() -> bool:
    """Debian and Ubuntu ship python3 without ensurepip unless python3-venv is installed."""
    python3 = shutil.which("python3")
    return bool(python3) and subprocess.run([python3, "-c", "import ensurepip, venv"],
                                            capture_output=True).returncode == 0


def privileged() -> Optional[list[str]]:
    """The prefix that runs a command as root: none for root, sudo where it works, else None."""
    if os.geteuid() == 0:
        return []
    if shutil.which("sudo"):
        if subprocess.run(["sudo", "-n", "true"], capture_output=True).returncode == 0 or sys.stdin.isatty():
            return ["sudo"]
    return None


def apt_install(packages: list[str]) -> bool:
    """Install Debian/Ubuntu packages as root (or through sudo); False where that cannot be done."""
    prefix = privileged()
    if prefix is None or not shutil.which("apt-get"):
        return False
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    subprocess.run([*prefix, "apt-get", "update", "-qq"], check=False, env=env)
    return subprocess.run([*prefix, "apt-get", "install", "-y", "-qq", "--no-install-recommends", *packages],
                          env=env).returncode == 0


def ensure_pd(manifest: dict) -> bool:
    """Pd with its GUI and extras; installed with apt when missing (recorded, for --uninstall)."""
    have = pd_pieces()
    missing = [pkg for pkg, key in (("puredata-core", "pd"), ("puredata-gui", "gui"), ("puredata-extra", "extra"))
               if have[key] is None]
    if missing and not system_python_makes_venvs():
        missing.append("python3-venv")  # while apt runs anyway: lets the system Python build environments
    if not missing:
        say("ok", f"Pd at {have['pd']} with its GUI ({have['gui']}) and extras ({have['extra']})")
        return True
    if apt_install(missing):
        manifest.setdefault("apt", []).extend(p for p in missing if p not in manifest.get("apt", []))
        say("ok", f"Pd: installed {' '.join(missing)} with apt")
        return True
    say("FAIL", f"Pd: {' '.join(missing)} missing and this user cannot install packages. Ask an admin for: "
                f"sudo apt-get install {' '.join(missing)} (or run: sudo install/install.sh --system)")
    return False


# -- Python -------------------------------------------------------------------------------------

def uv_binary(prefix: Path) -> Optional[Path]:
    """uv on PATH, or the one this installer put in $PREFIX/tools; installed there when neither."""
    found = shutil.which("uv") or (str(prefix / "tools" / "bin" / "uv") if (prefix / "tools" / "bin" / "uv").exists()
                                   else None)
    if found:
        return Path(found)
    tools = prefix / "tools"
    if subprocess.run([sys.executable, "-m", "venv", str(tools)], capture_output=True).returncode == 0 and \
            subprocess.run([str(tools / "bin" / "python"), "-m", "pip", "install", "-q", "uv"]).returncode == 0:
        return tools / "bin" / "uv"
    shutil.rmtree(tools, ignore_errors=True)
    return None


def obtain_python(version: str, prefix: Path) -> tuple[Optional[Path], str]:
    """An interpreter of ``version`` that can make venvs, and how it was found or obtained."""
    import build_env

    found = build_env.find_python(version)
    if found:
        return found.path, found.how
    uv = uv_binary(prefix)
    if uv is None:
        return None, (f"no Python {version} on PATH, in pyenv or in uv, and uv could not be installed "
                      f"(pip install uv failed). Install Python {version} (e.g. sudo apt install python{version}-venv, "
                      f"or pyenv install {version}) and run install/install.sh again")
    env = dict(os.environ, UV_PYTHON_INSTALL_DIR=str(prefix / "python"))
    subprocess.run([str(uv), "python", "install", version], env=env)
    out = subprocess.run([str(uv), "python", "find", "--no-python-downloads", version], env=env,
                         capture_output=True, text=True)
    path = Path(out.stdout.strip()) if out.returncode == 0 and out.stdout.strip() else None
    if path is None or build_env.python_version_of(path) != version:
        return None, (f"no Python {version} on PATH, in pyenv or in uv, and `uv python install {version}` did not "
                      f"work (is this machine online?). Install Python {version} and run install/install.sh again")
    return path, f"none on PATH, in pyenv or uv: installed with uv into {prefix / 'python'}"


def build_envs(app: Path, prefix: Path, variant: str) -> bool:
    """Every environment of envs.toml, each with its Python and its CPU or CUDA build."""
    import build_env

    ok = True
    for name, spec in build_env.load_specs().items():
        asked = variant if "cuda_lock" in spec else "auto"  # --gpu cuda concerns the environments that have one
        chosen, why = build_env.choose_variant(asked, spec, build_env.detect_nvidia_gpu())
        if build_env.is_current(name, chosen):
            say("ok", f"environment {name}: up to date ({chosen} build: {why})")
            continue
        python, how = obtain_python(spec["python"], prefix)
        if python is None:
            say("FAIL", f"environment {name}: {how}")
            ok = False
            continue
        say("--", f"environment {name}: Python {spec['python']} at {python} ({how}); {chosen} build ({why})")
        proc = subprocess.run([sys.executable, str(app / "install" / "build_env.py"), name, "--variant", asked,
                               "--python", str(python)], env=dict(os.environ, PDBRIDGE_ENVS=str(prefix / "envs")))
        if proc.returncode != 0:
            say("FAIL", f"environment {name}: the build failed (above); run install/install.sh again to retry")
            ok = False
    return ok


# -- files ------------------------------------------------------------------------------------------

def write_if_changed(path: Path, text: str, mode: int = 0o644) -> bool:
    """Write ``text`` unless the file already holds it; whether it changed."""
    if path.exists() and path.read_text() == text:
        return False
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text)
    tmp.chmod(mode)
    tmp.replace(path)
    return True


def sync_app(app: Path, launcher: Path) -> int:
    """Copy the project's code to ``app`` (only what differs; what the project no longer has goes),
    with the GUI plugin in the abstraction folder; the number of files changed."""
    wanted: dict[Path, Path] = {}
    for part in APP_PARTS:
        src = ROOT / part
        files = [src] if src.is_file() else [p for p in src.rglob("*") if p.is_file()]
        for f in files:
            if "__pycache__" not in f.parts and f.suffix != ".pyc":
                wanted[app / f.relative_to(ROOT)] = f
    changed = 0
    for dest, src in wanted.items():
        if not dest.exists() or dest.read_bytes() != src.read_bytes():
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest)
            changed += 1
    plugin = (ROOT / "install" / PLUGIN).read_text().replace("@LAUNCHER@", str(launcher))
    changed += write_if_changed(app / "pd_patches" / PLUGIN, plugin)
    keep = set(wanted) | {app / "pd_patches" / PLUGIN}
    for path in sorted(app.rglob("*"), reverse=True):
        if path.is_file() and path not in keep and "__pycache__" not in path.parts:
            path.unlink()
            changed += 1
        elif path.is_dir() and path.name != "__pycache__" and not any(path.iterdir()):
            path.rmdir()
    return changed


def _ticket_for_pd() -> None:
    """The default port's ticket, saying ``state down`` until the first hub runs, as a stopped hub
    leaves it: [pdbridge.conn] looks every second at a ticket that exists, but only every 10 s (with
    an error in the Pd window) while there is none, so without it the very first Pd would wait."""
    from pdbridge.ticket import DEFAULT_PD_PORT, retire_ticket, ticket_path

    if not ticket_path(DEFAULT_PD_PORT).exists():
        retire_ticket(DEFAULT_PD_PORT)


def launcher_text(prefix: Path) -> str:
    """The ``pdbridge`` command: the installed code with its environments. The libraries' own caches
    and settings (Keras writes ~/.keras, matplotlib and others ~/.cache) go into the prefix, so
    what pdbridge's processes leave in the home goes with --uninstall too."""
    cache = prefix / "cache"
    return (f"#!/bin/sh\n{LAUNCHER_MARK} (removed by install.sh --uninstall)\n"
            f"export PDBRIDGE_ENVS='{prefix / 'envs'}'\n"
            f"export XDG_CACHE_HOME='{cache}' KERAS_HOME='{cache / 'keras'}' MPLCONFIGDIR='{cache / 'matplotlib'}'\n"
            f"export PYTHONPATH='{prefix / 'app'}'${{PYTHONPATH:+:$PYTHONPATH}}\n"
            f"exec '{prefix / 'envs' / 'core' / 'bin' / 'python'}' -m pdbridge \"$@\"\n")


def desktop_text(pd_folder: Path) -> str:
    pd = shutil.which("pd") or "pd"
    return ("[Desktop Entry]\nType=Application\nName=pdbridge (Pure Data)\n"
            "Comment=Pure Data with the pdbridge model objects: opens the bridge's first-sound patch\n"
            f"Exec={pd} {pd_folder / 'pdbridge.diagnostics-help.pd'}\n"
            "Icon=puredata\nTerminal=false\nCategories=AudioVideo;Audio;\n"
            f"{DESKTOP_MARK}\n")


# -- Pd's preferences -------------------------------------------------------------------------------

def _with_paths(pairs: list[tuple[str, str]], paths: list[str]) -> str:
    """The settings with their search path replaced by ``paths`` (npath + path1..pathN first)."""
    rest = [(k, v) for k, v in pairs if k != "npath" and not (k.startswith("path") and k[4:].isdigit())]
    lines = [("npath", str(len(paths)))] + [(f"path{i}", p) for i, p in enumerate(paths, 1)] + rest
    return "".join(f"{k}: {v}\n" for k, v in lines)


def register_with_pd(path: Path, folder: Path, manifest: dict) -> bool:
    """Add ``folder`` to Pd's search path for this user; whether it was not there yet."""
    from pdbridge.pd import read_pdsettings, search_paths

    pairs = read_pdsettings(path)
    paths = search_paths(pairs)
    if str(folder) in paths:
        return False
    manifest.setdefault("pdsettings_created", not path.exists())
    write_if_changed(path, _with_paths(pairs, paths + [str(folder)]))
    return True


def unregister_from_pd(path: Path, folder: Path, created: bool) -> None:
    """Take ``folder`` off Pd's search path, keeping every other setting (the file goes only if the
    installer made it and nothing but our path was ever added to it)."""
    from pdbridge.pd import read_pdsettings, search_paths

    pairs = read_pdsettings(path)
    paths = [p for p in search_paths(pairs) if p != str(folder)]
    text = _with_paths(pairs, paths)
    if created and text == "npath: 0\n":
        path.unlink(missing_ok=True)
    elif path.exists():
        write_if_changed(path, text)


# -- install / uninstall ----------------------------------------------------------------------------

class Layout:
    """Where a user install puts things (prefix and launcher folder overridable; ``home`` for tests)."""

    def __init__(self, prefix: Path, bin_dir: Path, home: Optional[Path] = None) -> None:
        home = home or Path.home()
        data_home = DATA_HOME if home == HOME else home / ".local" / "share"
        self.prefix = prefix
        self.app = prefix / "app"
        self.pd_folder = prefix / "pd" / "pdbridge"
        """What Pd's search path gets: a link to app/pd_patches named so that Help -> Browser lists
        the help patches under "pdbridge/" (it shows each search path folder by its name)."""
        self.envs = prefix / "envs"
        self.manifest = prefix / "install-manifest.json"
        self.launcher = bin_dir / "pdbridge"
        self.desktop = data_home / "applications" / "pdbridge.desktop"
        self.pdsettings = home / ".pdsettings"  # as pdbridge.pd.PDSETTINGS, for this home
        self.state = home / ".local" / "state" / "pdbridge"
        self.home = home

    def read_manifest(self) -> dict:
        try:
            return json.loads(self.manifest.read_text())
        except (OSError, ValueError):
            return {}

    def write_manifest(self, manifest: dict) -> None:
        write_if_changed(self.manifest, json.dumps(manifest, indent=1, sort_keys=True) + "\n")


def note_new_folders(manifest: dict, home: Path, *paths: Path) -> None:
    """Record the folders (up to ``home``) that are about to be made for ``paths``, so that
    --uninstall removes those it made (when empty) and no folder that was there before."""
    made = manifest.setdefault("made_folders", [])
    for path in paths:
        for folder in [path, *path.parents]:
            if folder == home or home not in folder.parents or folder.exists():
                break
            if str(folder) not in made:
                made.append(str(folder))


def install(layout: Layout, variant: str, run_doctor: bool) -> int:
    manifest = layout.read_manifest()
    note_new_folders(manifest, layout.home, layout.prefix, layout.launcher.parent, layout.desktop.parent,
                     layout.state)
    ok = ensure_pd(manifest)
    layout.prefix.mkdir(parents=True, exist_ok=True)
    layout.write_manifest(manifest)
    changed = sync_app(layout.app, layout.launcher)
    say("ok", f"pdbridge code in {layout.app} ({changed} file(s) updated)" if changed else
        f"pdbridge code in {layout.app}: up to date")
    os.environ["PDBRIDGE_ENVS"] = str(layout.envs)  # read by build_env at import
    sys.path.insert(0, str(layout.app / "install"))
    ok = build_envs(layout.app, layout.prefix, variant) and ok
    folder = layout.pd_folder
    if not folder.is_symlink():
        folder.parent.mkdir(parents=True, exist_ok=True)
        folder.symlink_to(layout.app / "pd_patches")
    added = register_with_pd(layout.pdsettings, folder, manifest)
    say("ok", f"Pd's search path ({layout.pdsettings}) {'now has' if added else 'has'} {folder}: "
              "[pdbridge.*] objects are found from any patch, the help patches are in Help -> Browser, "
              "and the hub starts with Pd's GUI")
    _ticket_for_pd()
    wrote = write_if_changed(layout.launcher, launcher_text(layout.prefix), 0o755)
    say("ok", f"launcher {layout.launcher}{' written' if wrote else ''}")
    if str(layout.launcher.parent) not in os.environ.get("PATH", "").split(os.pathsep):
        say("--", f"{layout.launcher.parent} is not on your PATH: log in again, or run {layout.launcher} directly")
    wrote = write_if_changed(layout.desktop, desktop_text(layout.pd_folder))
    say("ok", f"desktop entry {layout.desktop}{' written' if wrote else ''}")
    manifest.update(launcher=str(layout.launcher), desktop=str(layout.desktop), pdsettings=str(layout.pdsettings),
                    registered=str(folder))
    layout.write_manifest(manifest)
    if not ok:
        say("FAIL", "pdbridge is not completely installed: see the FAIL lines above, then run install/install.sh again")
        return 1
    if run_doctor:
        print("\n$ pdbridge doctor", flush=True)
        return subprocess.run([str(layout.launcher), "doctor"]).returncode
    return 0


def uninstall(layout: Layout) -> int:
    """Remove what the installer added, found through its manifest; nothing else."""
    manifest = layout.read_manifest()
    if not manifest:
        say("--", f"nothing to remove: no pdbridge install in {layout.prefix}")
        return 0
    launcher = Path(manifest.get("launcher", layout.launcher))
    if launcher.exists() and LAUNCHER_MARK in launcher.read_text(errors="replace"):
        launcher.unlink()
    desktop = Path(manifest.get("desktop", layout.desktop))
    if desktop.exists() and DESKTOP_MARK in desktop.read_text(errors="replace"):
        desktop.unlink()
    if "registered" in manifest:
        unregister_from_pd(Path(manifest["pdsettings"]), Path(manifest["registered"]),
                           bool(manifest.get("pdsettings_created")))
    for name in INSTALLED:
        path = layout.prefix / name
        if path.is_dir():
            shutil.rmtree(path)
        else:
            path.unlink(missing_ok=True)
    for child in layout.prefix.iterdir():
        if child.is_dir() and not any(child.iterdir()):
            child.rmdir()  # e.g. a models folder whose downloads were all removed
    kept = sorted(layout.prefix.iterdir())
    if not kept:
        layout.prefix.rmdir()
    _remove_runtime_state(layout.state)
    for folder in sorted(manifest.get("made_folders", []), key=len, reverse=True):
        try:
            Path(folder).rmdir()  # only when empty: what someone else put there stays
        except OSError:
            pass
    say("ok", f"removed pdbridge from {layout.prefix}, {launcher}, {desktop} and Pd's search path")
    for path in kept:
        say("--", f"kept {path}: not the installer's (models you fetched, your files); rm -r it to delete it")
    if manifest.get("apt"):
        packages = " ".join(manifest["apt"])
        if privileged() == [] and subprocess.run(["apt-get", "remove", "-y", "-qq", *manifest["apt"]]).returncode == 0:
            say("ok", f"removed the packages the installer added: {packages}")
        else:
            say("--", f"the installer also added {packages}: sudo apt-get remove {packages}")
    return 0


def _remove_runtime_state(state: Path) -> None:
    """Tickets, keeper files and logs that running pdbridge left; jobs (training runs) are kept."""
    if not state.is_dir():
        return
    for path in state.iterdir():
        if path.name.startswith(("hub-", "autostart-")):
            path.unlink()
        elif path.name == "logs":
            shutil.rmtree(path)
    jobs = state / "jobs"
    if jobs.is_dir() and not any(jobs.iterdir()):
        jobs.rmdir()
    if not any(state.iterdir()):
        state.rmdir()


def system_packages() -> int:
    """``--system``: only the packages (for an admin preparing lab machines)."""
    have = pd_pieces()
    if all(have.values()) and shutil.which("python3"):
        say("ok", "Pd with its GUI and extras is installed")
        return 0
    if apt_install(list(APT_PACKAGES)):
        say("ok", f"installed {' '.join(APT_PACKAGES)}")
        return 0
    say("FAIL", f"could not install {' '.join(APT_PACKAGES)} (run as root, on Debian or Ubuntu)")
    return 1


def reexec_with_python_311() -> None:
    """Run this installer again with a Python that has tomllib (3.11), found or obtained."""
    sys.path.insert(0, str(ROOT / "install"))
    prefix = Path(os.environ.get("PDBRIDGE_PREFIX") or DATA_HOME / "pdbridge")
    python, how = obtain_python("%d.%d" % INSTALLER_PYTHON, prefix)
    if python is None:
        sys.exit(f"install.sh: {how}")
    say("--", f"the installer runs with Python 3.11 at {python} ({how})")
    os.execv(str(python), [str(python), __file__, *sys.argv[1:]])


def main(argv: Optional[list[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="install.sh", description="Install pdbridge for this user (or remove it).")
    parser.add_argument("--uninstall", action="store_true", help="remove everything the installer added")
    parser.add_argument("--system", action="store_true",
                        help="as root: only install the system packages (Pd with GUI and extras, python3-venv)")
    parser.add_argument("--gpu", choices=("auto", "cpu", "cuda"), default=os.environ.get("PDBRIDGE_GPU", "auto"),
                        help="CUDA or CPU builds of torch/TensorFlow (default: auto, CUDA where an NVIDIA GPU is found)")
    parser.add_argument("--prefix", type=Path, default=Path(os.environ.get("PDBRIDGE_PREFIX") or DATA_HOME / "pdbridge"),
                        help="where pdbridge goes (default ~/.local/share/pdbridge)")
    parser.add_argument("--bin-dir", type=Path, default=HOME / ".local" / "bin", help="where the launcher goes")
    parser.add_argument("--no-doctor", action="store_true", help="skip pdbridge doctor at the end")
    args = parser.parse_args(argv)
    if args.system:
        return system_packages()
    layout = Layout(args.prefix.expanduser().resolve(), args.bin_dir.expanduser())
    if args.uninstall:
        return uninstall(layout)
    return install(layout, args.gpu, not args.no_doctor)


if __name__ == "__main__":
    if sys.version_info < INSTALLER_PYTHON:
        reexec_with_python_311()
    sys.exit(main())
