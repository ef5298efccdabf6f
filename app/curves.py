"""The reward over training, as a researcher reads it: smoothed training curves, held-out scores on
their own panel as a change since the base model, and the over-optimisation warning (training
reward up while held-out scores fall, the reward hacking reported in yifan123/flow_grpo#233 and
XueZeyue/DanceGRPO#12) with the checkpoint whose held-out score was best.

Pure functions of what `jobs.queries` returns (curve rows, evaluations, checkpoint rows); no
database, no torch. A curve row of a long run stands for `count` iterations (jobs.rollup).
"""
from __future__ import annotations

from collections.abc import Sequence

import plotly.graph_objects as go
from plotly.subplots import make_subplots

from app.figures import (X_TITLES, _band, _empty, _extremes, _layout, _translucent, _x_positions, colour,
                         whole_iterations)

HACKING_WINDOW = 3  # evaluations in a row over which held-out scores fall while training rises


def ema(values: Sequence, weight: float) -> list:
    """TensorBoard's smoothing: an exponential moving average with weight `weight` in [0, 1),
    debiased so the first points are not pulled towards 0. None stays None (a gap)."""
    if not 0 <= weight < 1:
        raise ValueError(f"smoothing must be in [0, 1), not {weight!r}")
    out, last, norm = [], 0.0, 0.0
    for v in values:
        if v is None:
            out.append(None)
            continue
        last, norm = weight * last + (1 - weight) * v, weight * norm + (1 - weight)
        out.append(last / norm)
    return out


def _trainer_evaluations(evaluations: Sequence[dict]) -> list[dict]:
    """The trainer's evaluations (those with `trained`), in training order; added ones are skipped."""
    return sorted((e for e in evaluations if e.get("trained") is not None), key=lambda e: e["trained"])


def _base_scores(evaluations: list[dict]) -> dict[str, float]:
    """Each reward's first score: the base model's when the run was evaluated before training."""
    base = {}
    for e in evaluations:
        for name, score in (e.get("scores") or {}).items():
            base.setdefault(name, score)
    return base


