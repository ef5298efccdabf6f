"""Seed envelopes for the Overlay: runs that differ only in `train.seed` are one experiment, drawn
as the mean over its seeds with a band (min–max, or ± one standard deviation) instead of one line
per seed, so a difference between methods can be told apart from seed noise.

Runs are grouped by their whole config except `train.seed` (a run's name is not in its config).
Seeds of one config take the same iterations, so the envelope is taken per iteration over the runs
that reached it (a seed still running counts where it has data; `n` says how many); on the
cumulative axes (model evaluations, wall time) each point sits at the mean of the seeds' positions.
Held-out evaluations become the seeds' mean with the same band as error bars.
Pure functions of what the Overlay loads (no database, no torch).
"""
from __future__ import annotations

import json
import re
import statistics
from collections.abc import Sequence

import plotly.graph_objects as go

from app import escape
from app.figures import X_TITLES, _empty, reward_value, _eval_trace, _layout, _line, _translucent, _x_positions, colour

BANDS = ("min–max", "± std")


def flat_config(config: dict, prefix: str = "") -> dict:
    """{"algorithm.group_size": 12, ...}: a nested config as dotted keys (lists stay values)."""
    out = {}
    for key, value in config.items():
        if isinstance(value, dict):
            out.update(flat_config(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def seed_key(config: dict) -> str:
    """What seeds of one experiment share: the config without train.seed, as a comparable string."""
    flat = flat_config(config or {})
    flat.pop("train.seed", None)
    return json.dumps(flat, sort_keys=True, default=str)


def groups(runs: Sequence[dict]) -> list[list[dict]]:
    """The runs in groups of one config (first appearance first); each run needs its `config`."""
    by_key: dict[str, list[dict]] = {}
    for run in runs:
        by_key.setdefault(seed_key(run.get("config") or {}), []).append(run)
    return list(by_key.values())


def group_label(group: list[dict]) -> str:
    """"#3, #5 g2rpo G8 K8 · 2 seeds": the runs, and their name without its seed."""
    if len(group) == 1:
        return group[0]["label"]
    ids = ", ".join(run["label"].split(" ", 1)[0] for run in group)
    name = re.sub(r"\s*seed \d+$", "", group[0]["label"].split(" ", 1)[1] if " " in group[0]["label"] else "")
    return f"{ids} {name} · {len(group)} seeds" if name else f"{ids} · {len(group)} seeds"


def spread(values: list[float], band: str) -> tuple[float, float, float]:
    """(mean, low, high) of the seeds' values: the band is min–max or mean ± std (0 with one seed)."""
    mean = statistics.fmean(values)
    if band == "± std":
        std = statistics.stdev(values) if len(values) > 1 else 0.0
        return mean, mean - std, mean + std
    return mean, min(values), max(values)


def envelope(group: list[dict], reward: str, x: str = "iteration", band: str = BANDS[0]) -> dict:
    """Per iteration reached by any seed: {"x", "mean", "low", "high", "n"} lists."""
    if band not in BANDS:
        raise ValueError(f"band must be one of {BANDS}, not {band!r}")
    points: dict[int, list[tuple[float, float]]] = {}
    for run in group:
        metrics = run.get("metrics") or []
        xs, _ = _x_positions(metrics, x)
        for m, position in zip(metrics, xs):
            value = reward_value(m, reward)
            if value is not None:
                points.setdefault(m["iteration"], []).append((position, value))
    out = {"x": [], "mean": [], "low": [], "high": [], "n": []}
    for it in sorted(points):
        positions, values = zip(*points[it])
        mean, low, high = spread(list(values), band)
        for key, value in zip(out, (statistics.fmean(positions), mean, low, high, len(values))):
            out[key].append(value)
    return out


def _evaluation_envelope(group: list[dict], reward: str, x: str, band: str, label: str, colour_: str):
    """The seeds' held-out scores of `reward` per iterations trained: mean with the band as error bars."""
    scored: dict[int, list[tuple[float, float]]] = {}
    for run in group:
        _, at = _x_positions(run.get("metrics") or [], x)
        for e in run.get("evaluations") or ():
            if e.get("trained") is not None and reward in (e.get("scores") or {}):
                scored.setdefault(e["trained"], []).append((at(e["trained"]), e["scores"][reward]))
    if not scored:
        return None
    rows = []
    for trained in sorted(scored):
        positions, values = zip(*scored[trained])
        rows.append((statistics.fmean(positions), *spread(list(values), band)))
    xs, means, lows, highs = zip(*rows)
    return go.Scatter(x=xs, y=means, name=f"{label} (eval)", mode="lines+markers", legendgroup=label,
                      line=dict(color=colour_, dash="dash"), marker=dict(size=8),
                      error_y=dict(type="data", symmetric=False, array=[h - m for h, m in zip(highs, means)],
                                   arrayminus=[m - lo for m, lo in zip(means, lows)], color=colour_))


def figure(runs: Sequence[dict], x: str = "iteration", reward: str = "total", band: str = BANDS[0]) -> go.Figure:
    """The Overlay with seed envelopes: one colour per config; a config run with several seeds is
    its mean line over a shaded band, a config with one run its own line, as in figures.overlay."""
    _x_positions([], x)  # an invalid x is refused even with nothing to draw
    fig = go.Figure()
    for i, group in enumerate(groups(runs)):
        label = escape.plot(group_label(group))  # runs' names are the text they are, never links
        if len(group) == 1:
            run = group[0]
            metrics = run.get("metrics") or []
            xs, at = _x_positions(metrics, x)
            if metrics:
                fig.add_trace(_line(xs, [reward_value(m, reward) for m in metrics], label, colour(i), legendgroup=label))
            trace = _eval_trace(run.get("evaluations") or (), reward, at, f"{label} (eval)", colour(i))
        else:
            env = envelope(group, reward, x, band)
            if env["x"]:
                fig.add_trace(go.Scatter(x=env["x"] + env["x"][::-1], y=env["high"] + env["low"][::-1],
                                         fill="toself", fillcolor=_translucent(colour(i), 0.18), line=dict(width=0),
                                         name=f"{label} ({band})", legendgroup=label, hoverinfo="skip"))
                fig.add_trace(_line(env["x"], env["mean"], f"{label} (mean)", colour(i), legendgroup=label,
                                    customdata=env["n"],
                                    hovertemplate="%{y:.4g} (mean of %{customdata} seeds)<extra></extra>"))
            trace = _evaluation_envelope(group, reward, x, band, label, colour(i))
        if trace is not None:
            trace.legendgroup = label
            fig.add_trace(trace)
    if not fig.data:
        return _empty()
    fig.update_xaxes(title_text=X_TITLES[x])
    fig.update_yaxes(title_text=reward)
    return _layout(fig, f"{reward}: seeds of one config as mean and {band}")
