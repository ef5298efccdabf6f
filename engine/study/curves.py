"""curves.html and curves.png: the scores against iterations, model evaluations and seconds, with 95% bands.

Trained on `adherence`: held-out and training adherence against each axis. Trained on `preference`
(the hacking track): training and held-out preference and held-out adherence against iterations. Per
method, each point is one protocol point (a fraction of a budget): x the mean over seeds, y the mean
with its bootstrap interval (stats.py) as the band, starting from the base model at 0.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from engine.study.plan import Plan
from engine.study.stats import mean_interval
from engine.study.tables import SPLIT_WORDS, base_row, values

COLOURS = ["#1f77b4", "#2ca02c", "#d62728", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2", "#17becf"]
AXES = {"iteration": "iterations", "evaluations": "model evaluations", "calibrated_seconds": "seconds (calibrated)"}



def figure_title(plan) -> str:
    """What the bands are: 95% bootstrap bands from MIN_VERDICT_SEEDS seeds on; below, about the
    seeds' range (the tables draw no verdict then either, engine/study/stats.py)."""
    from engine.study.stats import MIN_VERDICT_SEEDS

    n = len(plan.seeds)
    bands = "95% bootstrap bands" if n >= MIN_VERDICT_SEEDS else f"bands about the seeds' range (95% needs {MIN_VERDICT_SEEDS})"
    return f"The study: {n} seeds per method, means with {bands}"

def panels(plan: Plan) -> list[tuple[str, str, str, str]]:
    """(training reward, x key, split, score) per subplot, row by row: a track under every protocol gets
    its reward on both prompt sets against every axis; a one-protocol track (the hacking one) its reward
    on both sets and the exact verifiers' adherence against iterations."""
    out = []
    for track in plan.tracks:
        if len(track.protocols) > 1:
            out += [(track.reward, x, split, track.reward) for split in ("held_out", "train") for x in AXES]
        else:
            extra = [("held_out", "adherence")] if track.reward != "adherence" and "adherence" in plan.eval_rewards else []
            out += [(track.reward, "iteration", s, n) for s, n in [("train", track.reward), ("held_out", track.reward),
                                                                    *extra]]
    return out


def series(rows: list[dict], base: dict, reward: str, method: str, x: str, split: str, name: str):
    """x, mean, low, high per protocol point, sorted by x, from the base at 0."""
    own = [r for r in rows if r["reward"] == reward and r["method"] == method]
    points = sorted({tuple(p) for r in own for p in r["points"]})
    found = {0.0: (base["scores"][split][name],) * 3}
    for point in points:
        at = [r for r in own if list(point) in r["points"]]
        where = float(np.mean([r[x] if r[x] is not None else r["seconds"] for r in at]))
        iv = mean_interval(values(at, split, name))
        found[where] = (iv.estimate, iv.low, iv.high)
    xs = sorted(found)
    return xs, *(np.array([found[v][i] for v in xs]) for i in range(3))


def title(reward: str, x: str, split: str, name: str) -> str:
    return f"{name} ({SPLIT_WORDS[split]}) vs {AXES[x]}, trained on {reward}"


def write_curves(root: Path, plan: Plan, rows: list[dict]) -> None:
    base = base_row(rows)
    if base is None:
        return
    chosen = panels(plan)
    if not chosen:
        return
    write_html(Path(root) / "curves.html", plan, rows, base, chosen)
    write_png(Path(root) / "curves.png", plan, rows, base, chosen)


def write_html(path: Path, plan: Plan, rows: list[dict], base: dict, chosen: list) -> None:
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    n_rows = -(-len(chosen) // 3)
    fig = make_subplots(rows=n_rows, cols=3, subplot_titles=[title(*c) for c in chosen], vertical_spacing=0.25 / n_rows,
                        horizontal_spacing=0.06)
    for i, method in enumerate(plan.methods):
        colour, shown = COLOURS[i % len(COLOURS)], False
        for k, (reward, x, split, name) in enumerate(chosen):
            if method.key not in plan.track(reward).methods:
                continue
            xs, y, low, high = series(rows, base, reward, method.key, x, split, name)
            if len(xs) == 1:  # nothing evaluated yet for this method
                continue
            row, col = k // 3 + 1, k % 3 + 1
            fig.add_trace(go.Scatter(x=xs + xs[::-1], y=list(high) + list(low[::-1]), fill="toself", mode="lines",
                                     fillcolor=colour, opacity=0.15, line={"width": 0}, hoverinfo="skip",
                                     showlegend=False, legendgroup=method.key), row=row, col=col)
            fig.add_trace(go.Scatter(x=xs, y=y, mode="lines+markers", name=method.label, line={"color": colour},
                                     legendgroup=method.key, showlegend=not shown,
                                     customdata=np.stack([low, high], 1),
                                     hovertemplate=f"{method.label}<br>%{{x:.0f}}: %{{y:.3f}} "
                                                   "[%{customdata[0]:.3f}, %{customdata[1]:.3f}]<extra></extra>"),
                          row=row, col=col)
            shown = True
    fig.update_layout(title=figure_title(plan),
                      height=330 * n_rows, width=1350, template="plotly_white")
    fig.write_html(path, include_plotlyjs=True)  # self-contained: opens without a network


def write_png(path: Path, plan: Plan, rows: list[dict], base: dict, chosen: list) -> None:
    import matplotlib

    matplotlib.use("Agg")  # files only, no display
    import matplotlib.pyplot as plt

    n_rows = -(-len(chosen) // 3)
    fig, axes = plt.subplots(n_rows, 3, figsize=(15, 3.6 * n_rows), squeeze=False)
    for k, (reward, x, split, name) in enumerate(chosen):
        ax = axes[k // 3][k % 3]
        for i, method in enumerate(plan.methods):
            if method.key not in plan.track(reward).methods:
                continue
            xs, y, low, high = series(rows, base, reward, method.key, x, split, name)
            if len(xs) == 1:
                continue
            colour = COLOURS[i % len(COLOURS)]
            ax.plot(xs, y, "o-", color=colour, label=method.label, markersize=3)
            ax.fill_between(xs, low, high, color=colour, alpha=0.12, linewidth=0)
        ax.set_title(title(reward, x, split, name), fontsize=9)
        ax.set_xlabel(AXES[x])
        ax.grid(alpha=0.3)
        if k % 3 == 0:
            ax.legend(fontsize=7)
    for k in range(len(chosen), n_rows * 3):
        axes[k // 3][k % 3].axis("off")
    fig.suptitle(figure_title(plan))
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
