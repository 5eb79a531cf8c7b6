"""Every abstraction has a help patch, and every help and example patch opens in real Pd without errors."""
from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from patchfiles import canvases
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


# -- help patches and workers agree on the messages ---------------------------------------------------
MODELS = [p.stem.split(".", 1)[1] for p in ABSTRACTIONS if p.stem != "pdbridge.conn"]
PD_MESSAGES = {"cancel", "_stop"}
"""Handled by [pdbridge.conn] itself, not by a worker."""
ABSTRACTION_MESSAGES = {"melody_rnn": {"stop", "duet", "silence", "length"}}
"""Handled by a model's abstraction itself, on Pd's clock (docs/protocol.md section 3), not by its worker."""


def help_boxes(path: Path, model: str) -> tuple[set[str], str]:
    """(first words of the message boxes that reach [pdbridge.<model>], all the patch's text).

    A box reaches the object when it is wired to it directly, or through the outlet of the
    subpatch it sits in (the help patches keep groups of messages in [pd ...] subpatches)."""
    reaching: set[str] = set()
    top = canvases(path.read_text())
    target = f"pdbridge.{model}"

    def reaches(canvas, index: int, seen: set) -> bool:
        for src, outlet, dst, inlet in canvas.connections:
            if src != index or (dst, id(canvas)) in seen:
                continue
            seen.add((dst, id(canvas)))
            box = canvas.boxes[dst]
            if box.words[:1] == [target]:
                return True
            if box.words[:1] == ["outlet"] and canvas.parent is not None:
                parent, position = canvas.parent
                if reaches(parent, position, seen):
                    return True
        return False

    for canvas in top:
        for i, box in enumerate(canvas.boxes):
            if box.kind == "msg" and box.words and not box.words[0].startswith("\\;") and reaches(canvas, i, set()):
                reaching.add(box.words[0])
    return reaching, path.read_text()


def declared_messages(hub, model: str) -> set[str]:
    from pdharness import RawClient, require_worker

    require_worker(model)
    client = RawClient(hub.port, model=model, timeout=300)
    try:
        client.request("describe")
        return set(client.expect("_ok", timeout=300)[1:])
    finally:
        client.close()


@pytest.mark.parametrize("model", MODELS)
def test_help_patch_and_worker_agree_on_the_messages(model: str, hub):
    declared = declared_messages(hub, model)
    boxed, text = help_boxes(PATCH_DIR / f"pdbridge.{model}-help.pd", model)
    unknown = boxed - declared - PD_MESSAGES - ABSTRACTION_MESSAGES.get(model, set())
    assert not unknown, f"help patch sends messages the {model} worker does not declare: {sorted(unknown)}"
    missing = {name for name in declared if not re.search(rf"(^|[\s;]){re.escape(name)}(\s|\\?,|;|$)", text, re.M)}
    assert not missing, f"the {model} help patch never mentions {sorted(missing)}"