def reward_curves(metrics: list[dict], evaluations: Sequence[dict] = (), held_out=frozenset(),
                  x: str = "iteration", smoothing: float = 0.0) -> go.Figure:
    """Top: each training reward's mean over the iteration's samples (all its prompts), smoothed by
    `smoothing` (EMA weight; the raw means stay as faint points) with a ±std band. Bottom, on its own
    axis: each held-out score as its change since the base model, so rewards on different scales
    share a panel without one flattening the others. `x`: iterations, model evaluations or seconds."""
    xs, at = _x_positions(metrics, x)
    evaluated = _trainer_evaluations(evaluations)
    if not metrics and not evaluated:
        return _empty()
    rows = 2 if evaluated else 1
    fig = make_subplots(rows=rows, cols=1, shared_xaxes=True, vertical_spacing=0.14, row_heights=[0.6, 0.4][:rows],
                        subplot_titles=["training reward (mean over the iteration's samples)",
                                        "held-out evaluation: change since the base model"][:rows])
    names = list(dict.fromkeys(n for m in metrics for n in (m.get("rewards") or {})))
    for i, name in enumerate(names):
        stats = [(m.get("rewards") or {}).get(name) or {} for m in metrics]
        raw = [s.get("mean") for s in stats]
        spread = _extremes(metrics, lambda m: ((m.get("rewards") or {}).get(name) or {}).get("mean"))
        if spread:  # rows of several iterations: the range of their means, so a spike stays visible
            for trace in _band(xs, *spread, f"{name} min/max", colour(i), alpha=0.08, legendgroup=name):
                fig.add_trace(trace, row=1, col=1)
        means = ema(raw, smoothing)
        spread = ema([s.get("std") for s in stats], smoothing)
        band = [(xv, m, s) for xv, m, s in zip(xs, means, spread) if m is not None and s is not None]
        if band:  # one closed polygon: upper edge left to right, lower edge back
            bx, bm, bs = zip(*band)
            fig.add_trace(go.Scatter(x=bx + bx[::-1], y=[m + s for m, s in zip(bm, bs)] +
                                     [m - s for m, s in zip(bm, bs)][::-1],
                                     fill="toself", fillcolor=_translucent(colour(i), 0.12), line=dict(width=0),
                                     name=f"{name} ±std", legendgroup=name, showlegend=False, hoverinfo="skip"),
                          row=1, col=1)
        if smoothing > 0:
            fig.add_trace(go.Scatter(x=xs, y=raw, name=f"{name} (raw)", mode="markers", legendgroup=name,
                                     showlegend=False, marker=dict(color=colour(i), size=4, opacity=0.3)),
                          row=1, col=1)
        fig.add_trace(go.Scatter(x=xs, y=means, name=name, legendgroup=name, line=dict(color=colour(i), width=2),
                                 mode="lines+markers" if len(xs) == 1 else "lines"), row=1, col=1)
    base = _base_scores(evaluated)
    scored = list(dict.fromkeys(n for e in evaluated for n in (e.get("scores") or {})))
    for name in scored:
        index = names.index(name) if name in names else len(names) + scored.index(name)
        points = [(at(e["trained"]), e["scores"][name]) for e in evaluated if name in (e.get("scores") or {})]
        label = f"{name} (held out)" if name in held_out else f"{name} (eval)"
        fig.add_trace(go.Scatter(x=[p[0] for p in points], y=[p[1] - base[name] for p in points],
                                 customdata=[p[1] for p in points], name=label, mode="lines+markers",
                                 line=dict(color=colour(index), dash="dash"), marker=dict(size=7),
                                 hovertemplate=f"{name}: %{{customdata:.4g}} (%{{y:+.3g}} since base)<extra></extra>"),
                      row=rows, col=1)
    fig.update_xaxes(title_text=X_TITLES[x], row=rows, col=1)
    fig.update_yaxes(title_text="reward", row=1, col=1)
    if rows == 2:
        fig.update_yaxes(title_text="Δ score", zeroline=True, row=2, col=1)
    # the legend on the right, clear of the panels' titles above them
    fig = _layout(fig, None, height=560 if rows == 2 else 380, margin=dict(l=60, r=20, t=50, b=40),
                  legend=dict(orientation="v", x=1.01, xanchor="left", y=1, yanchor="top", bgcolor="rgba(0,0,0,0)"))
    return whole_iterations(fig, xs) if x == "iteration" else fig


def held_out_readout(evaluations: Sequence[dict], held_out=frozenset()) -> str:
    """One line per evaluated score: base → latest (change), for the status area."""
    evaluated = _trainer_evaluations(evaluations)
    if not evaluated:
        return ""
    base, latest = _base_scores(evaluated), {}
    for e in evaluated:
        latest.update(e.get("scores") or {})
    parts = [f"{name}{' (held out)' if name in held_out else ''} {base[name]:.4g} → {latest[name]:.4g} "
             f"({latest[name] - base[name]:+.3g})" for name in latest]
    return f"Held-out evaluation after {evaluated[-1]['trained']} iterations, since the base model: " + " · ".join(parts)


def _watched(evaluated: list[dict], held_out) -> list[str]:
    """The scores the warning watches: the held-out rewards if any were scored, else every score."""
    scored = list(dict.fromkeys(n for e in evaluated for n in (e.get("scores") or {})))
    return [n for n in scored if n in held_out] or scored


def recent_mean(rows: Sequence[dict], get, window: int):
    """The mean of `get(row)` over the last `window` iterations of `rows` (each row weighs its
    `count` of iterations, and the last rows are taken until they hold `window`); None if none."""
    total = weight = 0.0
    for row in reversed(rows):
        value = get(row)
        if value is not None:
            total, weight = total + value * row.get("count", 1), weight + row.get("count", 1)
            if weight >= window:
                break
    return total / weight if weight else None


