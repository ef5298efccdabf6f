"""Compare's images as HTML: each image at a readable size with its caption under it, never over it.

Small models draw 32x32 images: they are enlarged by whole pixels (nearest neighbour), so what the
model drew is what is seen; large ones are reduced. Images travel inline as PNG data URIs (the data
folder is never served). Every text shown (prompts, model names) is escaped here.
"""
from __future__ import annotations

import base64
import html
import io

import numpy as np

PAIR_SIDE = 256  # base and tuned of one prompt and seed
GRID_SIDE = 176  # a grid of seeds or prompts: room for a caption line "background 1.000 (+1.000)"


def inline(image: np.ndarray, side: int) -> str:
    """A PNG data URI of `image` (uint8 HxWx3) scaled to `side` pixels on its longer side."""
    from PIL import Image

    picture = Image.fromarray(np.ascontiguousarray(image))
    factor = side / max(picture.size)
    size = (max(1, round(picture.width * factor)), max(1, round(picture.height * factor)))
    picture = picture.resize(size, Image.NEAREST if factor >= 1 else Image.LANCZOS)
    buffer = io.BytesIO()
    picture.save(buffer, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()


def score_lines(scores: dict[str, float], against: dict[str, float] | None = None) -> list[str]:
    """One line per reward: its score, and the change from `against` (the base image's) when given."""
    lines = []
    for name, value in scores.items():
        change = f" ({value - against[name]:+.3f})" if against and name in against else ""
        lines.append(f"{name} {value:.3f}{change}")
    return lines


def figure(image: np.ndarray, lines: list[str], side: int, alt: str = "") -> str:
    """An image with its caption lines under it (each line escaped; the first in bold)."""
    caption = "<br>".join(f"<b>{html.escape(line)}</b>" if i == 0 else html.escape(line) for i, line in enumerate(lines))
    return (f'<figure style="width:{side}px"><img src="{inline(image, side)}" width="{side}" '
            f'alt="{html.escape(alt or (lines[0] if lines else "image"))}"><figcaption>{caption}</figcaption></figure>')


def rows(named: list[tuple[str, list[str]]]) -> str:
    """Rows of figures, each under a heading (the model that drew them)."""
    parts = [f'<div class="compare-row"><p class="compare-row-head">{html.escape(head)}</p>'
             f'<div class="compare-cells">{"".join(figures)}</div></div>' for head, figures in named]
    return f'<div class="compare-figures">{"".join(parts)}</div>'
