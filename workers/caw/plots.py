"""Loss plots as PNG files, so a student can see whether a scale has converged.

Drawn with Pillow (already in the torch environment) rather than matplotlib: one picture per
scale with two panels, the discriminator's view (mean score on real and on generated signals, and
the gradient penalty) and the reconstruction loss on a log axis, against the epoch.
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Sequence

import numpy as np
from PIL import Image, ImageDraw, ImageFont

WIDTH, PANEL_H, MARGIN_L, MARGIN_R, MARGIN_T, GAP = 900, 260, 80, 190, 40, 50
COLOURS = {"d_real": (31, 119, 180), "d_fake": (214, 39, 40), "gp": (44, 160, 44), "rec": (148, 103, 189)}
LABELS = {"d_real": "D(real)", "d_fake": "D(fake)", "gp": "gradient penalty", "rec": "reconstruction"}


def plot_losses(path: Path, title: str, losses: dict[str, Sequence[float]]) -> None:
    """Write ``path`` (PNG): ``losses`` maps d_real, d_fake, gp and rec to one value per epoch."""
    height = MARGIN_T + 2 * PANEL_H + GAP + 40
    img = Image.new("RGB", (WIDTH, height), "white")
    draw = ImageDraw.Draw(img)
    font = ImageFont.load_default(size=14)
    draw.text((MARGIN_L, 10), title, fill="black", font=ImageFont.load_default(size=18))
    top = MARGIN_T
    _panel(draw, font, top, {k: losses[k] for k in ("d_real", "d_fake", "gp") if k in losses}, log=False)
    _panel(draw, font, top + PANEL_H + GAP, {k: losses[k] for k in ("rec",) if k in losses}, log=True)
    for panel_top in (top, top + PANEL_H + GAP):
        draw.text((WIDTH - MARGIN_R + 12, panel_top + PANEL_H + 6), "epoch", fill="black", font=font)
    path.parent.mkdir(parents=True, exist_ok=True)
    img.save(path)


def _panel(draw: ImageDraw.ImageDraw, font: ImageFont.FreeTypeFont, top: int, series: dict[str, Sequence[float]],
           log: bool) -> None:
    left, right, bottom = MARGIN_L, WIDTH - MARGIN_R, top + PANEL_H
    draw.rectangle((left, top, right, bottom), outline="black")
    values = {k: np.asarray(v, dtype=np.float64) for k, v in series.items() if len(v)}
    if not values:
        return
    n = max(len(v) for v in values.values())
    if log:
        values = {k: np.log10(np.maximum(v, 1e-12)) for k, v in values.items()}
    lo = min(float(np.min(v)) for v in values.values())
    hi = max(float(np.max(v)) for v in values.values())
    if hi - lo < 1e-12:
        lo, hi = lo - 0.5, hi + 0.5
    for i in range(5):  # y ticks
        value = lo + (hi - lo) * i / 4
        y = bottom - (bottom - top) * i / 4
        draw.line((left - 5, y, left, y), fill="black")
        draw.text((4, y - 8), f"{10 ** value:.2g}" if log else f"{value:.3g}", fill="black", font=font)
    for i in range(6):  # x ticks
        epoch = round((n - 1) * i / 5)
        x = left + (right - left) * (epoch / max(n - 1, 1))
        draw.line((x, bottom, x, bottom + 5), fill="black")
        draw.text((x - 10, bottom + 8), str(epoch + 1), fill="black", font=font)
    for row, (key, v) in enumerate(values.items()):
        step = max(1, math.ceil(len(v) / (right - left)))  # at most one point per pixel column
        xs = left + (right - left) * np.arange(0, len(v), step) / max(n - 1, 1)
        ys = bottom - (bottom - top) * (v[::step] - lo) / (hi - lo)
        points = list(zip(xs.tolist(), ys.tolist()))
        if len(points) > 1:
            draw.line(points, fill=COLOURS[key], width=2)
        else:
            draw.ellipse((points[0][0] - 2, points[0][1] - 2, points[0][0] + 2, points[0][1] + 2), fill=COLOURS[key])
        ly = top + 10 + 22 * row
        draw.line((right + 12, ly + 8, right + 36, ly + 8), fill=COLOURS[key], width=3)
        draw.text((right + 42, ly), LABELS[key], fill="black", font=font)
