"""Reading .pd files for the tests that look inside patches: records, and canvases of boxes and
connections."""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Optional


@dataclass
class Box:
    kind: str
    words: list[str]


@dataclass
class Canvas:
    parent: Optional[tuple["Canvas", int]] = None
    boxes: list[Box] = field(default_factory=list)
    connections: list[tuple[int, int, int, int]] = field(default_factory=list)


def records(text: str) -> list[list[str]]:
    """The patch file as records (a record ends with an unescaped ;) of tokens."""
    out = []
    for record in re.split(r"(?<!\\);[ \t]*(?:\r?\n|$)", text):
        tokens = re.findall(r"(?:\\.|[^\s\\,;])+|,", record)
        if tokens:
            out.append(tokens)
    return out


def canvases(text: str) -> list[Canvas]:
    """Every canvas of a patch; a subpatch knows its box in the parent (for its outlets)."""
    stack: list[Canvas] = []
    done: list[Canvas] = []
    for tokens in records(text):
        if tokens[:2] == ["#N", "canvas"]:
            stack.append(Canvas())
        elif tokens[0] == "#X" and len(tokens) > 1:
            kind = tokens[1]
            if kind == "restore":
                inner = stack.pop()
                parent = stack[-1]
                inner.parent = (parent, len(parent.boxes))
                parent.boxes.append(Box("obj", tokens[4:]))
                done.append(inner)
            elif kind == "connect":
                stack[-1].connections.append(tuple(int(t) for t in tokens[2:6]))  # type: ignore[arg-type]
            elif kind in ("obj", "msg", "text", "floatatom", "symbolatom", "listbox"):
                stack[-1].boxes.append(Box(kind, tokens[4:]))
    return done + stack
