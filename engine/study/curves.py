"""curves.html: every held-out score against model evaluations and against training wall time.

One row of subplots per reward (adherence is the mean of the four held-out verifiers), left against evaluations,
right against seconds; per method the mean over seeds at each budget fraction with a ± std band,
starting from the base model at 0.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from engine.study.tables import mean_std, metrics

COLOURS = ["#1f77b4", "#2ca02c", "#d62728", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2", "#17becf"]


def series(rows: list[dict], base: dict | None, method: str, axis: str, column: str):
    """x (mean over seeds), y mean and y std at each fraction, from the base model at 0."""
    fractions = sorted({r["fraction"] for r in rows if r["method"] == method})
    x, y, s = ([0.0], [base["scores"][column]], [0.0]) if base else ([], [], [])
    for f in fractions:
        at = [r for r in rows if r["method"] == method and r["fraction"] == f]
        x.append(float(np.mean([r[axis] for r in at])))
        mean, std = mean_std([r["scores"][column] for r in at])
        y.append(mean)
        s.append(std)
    return x, np.array(y), np.array(s)


def write_curves(path: Path, rows: list[dict], methods: list[tuple[str, str]], rewards: list[str],
                 held_out: set[str], title: str) -> None:
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    columns = metrics(rewards, held_out)
    base = next((r for r in rows if r["method"] == "base"), None)
    names = [f"{c} ({'out-of-domain' if h else 'in-domain'}) vs {x}" for c, h in columns
             for x in ("model evaluations", "training seconds")]
    fig = make_subplots(rows=len(columns), cols=2, subplot_titles=names, vertical_spacing=0.3 / len(columns),
                        horizontal_spacing=0.08)
    for i, (key, label) in enumerate(methods):
        colour = COLOURS[i % len(COLOURS)]
        for row, (column, _) in enumerate(columns, start=1):
            for col, axis in ((1, "evaluations"), (2, "seconds")):
                x, y, s = series(rows, base, key, axis, column)
                if len(x) == (1 if base else 0):  # nothing evaluated yet for this method
                    continue
                band = go.Scatter(x=x + x[::-1], y=list(y + s) + list((y - s)[::-1]), fill="toself", mode="lines",
                                  fillcolor=colour, opacity=0.15, line={"width": 0}, hoverinfo="skip",
                                  showlegend=False, legendgroup=key)
                line = go.Scatter(x=x, y=y, mode="lines+markers", name=label, line={"color": colour},
                                  legendgroup=key, showlegend=row == 1 and col == 1, customdata=s,
                                  hovertemplate=f"{label}<br>%{{x:.0f}}: %{{y:.4f}} ± %{{customdata:.4f}}"
                                                "<extra></extra>")
                fig.add_trace(band, row=row, col=col)
                fig.add_trace(line, row=row, col=col)
    fig.update_layout(title=title, height=300 * len(columns), width=1200, template="plotly_white")
    fig.write_html(path, include_plotlyjs=True)  # self-contained: opens without a network
