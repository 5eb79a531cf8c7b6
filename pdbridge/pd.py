"""Finding Pure Data and starting it with the pdbridge abstractions on its path."""
from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Optional, Sequence

from .config import PROJECT_ROOT

PATCH_DIR = PROJECT_ROOT / "pd_patches"
HEADLESS_FLAGS = ("-nogui", "-nosound", "-nomidi", "-nrt", "-noprefs", "-stderr")
"""Never -batch: in batch mode Pd does not service sockets (docs/architecture.md)."""
MIN_VERSION = (0, 51)
FAST_REPLIES = ("-sleepgrain", "1")
"""Pd reads its sockets once per sleepgrain (5 ms by default without audio): 1 ms gets a model's
reply into the patch up to 4 ms sooner per exchange, for about 2 % of a core while Pd is idle."""


def find_pd() -> Optional[Path]:
    """$PDBRIDGE_PD, else ``pd`` or ``puredata`` on PATH."""
    explicit = os.environ.get("PDBRIDGE_PD")
    if explicit:
        return Path(explicit) if Path(explicit).exists() else None
    for name in ("pd", "puredata"):
        found = shutil.which(name)
        if found:
            return Path(found)
    return None


PDSETTINGS = Path.home() / ".pdsettings"
"""Where Pd on Linux keeps a user's preferences, the search path among them."""


def gui_and_extras(pd: Path) -> tuple[Optional[Path], Optional[Path]]:
    """Pd's GUI script (pd-gui.tcl, Debian's puredata-gui) and extras folder (puredata-extra) for
    the Pd at ``pd``; None for what is missing. Without the GUI, ``pd`` cannot open a patch window."""
    prefix = Path(os.path.realpath(pd)).parent.parent
    gui = extra = None
    for lib in (prefix / "lib" / "puredata", prefix / "lib" / "pd"):
        if gui is None and (lib / "tcl" / "pd-gui.tcl").exists():
            gui = lib / "tcl" / "pd-gui.tcl"
        if extra is None and (lib / "extra" / "bob~").is_dir():
            extra = lib / "extra"
    return gui, extra


def read_pdsettings(path: Path) -> list[tuple[str, str]]:
    """A ``.pdsettings`` file as (key, value) pairs in file order; empty when there is none."""
    try:
        text = path.read_text()
    except OSError:
        return []
    pairs = []
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        if sep:
            pairs.append((key.strip(), value.strip()))
    return pairs


def search_paths(pairs: list[tuple[str, str]]) -> list[str]:
    """The search path in Pd's order, read as Pd reads it: path1, path2, ... up to npath or a gap."""
    values = dict(pairs)
    try:
        limit = int(values.get("npath", "1000000"))
    except ValueError:
        limit = 0
    paths = []
    for i in range(1, limit + 1):
        if f"path{i}" not in values:
            break
        paths.append(values[f"path{i}"])
    return paths


def pd_version(pd: Path) -> Optional[tuple[int, int, int]]:
    """(0, 53, 1) from ``pd -version``; None if Pd does not run."""
    try:
        out = subprocess.run([str(pd), "-version"], capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.TimeoutExpired):
        return None
    match = re.search(r"Pd-(\d+)\.(\d+)(?:[.-](\d+))?", out.stdout + out.stderr)
    if not match:
        return None
    return int(match.group(1)), int(match.group(2)), int(match.group(3) or 0)


def pd_command(pd: Path, patch: Path, port: int, headless: bool = False, sends: Sequence[str] = (),
               extra: Sequence[str] = ()) -> list[str]:
    """Pd with pd_patches/ on its path and the hub's port sent to every [pdbridge.conn].

    ``-send`` is delivered after the patch's loadbangs, before the first clock tick, which is when
    [pdbridge.conn] connects.
    """
    cmd = [str(pd)]
    if headless:
        cmd += HEADLESS_FLAGS
    if "-sleepgrain" not in extra:
        cmd += FAST_REPLIES
    cmd += ["-path", str(PATCH_DIR), *extra]
    cmd += ["-send", "; ".join([f"pdbridge-port {port}", *sends]), "-open", str(patch)]
    return cmd
