"""Patches laid out for reading: in every .pd under pd_patches/ (subpatches included) no two boxes or
comments overlap, nothing sits at a negative position, and nothing lies outside its window (the size in
its ``#N canvas`` line).

Extents are computed the way Pd 0.53 draws them (g_rtext.c, g_text.c), with the font metrics of its
Tk GUI (DejaVu Sans Mono), measured on screenshots made with tools/render_patches.py:

    font size     8   10   12   16   24   36
    char width    5    6    7   10   14   22   px
    line height  10   13   15   19   29   44   px

- object and message boxes: text wrapped at 60 characters (or at N with ``, f N``), breaking at the
  last space that fits, else mid-word; at least 3 characters wide. Width = columns x char width + 4,
  height = lines x line height + 5 (font 12: a one-line box is 20 px high, 7 px per character + 4).
  A message box adds its flag on the right: height / 4, at most 10 px.
- comments: wrapped like boxes; width = columns x char width + 4, height = lines x line height + 3.
  Width is the text's own width (60 characters at most), or N characters with ``, f N``.
- text as Pd shows it: atoms joined by spaces, ``\\,`` becomes ``,`` and ``\\;`` becomes ``;`` and a new
  line (no space before either).
- number boxes: width x char width + 2 by line height + 4. IEM GUIs: their own size (bng/tgl: size + 1;
  hsl: 3 px left of x to 2 px past its width), plus their label when they have one. [cnv] is a
  background: only its label and its position count.
- arrays in graphs: the graph's pixel size from ``#X coords``, plus a line above for the array name.

Two extents overlap when they share more than TOLERANCE_PX pixels in both directions.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

import pytest

from patchfiles import records

PATCH_DIR = Path(__file__).resolve().parents[2] / "pd_patches"
PATCHES = sorted(PATCH_DIR.rglob("*.pd"))
TOLERANCE_PX = 2
BOX_WIDTH_CHARS = 60
MIN_BOX_CHARS = 3
FONT_METRICS = {8: (5, 10), 10: (6, 13), 12: (7, 15), 16: (10, 19), 24: (14, 29), 36: (22, 44)}
"""Pd font size -> (character width, line height) in pixels, as Pd 0.53's GUI draws them."""
ATOMS = ("floatatom", "symbolatom", "listbox")
BACKGROUNDS = ("cnv", "my_canvas")

EXPECTED_TO_FAIL: dict[str, str] = {}
"""Patches known to fail, with why (none now)."""


@dataclass(frozen=True)
class Extent:
    """What one box covers on its canvas, in pixels."""

    label: str
    x1: float
    y1: float
    x2: float
    y2: float
    position: tuple[float, float]
    background: bool = False

    def overlaps(self, other: "Extent") -> bool:
        dx = min(self.x2, other.x2) - max(self.x1, other.x1)
        dy = min(self.y2, other.y2) - max(self.y1, other.y1)
        return dx > TOLERANCE_PX and dy > TOLERANCE_PX


@dataclass
class Canvas:
    """One canvas of a patch file: the top level, a [pd name] subpatch or a graph."""

    name: str
    width: float
    height: float
    font: int
    graph: bool = False
    extents: list[Extent] = field(default_factory=list)
    arrays: list[str] = field(default_factory=list)
    graph_size: Optional[tuple[float, float]] = None


def split_width(tokens: list[str]) -> tuple[list[str], int]:
    """Box text tokens and the width set with ``, f N`` (0 when none)."""
    if len(tokens) >= 3 and tokens[-3] == "," and tokens[-2] == "f":
        return tokens[:-3], int(float(tokens[-1]))
    return tokens, 0


def display_text(tokens: list[str]) -> str:
    """The text Pd draws for these atoms (binbuf_gettext)."""
    text = ""
    for token in tokens:
        if token in ("\\,", "\\;"):
            text = text.rstrip(" ") + token[1] + ("\n" if token == "\\;" else " ")
        else:
            text += token.replace("\\$", "$").replace("\\ ", " ") + " "
    return text.rstrip(" ")


def wrap(text: str, limit: int) -> list[str]:
    """Pd's line breaking (rtext_senditup): at a newline, else at the last space within limit + 1,
    else hard at limit."""
    lines: list[str] = []
    rest = text
    while rest:
        newline = rest.find("\n", 0, limit)
        if newline >= 0:
            lines.append(rest[:newline])
            rest = rest[newline + 1:]
        elif len(rest) > limit:
            space = rest.rfind(" ", 0, limit + 1)
            if space >= 0:
                lines.append(rest[:space])
                rest = rest[space + 1:]
            else:
                lines.append(rest[:limit])
                rest = rest[limit:]
        else:
            lines.append(rest)
            rest = ""
    return lines or [""]


def text_size(tokens: list[str], width: int, font: int, minimum: int) -> tuple[float, float, int]:
    """(pixel width without margins, pixel height without margins, lines) of wrapped box text."""
    char_w, line_h = FONT_METRICS[font]
    lines = wrap(display_text(tokens), width or BOX_WIDTH_CHARS)
    columns = width or max(minimum, max(len(line) for line in lines))
    return columns * char_w, len(lines) * line_h, len(lines)


