"""Every abstraction has a help patch, and every help patch opens in real Pd without errors."""
from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from pdbridge.pd import HEADLESS_FLAGS, PATCH_DIR, find_pd

ABSTRACTIONS = sorted(p for p in PATCH_DIR.glob("*.pd") if not p.name.endswith("-help.pd"))


@pytest.mark.parametrize("abstraction", ABSTRACTIONS, ids=lambda p: p.stem)
def test_help_patch_exists_and_opens_cleanly(abstraction: Path, hub):
    help_patch = abstraction.with_name(abstraction.stem + "-help.pd")
    assert help_patch.exists(), f"{abstraction.name} has no help patch"
    pd = find_pd()
    cmd = [str(pd), *HEADLESS_FLAGS, "-path", str(PATCH_DIR), "-open", str(help_patch),
           "-send", f"pdbridge-port {hub.port}; pd quit"]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    console = out.stdout + out.stderr
    assert out.returncode == 0, console
    assert "couldn't create" not in console and "error" not in console, console
