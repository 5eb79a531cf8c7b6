"""Every abstraction has a help patch, and every help and example patch opens in real Pd without errors."""
from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from pdbridge.pd import HEADLESS_FLAGS, PATCH_DIR, find_pd

ABSTRACTIONS = sorted(p for p in PATCH_DIR.glob("*.pd") if not p.name.endswith("-help.pd"))
EXAMPLES = sorted(PATCH_DIR.glob("examples/*.pd"))


def opens_cleanly(patch: Path, hub_port: int) -> None:
    cmd = [str(find_pd()), *HEADLESS_FLAGS, "-path", str(PATCH_DIR), "-open", str(patch),
           "-send", f"pdbridge-port {hub_port}; pd quit"]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    console = out.stdout + out.stderr
    assert out.returncode == 0, console
    assert "couldn't create" not in console and "error" not in console, console


@pytest.mark.parametrize("abstraction", ABSTRACTIONS, ids=lambda p: p.stem)
def test_help_patch_exists_and_opens_cleanly(abstraction: Path, hub):
    help_patch = abstraction.with_name(abstraction.stem + "-help.pd")
    assert help_patch.exists(), f"{abstraction.name} has no help patch"
    opens_cleanly(help_patch, hub.port)


@pytest.mark.parametrize("example", EXAMPLES, ids=lambda p: p.stem)
def test_example_patch_opens_cleanly(example: Path, hub):
    opens_cleanly(example, hub.port)