def iem_label(x: float, y: float, label: str, dx: str, dy: str, size: str, font: int) -> Optional[tuple]:
    """The rectangle of an IEM GUI's label: its text is centred vertically on (x + dx, y + dy)."""
    if label in ("empty", "-", ""):
        return None
    px = int(float(size)) or font
    char_w, line_h = FONT_METRICS.get(px, (round(px * 0.6), round(px * 1.25)))
    lx, ly = x + float(dx), y + float(dy)
    return lx, ly - line_h / 2, lx + len(label) * char_w, ly + line_h / 2


LABEL_ARGS = {"bng": 6, "tgl": 4, "hsl": 8, "vsl": 8, "hslider": 8, "vslider": 8, "cnv": 5, "my_canvas": 5}
"""Where an IEM GUI's label, its x and y offsets, font and font size start among its arguments."""


def gui_extent(cls: str, args: list[str], x: float, y: float, font: int) -> tuple[tuple, Optional[tuple]]:
    """Box and label rectangles of an IEM GUI object."""
    label = None
    if cls in LABEL_ARGS and len(args) > LABEL_ARGS[cls] + 4:
        i = LABEL_ARGS[cls]
        label = iem_label(x, y, args[i], args[i + 1], args[i + 2], args[i + 4], font)
    if cls in ("bng", "tgl"):
        size = float(args[0])
        return (x, y, x + size + 1, y + size + 1), label
    if cls in ("hsl", "vsl", "hslider", "vslider"):
        w, h = float(args[0]), float(args[1])
        if cls.startswith("h"):
            return (x - 3, y, x + w + 2, y + h + 1), label
        return (x, y - 2, x + w + 1, y + h + 3), label
    if cls in BACKGROUNDS:
        return (x, y, x + float(args[1]), y + float(args[2])), label
    if cls == "nbx":
        char_w, _ = FONT_METRICS[font]
        digits, h = float(args[0]), float(args[1])
        return (x, y, x + digits * char_w + h / 2 + 4, y + h + 1), None
    if cls in ("hradio", "vradio", "hdl", "vdl"):
        # Pd saves: size, new/old, init, number, send, receive, label, ...
        size, number = float(args[0]), float(args[3])
        if cls in ("hradio", "hdl"):
            return (x, y, x + size * number + 1, y + size + 1), None
        return (x, y, x + size + 1, y + size * number + 1), None
    if cls == "vu":
        return (x, y, x + float(args[0]) + 1, y + float(args[1]) + 1), None
    raise KeyError(cls)


IEM = ("bng", "tgl", "hsl", "vsl", "hslider", "vslider", "cnv", "my_canvas", "nbx", "hradio", "vradio",
       "hdl", "vdl", "vu")