def _training_at(metrics: list[dict], trained: int, window: int = 5):
    """The weighted training reward just before `trained` iterations: the mean of the last `window`
    iterations before it (a single iteration is too noisy to say "rising")."""
    return recent_mean([m for m in metrics if m["iteration"] < trained], lambda m: m.get("reward"), window)


def over_optimisation(metrics: list[dict], evaluations: Sequence[dict], held_out=frozenset(),
                      window: int = HACKING_WINDOW) -> dict | None:
    """None, or what shows reward hacking: over the last `window` evaluations the training reward
    rose while a watched held-out score fell at every one of them. {"scores": {name: (first, last)},
    "training": (first, last), "from": trained, "to": trained}."""
    evaluated = _trainer_evaluations(evaluations)[-window:]
    if len(evaluated) < window:
        return None
    start, end = evaluated[0]["trained"], evaluated[-1]["trained"]
    before, after = _training_at(metrics, max(start, 1)), _training_at(metrics, end)
    if before is None or after is None or after <= before:
        return None
    falling = {}
    for name in _watched(evaluated, held_out):
        scores = [(e.get("scores") or {}).get(name) for e in evaluated]
        if None not in scores and all(b < a for a, b in zip(scores, scores[1:])):
            falling[name] = (scores[0], scores[-1])
    if not falling:
        return None
    return {"scores": falling, "training": (before, after), "from": start, "to": end}


def best_checkpoint(evaluations: Sequence[dict], checkpoints: Sequence[dict], held_out=frozenset()) -> dict | None:
    """The checkpoint (a `jobs.queries.checkpoints` row) whose held-out evaluation was best, with
    {"checkpoint", "trained", "score"}: the watched scores' mean change since base, each in units of
    its own spread over the run (rewards on different scales count alike). None if no checkpoint
    was evaluated."""
    evaluated = _trainer_evaluations(evaluations)
    by_trained = {e["trained"]: e for e in evaluated}
    names, base = _watched(evaluated, held_out), _base_scores(evaluated)

    def spread(name):
        values = [e["scores"][name] for e in evaluated if name in (e.get("scores") or {})]
        return (max(values) - min(values)) or 1.0

    best = None
    for c in checkpoints:
        e = by_trained.get(c["trained"])
        if e is None or c["trained"] == 0:
            continue
        changes = [(e["scores"][n] - base[n]) / spread(n) for n in names if n in (e.get("scores") or {})]
        if changes and (best is None or sum(changes) / len(changes) > best["score"]):
            best = {"checkpoint": c["path"], "trained": c["trained"], "score": sum(changes) / len(changes)}
    return best


def warning_line(metrics: list[dict], evaluations: Sequence[dict], checkpoints: Sequence[dict],
                 held_out=frozenset()) -> str:
    """Markdown for the Monitor: the over-optimisation warning and the checkpoint to use, or ""."""
    hacking = over_optimisation(metrics, evaluations, held_out)
    if hacking is None:
        return ""
    before, after = hacking["training"]
    fell = ", ".join(f"{name} {a:.4g} → {b:.4g}" for name, (a, b) in hacking["scores"].items())
    line = (f"⚠️ **Over-optimisation?** From {hacking['from']} to {hacking['to']} iterations the training reward "
            f"rose ({before:.4g} → {after:.4g}) while held-out scores fell at every evaluation ({fell}).")
    best = best_checkpoint(evaluations, checkpoints, held_out)
    latest = checkpoints[-1]["path"] if checkpoints else None
    if best is not None and best["checkpoint"] != latest:
        line += (f" The best held-out checkpoint is `{best['checkpoint']}` (after {best['trained']} iterations), "
                 f"beside the latest `{latest}`: compare them in **Compare**.")
    return line
