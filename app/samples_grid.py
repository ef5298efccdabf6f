"""Samples: a prompt × iteration grid. Each sample prompt is a row; beside the base model's image
stands the image of the chosen iteration, both from the run's fixed sample noise, each captioned
with its scores (and the change since base), which the trainer stores with the samples
(`sample_scores` in the record; runs from before that have images without scores).

An iteration slider picks among the iterations that drew samples; "follow the newest" keeps it on
the latest while the run goes. Images are read here and sent inline as small PNGs: the data folder
is never served. No torch: PIL and the view the Monitor already polled (app/monitor.py).
"""
from __future__ import annotations

import html

import gradio as gr

from app import compare_html
from app.monitor import sample_image
from app.numbers import number

THUMB = 160  # pixels per image side: small models' 32x32 enlarged (pixelated), large ones reduced


def sampled(view: dict) -> list[int]:
    """The iterations trained at which the run drew samples (the base, 0, not included)."""
    return sorted({s["trained"] for s in view.get("samples") or [] if s["trained"] > 0})


def chosen(view: dict, value, follow: bool) -> int | None:
    """The iteration to show: the newest when following (or nothing sensible was chosen), else the
    sampled iteration nearest to `value`."""
    options = sampled(view)
    if not options:
        return None
    try:
        target = None if follow or value in (None, "") else number(value)
    except ValueError:  # not a number: the newest, as when following
        target = None
    if target is None:
        return options[-1]
    return min(options, key=lambda t: (abs(t - target), t))


def slider(view: dict, value, follow: bool):
    """The slider's range over the sampled iterations, set to what the grid shows."""
    options = sampled(view)
    if not options:
        return gr.update(minimum=0, maximum=1, value=0, interactive=False)
    step = min((b - a for a, b in zip(options, options[1:])), default=1)
    return gr.update(minimum=options[0], maximum=max(options[-1], options[0] + 1), step=step,
                     value=chosen(view, value, follow), interactive=len(options) > 1)


def scores(stored: dict[int, dict], sample: dict) -> dict[str, float | None]:
    """A sample image's scores, from the record of the iteration that drew it ({} if not stored);
    `stored`: jobs.queries.sample_scores of the iterations shown."""
    key = "base_sample_scores" if sample["trained"] == 0 else "sample_scores"
    record = stored.get(sample["iteration"]) or {}
    return {name: values[sample["position"]] for name, values in (record.get(key) or {}).items()
            if sample["position"] < len(values)}


def _inline(image) -> str:
    """A PNG data URI of the image at THUMB (whole-pixel enlargement: pixels stay pixels)."""
    return compare_html.inline(compare_html.scaled(image, THUMB))


def _caption(values: dict, base: dict | None = None) -> str:
    if not values:
        return '<div class="scores">no scores stored</div>'
    lines = []
    for name, v in values.items():
        change = ""
        if base and base.get(name) is not None and v is not None:
            change = f" ({v - base[name]:+.3f})"
        lines.append(f"{html.escape(name)} {'n/a' if v is None else f'{v:.3f}'}{change}")
    return '<div class="scores">' + "<br>".join(lines) + "</div>"


def _cell(view: dict, stored: dict, sample: dict | None, base_scores: dict | None = None) -> str:
    if sample is None:
        return "<td>–</td>"
    image = sample_image(sample["file"], view["run_id"])
    if image is None:
        return "<td>image missing</td>"
    values = scores(stored, sample)
    return f'<td><img src="{_inline(image)}" alt="{html.escape(sample["prompt"])}">{_caption(values, base_scores)}</td>'


def grid(view: dict, value=None, follow: bool = True) -> str:
    """HTML: one row per sample prompt, its base image and the chosen iteration's, captioned."""
    at = chosen(view, value, follow)
    samples = view.get("samples") or []
    if not samples:
        return '<p class="sample-grid-empty">No samples yet (train.sample_every sets how often they are drawn).</p>'
    by_key = {(s["trained"], s["position"]): s for s in samples}
    positions = sorted({s["position"] for s in samples})
    from jobs import api

    shown = [s["iteration"] for s in samples if s["trained"] in (0, at)]
    stored = api.queries.sample_scores(view["run_id"], shown)
    head = "<th>base model</th>" + (f"<th>after {at} iterations</th>" if at is not None else "")
    rows = []
    for position in positions:
        base = by_key.get((0, position))
        prompt = (base or by_key.get((at, position)) or {}).get("prompt", "")
        row = f'<td class="prompt">{html.escape(prompt)}</td>' + _cell(view, stored, base)
        if at is not None:
            row += _cell(view, stored, by_key.get((at, position)), scores(stored, base) if base else None)
        rows.append(f"<tr>{row}</tr>")
    return (f'<table class="sample-grid"><thead><tr><th>prompt</th>{head}</tr></thead>'
            f'<tbody>{"".join(rows)}</tbody></table>')
