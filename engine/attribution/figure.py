"""The instrument's heatmaps (engine/attribution/__init__.py's report): rows are branch steps k, columns rewards.

Left: each reward's share of its within-group variance injected at k, in % (a column sums to 100%).
Right: the variance at k relative to what independent initial noises give, in %. Cells print the
value and its interval; a reward that never varies at any k is blank with "no variance".
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

PANELS = (("shares", "share of the reward's within-group variance\ninjected at step k (%; a column sums to 100%)"),
          ("relative_to_independent", "variance at k relative to independent\ninitial noises, plain ODE (%)"))


def grid(report: dict, key: str) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[str]]:
    """[K, rewards] arrays of value, low and high in %, NaN where undefined; and the reward names."""
    names, steps = list(report[key]), report["branch_steps"]

    def take(field):
        return np.array([[np.nan if report[key][n][str(k)][field] is None else 100 * report[key][n][str(k)][field]
                          for n in names] for k in steps])

    return take("value"), take("low"), take("high"), names


def _label(value: float, low: float, high: float) -> str:
    if np.isnan(value):
        return "no\nvariance"
    return f"{value:.0f}\n[{low:.0f}–{high:.0f}]"


def write_png(report: dict, path: str | Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")  # files only, no display
    import matplotlib.pyplot as plt

    steps = report["branch_steps"]
    fig, axes = plt.subplots(1, 2, figsize=(4.2 + 2.4 * len(report["shares"]), 1.2 + 0.62 * len(steps)))
    for ax, (key, caption) in zip(axes, PANELS):
        value, low, high, names = grid(report, key)
        top = max(5.0, np.ceil(np.nanmax(value, initial=0) / 5) * 5)  # anchored at 0, labelled in %
        image = ax.imshow(np.nan_to_num(value, nan=0.0), cmap="viridis", vmin=0, vmax=top, aspect="auto")
        for i in range(len(steps)):
            for j in range(len(names)):
                dark = np.isnan(value[i, j]) or value[i, j] < 0.6 * top
                ax.text(j, i, _label(value[i, j], low[i, j], high[i, j]), ha="center", va="center", fontsize=7,
                        color="white" if dark else "black")
        ax.set_xticks(range(len(names)), names, rotation=0)
        ax.set_yticks(range(len(steps)), [f"k={k}" for k in steps])
        ax.set_title(caption, fontsize=9)
        fig.colorbar(image, ax=ax, format="%.0f%%", fraction=0.05)
    fig.suptitle(f"{title}: {report['prompts']} prompts, G = {report['group_size']}, η = {report['eta']}, "
                 f"λ = {report['granularity']}, {report['level']:.0%} bootstrap intervals over prompts", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def write_html(report: dict, path: str | Path, title: str) -> None:
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    steps = [f"k={k}" for k in report["branch_steps"]]
    fig = make_subplots(1, 2, subplot_titles=[caption.replace("\n", " ") for _, caption in PANELS], horizontal_spacing=0.12)
    for col, (key, caption) in enumerate(PANELS, start=1):
        value, low, high, names = grid(report, key)
        top = max(5.0, float(np.ceil(np.nanmax(value, initial=0) / 5) * 5))
        text = [[_label(value[i, j], low[i, j], high[i, j]).replace("\n", " ") for j in range(len(names))]
                for i in range(len(steps))]
        fig.add_trace(go.Heatmap(z=value, x=names, y=steps, zmin=0, zmax=top, colorscale="Viridis", text=text,
                                 texttemplate="%{text}", hovertemplate="%{x} · %{y}: %{text}<extra></extra>",
                                 colorbar=dict(title="%", ticksuffix="%", x=0.44 if col == 1 else 1.0)), 1, col)
        fig.update_yaxes(autorange="reversed", row=1, col=col)
    fig.update_layout(title=f"{title}: {report['prompts']} prompts, G = {report['group_size']}, λ = {report['granularity']}",
                      template="plotly_white", height=140 + 60 * len(steps), width=1200)
    fig.write_html(path, include_plotlyjs=True)  # self-contained: opens without a network
