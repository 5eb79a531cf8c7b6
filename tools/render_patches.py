#!/usr/bin/env python3
"""Screenshots of Pd patches as a person sees them: each patch opened in the real Pd GUI under Xvfb.

    python3 tools/render_patches.py [PATCH ...] [--out DIR]

Without PATCH, every help patch and example patch under pd_patches/ (demo patches included). For
each patch it writes DIR/<name>.png (the patch window at its saved size) and DIR/<name>--<sub>.png
for each named subpatch ([pd reference] ...), opened on its own with the main window hidden.
DIR is .cache/screenshots/ by default.

Pd runs with -noloadbang: patches are looked at, not run, so no hub is needed and the demo patches
do not start (and quit) by themselves. Needs Xvfb, xwininfo and ImageMagick's import
(apt-get install puredata-gui xvfb imagemagick x11-utils). Standard library only.
"""
from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Optional

ROOT = Path(__file__).resolve().parent.parent
PATCH_DIR = ROOT / "pd_patches"
DEFAULT_OUT = ROOT / ".cache" / "screenshots"
SCREEN = "1600x1200x24"
PD_FLAGS = ("-nosound", "-nomidi", "-nrt", "-noprefs", "-noloadbang", "-path", str(PATCH_DIR))
WINDOW_TIMEOUT_S = 20.0
STABLE_AFTER_S = 0.4
SUBPATCH = re.compile(r"^#X restore -?\d+ -?\d+ pd (\S+?);?$")


def default_patches() -> list[Path]:
    helps = sorted(PATCH_DIR.glob("*-help.pd"))
    examples = sorted(PATCH_DIR.glob("examples/*.pd")) + sorted(PATCH_DIR.glob("examples/demo/*.pd"))
    return helps + examples


def subpatch_names(patch: Path) -> list[str]:
    """Names of the [pd NAME] subpatches in a patch file, in file order, each once."""
    names: list[str] = []
    for line in patch.read_text().splitlines():
        match = SUBPATCH.match(line.strip())
        if match and match.group(1) not in names:
            names.append(match.group(1))
    return names


def shot_name(patch: Path) -> str:
    """demo patches share names with the examples: examples/demo/rave.pd -> demo-rave."""
    rel = patch.resolve().relative_to(PATCH_DIR) if patch.resolve().is_relative_to(PATCH_DIR) else Path(patch.name)
    parts = [p for p in rel.with_suffix("").parts if p != "examples"]
    return "-".join(parts)


class Display:
    """One Xvfb server for the whole run, on a display number it picks itself."""

    def __init__(self) -> None:
        if not shutil.which("Xvfb"):
            sys.exit("Xvfb not found: apt-get install xvfb")
        read_fd, write_fd = os.pipe()
        self.proc = subprocess.Popen(
            ["Xvfb", "-displayfd", str(write_fd), "-screen", "0", SCREEN, "-nolisten", "tcp"],
            pass_fds=(write_fd,), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        os.close(write_fd)
        with os.fdopen(read_fd) as pipe:
            number = pipe.readline().strip()
        if not number:
            self.proc.kill()
            sys.exit("Xvfb did not start")
        self.name = f":{number}"

    def close(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=10)


def find_window(display: str, title_start: str) -> Optional[str]:
    """The id of a mapped top-level window whose title starts with title_start."""
    out = subprocess.run(["xwininfo", "-root", "-children"], capture_output=True, text=True,
                         env={**os.environ, "DISPLAY": display}).stdout
    for line in out.splitlines():
        match = re.match(r'\s*(0x[0-9a-f]+) "(.*)":', line)
        if match and match.group(2).startswith(title_start):
            info = subprocess.run(["xwininfo", "-id", match.group(1)], capture_output=True, text=True,
                                  env={**os.environ, "DISPLAY": display}).stdout
            if "IsViewable" in info:
                return match.group(1)
    return None


def capture(display: str, window: str) -> bytes:
    return subprocess.run(["import", "-display", display, "-window", window, "png:-"],
                          capture_output=True, check=True).stdout


def screenshot(display: str, patch: Path, title: str, out: Path, sends: str = "") -> bool:
    """Open patch in a fresh Pd, wait for the window titled title..., save it once it stops changing."""
    cmd = ["pd", *PD_FLAGS]
    if sends:
        cmd += ["-send", sends]
    cmd += ["-open", str(patch)]
    pd = subprocess.Popen(cmd, env={**os.environ, "DISPLAY": display}, stdout=subprocess.DEVNULL,
                          stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        deadline = time.monotonic() + WINDOW_TIMEOUT_S
        window = None
        while window is None and time.monotonic() < deadline and pd.poll() is None:
            time.sleep(0.1)
            window = find_window(display, title)
        if window is None:
            print(f"  no window {title!r} for {patch}", file=sys.stderr)
            return False
        previous = b""
        while time.monotonic() < deadline:
            time.sleep(STABLE_AFTER_S)
            image = capture(display, window)
            if image == previous:
                out.write_bytes(image)
                return True
            previous = image
        out.write_bytes(previous)
        print(f"  {out.name}: window still changing after {WINDOW_TIMEOUT_S:.0f} s", file=sys.stderr)
        return True
    finally:
        try:
            os.killpg(pd.pid, 15)  # Pd, its GUI (wish) and its watchdog
        except ProcessLookupError:
            pass
        pd.wait(timeout=10)


def render(display: str, patch: Path, out_dir: Path) -> list[Path]:
    """PNG of the patch and of each of its named subpatches."""
    patch = patch.resolve()
    name = shot_name(patch)
    written = []
    target = out_dir / f"{name}.png"
    if screenshot(display, patch, f"{patch.name}  - ", target):
        written.append(target)
    for sub in subpatch_names(patch):
        target = out_dir / f"{name}--{sub}.png"
        # Hide the main window so it cannot cover the subpatch's window.
        sends = f"pd-{patch.name} vis 0; pd-{sub} vis 1"
        if screenshot(display, patch, f"{sub}  - ", target, sends):
            written.append(target)
    return written


def main(argv: Optional[list[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("patches", nargs="*", type=Path, help="patches (default: every help and example patch)")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help=f"folder for the PNGs (default {DEFAULT_OUT})")
    args = parser.parse_args(argv)
    for tool in ("pd", "xwininfo", "import"):
        if not shutil.which(tool):
            sys.exit(f"{tool} not found: apt-get install puredata-gui xvfb imagemagick x11-utils")
    patches = args.patches or default_patches()
    args.out.mkdir(parents=True, exist_ok=True)
    display = Display()
    failures = 0
    try:
        for patch in patches:
            shots = render(display.name, patch, args.out)
            expected = 1 + len(subpatch_names(patch))
            failures += expected - len(shots)
            for shot in shots:
                print(shot.relative_to(ROOT) if shot.resolve().is_relative_to(ROOT) else shot)
    finally:
        display.close()
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