def box_extents(kind: str, tokens: list[str], font: int) -> list[Extent]:
    """The extents of one ``#X obj|msg|text|floatatom ...`` record (tokens after #X)."""
    x, y = float(tokens[1]), float(tokens[2])
    body, width = split_width(tokens[3:])
    label = f"{kind} {x:g} {y:g} {' '.join(body)[:40]}"
    char_w, line_h = FONT_METRICS[font]
    if kind == "obj" and body and body[0] in IEM:
        box, name = gui_extent(body[0], body[1:], x, y, font)
        background = body[0] in BACKGROUNDS
        out = [Extent(label, *box, (x, y), background)]
        if name:
            out.append(Extent(label + " (label)", *name, (x, y)))
        return out
    if kind in ATOMS:
        chars = int(float(body[0])) or 5
        return [Extent(label, x, y, x + chars * char_w + 2, y + line_h + 4, (x, y))]
    if kind == "text":
        w, h, _ = text_size(body, width, font, 0)
        return [Extent(label, x, y, x + w + 4, y + h + 3, (x, y))]
    w, h, _ = text_size(body, width, font, MIN_BOX_CHARS)
    flag = min(10, (h + 5) // 4) if kind == "msg" else 0
    return [Extent(label, x, y, x + w + 4 + flag, y + h + 5, (x, y))]


def parse(path: Path) -> list[Canvas]:
    """Every canvas of a patch file with the extents of the boxes on it."""
    stack: list[Canvas] = []
    done: list[Canvas] = []
    font = 12
    for tokens in records(path.read_text()):
        head = tokens[0]
        if head == "#N" and tokens[1] == "canvas":
            if not stack:  # the top level: #N canvas x y w h font
                font = int(float(tokens[6]))
                font = font if font in FONT_METRICS else 12
                stack.append(Canvas(path.name, float(tokens[4]), float(tokens[5]), font))
            else:  # a subpatch or graph: #N canvas x y w h name vis
                name = tokens[6]
                stack.append(Canvas(f"{path.name} [pd {name}]", float(tokens[4]), float(tokens[5]), font,
                                    graph=name == "(subpatch)"))
        elif head == "#X" and len(tokens) > 1:
            kind, canvas = tokens[1], stack[-1]
            if kind in ("obj", "msg", "text", *ATOMS) and len(tokens) >= 3:
                canvas.extents += box_extents(kind, tokens[1:], font)
            elif kind == "array":
                canvas.arrays.append(tokens[2])
            elif kind == "coords" and len(tokens) >= 9:
                canvas.graph_size = (float(tokens[6]), float(tokens[7]))
            elif kind == "restore":
                inner = stack.pop()
                parent = stack[-1]
                x, y = float(tokens[2]), float(tokens[3])
                if inner.graph_size and tokens[4] == "graph":
                    w, h = inner.graph_size
                    _, line_h = FONT_METRICS[font]
                    label = f"graph {x:g} {y:g} {' '.join(inner.arrays)}"
                    parent.extents.append(Extent(label, x, y - (line_h if inner.arrays else 0),
                                                 x + w + 1, y + h + 1, (x, y)))
                else:
                    parent.extents += box_extents("obj", ["obj", *tokens[2:]], font)
                if not inner.graph:
                    done.append(inner)
    done.extend(stack)
    return done


def layout_problems(path: Path) -> list[str]:
    problems = []
    for canvas in parse(path):
        boxes = canvas.extents
        for e in boxes:
            if e.position[0] < 0 or e.position[1] < 0:
                problems.append(f"{canvas.name}: {e.label!r} is at a negative position")
            elif e.x2 > canvas.width + TOLERANCE_PX or e.y2 > canvas.height + TOLERANCE_PX:
                problems.append(f"{canvas.name}: {e.label!r} reaches ({e.x2:g}, {e.y2:g}), outside the "
                                f"{canvas.width:g}x{canvas.height:g} window")
        for i, a in enumerate(boxes):
            for b in boxes[i + 1:]:
                if not a.background and not b.background and a.overlaps(b):
                    problems.append(f"{canvas.name}: {a.label!r} overlaps {b.label!r}")
    return problems


@pytest.mark.parametrize("patch", [
    pytest.param(p, marks=pytest.mark.xfail(reason=EXPECTED_TO_FAIL[p.name], strict=True))
    if p.name in EXPECTED_TO_FAIL else p
    for p in PATCHES
], ids=lambda p: str(p.relative_to(PATCH_DIR)))
def test_patch_is_laid_out_for_reading(patch: Path):
    problems = layout_problems(patch)
    assert not problems, "\n".join(problems)


# -- the model itself, against sizes measured on Pd 0.53 screenshots (12 pt) -------------------------
@pytest.mark.parametrize("line, size", [
    ("#X obj 10 10 f", (25, 20)),                      # 3 characters at least
    ("#X obj 10 10 list", (32, 20)),
    ("#X msg 10 10 mmmmm", (44, 20)),                   # + the flag
    ("#X msg 10 10 " + "m" * 60, (429, 20)),
    ("#X msg 10 10 " + "m" * 61, (432, 35)),            # no space: broken at 60
    ("#X msg 10 10 " + " ".join(["abcd"] * 20), (425, 35)),
    ("#X msg 10 10 " + "m" * 20 + ", f 10", (82, 35)),
    ("#X msg 10 10 \\; pd dsp 1", (68, 35)),             # ; ends a line
    ("#X obj 10 10 list append a, f 10", (74, 35)),
    ("#X floatatom 10 10 5 0 0 0 - - - 0", (37, 19)),
    ("#X text 10 10 " + " ".join(["abcd"] * 20), (417, 33)),
    ("#X text 10 10 " + " ".join(["abcd"] * 10) + ", f 20", (144, 48)),
])
def test_extents_match_what_pd_draws(line: str, size: tuple[int, int]):
    tokens = records(line)[0]
    extent = box_extents(tokens[1], tokens[1:], 12)[0]
    assert (extent.x2 - extent.x1, extent.y2 - extent.y1) == size


def test_overlapping_boxes_are_found(tmp_path: Path):
    patch = tmp_path / "bad.pd"
    patch.write_text("#N canvas 0 0 400 300 12;\n#X obj 10 10 print hello;\n#X text 50 20 a comment;\n"
                     "#X msg -5 100 bang;\n#X obj 350 290 print far;\n")
    problems = layout_problems(patch)
    assert any("overlaps" in p for p in problems)
    assert any("negative" in p for p in problems)
    assert any("outside" in p for p in problems)


def test_an_iem_label_counts_where_pd_draws_it():
    # Measured: a bng at (10, 800) labelled "amount" at (0, -10) draws the label in x 10..52, y 786..797.
    tokens = records("#X obj 10 800 bng 19 250 50 0 empty empty amount 0 -10 0 12 #fcfcfc #000000 #000000")[0]
    bng, label = box_extents("obj", tokens[1:], 12)
    assert (bng.x1, bng.y1, bng.x2, bng.y2) == (10, 800, 30, 820)
    assert label.x1 <= 10 and label.x2 >= 52 and label.y1 <= 786 and 797 <= label.y2 <= 800
