"""Images as HTML (Compare, the blind test, the Monitor's samples and branches): each image at a readable size with its caption under it, never over it.

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
GRID_SIDE = 192  # a grid of seeds or prompts: 6x the built-in model's 32x32


def scaled(image, side: int):
    """`image` (uint8 HxWx3, or a PIL image) as a PIL image at most `side` pixels on its longer side: a small one
    enlarged by a whole factor (each pixel a block of one colour), a large one reduced."""
    from PIL import Image

    picture = Image.fromarray(np.ascontiguousarray(image))
    longest = max(picture.size)
    if longest <= side:
        factor = side // longest
        return picture.resize((picture.width * factor, picture.height * factor), Image.NEAREST)
    factor = side / longest
    return picture.resize((max(1, round(picture.width * factor)), max(1, round(picture.height * factor))), Image.LANCZOS)


def inline(picture) -> str:
    """A PNG data URI of a PIL image."""
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
    picture = scaled(image, side)
    return (f'<figure style="width:{side}px"><img src="{inline(picture)}" width="{picture.width}" '
            f'alt="{html.escape(alt or (lines[0] if lines else "image"))}"><figcaption>{caption}</figcaption></figure>')


def rows(named: list[tuple[str, list[str]]]) -> str:
    """Rows of figures, each under a heading (the model that drew them)."""
    parts = [f'<div class="compare-row"><p class="compare-row-head">{html.escape(head)}</p>'
             f'<div class="compare-cells">{"".join(figures)}</div></div>' for head, figures in named]
    return f'<div class="compare-figures">{"".join(parts)}</div>'
