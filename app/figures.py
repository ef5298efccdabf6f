"""Plotly figures for the UI: pure functions from the jobs API's data to `go.Figure`s for `gr.Plot`.

Nothing here touches the database or torch; every function takes what `jobs.queries` returns
(metrics rows, evaluations, attribution history, one iteration's heatmap) and returns a figure.
Curve rows of a long run each stand for several iterations (jobs.rollup): their values are means,
and their `low` and `high` hold each value's min and max, drawn as a faint band so spikes show.
All figures share one layout (`_layout`) whose `uirevision` keeps the user's zoom across live
updates, and every function returns a figure with a centred note (`_empty`) when there is no data.
Stored NaN/inf arrive as None; plotly draws None as a gap, so they are passed through as they are.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from itertools import accumulate

import plotly.graph_objects as go
from plotly.colors import qualitative
from plotly.subplots import make_subplots

from app import escape

PALETTE = qualitative.Plotly
UIREVISION = "g2rpo"  # constant: plotly keeps zoom/pan/legend state while this does not change
TRANSPARENT = "rgba(0,0,0,0)"

X_TITLES = {"iteration": "iteration",
            "model_evaluations": "model evaluations (cumulative)",
            "seconds": "wall time (s, cumulative)"}
STEP_VALUES = {"abs_advantage": "mean |advantage|",
               "reward_std": "reward std in group"}
PHASES = ("rollout", "reward", "train")


# --- shared helpers -------------------------------------------------------------------------------

def colour(i: int) -> str:
    """The i-th colour of the palette: reward models and runs keep their colour across figures."""
    return PALETTE[i % len(PALETTE)]


def _translucent(hex_colour: str, alpha: float = 0.2) -> str:
    """'#636efa' -> 'rgba(99,110,250,0.2)', for shaded bands in a trace's own colour."""
    r, g, b = (int(hex_colour[i:i + 2], 16) for i in (1, 3, 5))
    return f"rgba({r},{g},{b},{alpha})"


def _layout(fig: go.Figure, title: str | None = None, **layout) -> go.Figure:
    """The look every figure shares: compact margins, legend on top, stable zoom, and no colours of
    its own behind the data: the backgrounds are transparent so the page's light or dark theme shows
    through (static/style.css recolours text and grid lines under Gradio's `.dark`)."""
    shared = dict(template="plotly_white", title=title, uirevision=UIREVISION,
                  paper_bgcolor=TRANSPARENT, plot_bgcolor=TRANSPARENT,
                  margin=dict(l=50, r=20, t=70 if title else 40, b=40),
                  legend=dict(orientation="h", yanchor="bottom", y=1.02, x=0, bgcolor=TRANSPARENT))
    fig.update_layout(**(shared | layout))  # a figure may override a shared setting
    # "1e-8", not plotly's SI prefixes: a loss of 1e-8 would read "10n"
    fig.update_yaxes(exponentformat="e")
    return fig


def whole_iterations(fig: go.Figure, xs: Sequence) -> go.Figure:
    """Ticks at whole iterations: on a few iterations plotly would put ticks at 0.5, 1.5, ..."""
    values = [x for x in xs if x is not None]
    if values and max(values) - min(values) < 10:
        fig.update_xaxes(dtick=1)
    return fig


def _empty(message: str = "no data yet", title: str | None = None) -> go.Figure:
    """A blank figure with `message` in the middle (before the first iteration, nothing to compare...)."""
    fig = go.Figure()
    fig.add_annotation(text=message, x=0.5, y=0.5, xref="paper", yref="paper",
                       showarrow=False, font=dict(size=16, color="gray"))
    fig.update_xaxes(visible=False)
    fig.update_yaxes(visible=False)
    return _layout(fig, title)


def _line(x: Sequence, y: Sequence, name: str, colour_: str, **kwargs) -> go.Scatter:
    """A line trace; a single point also gets a marker (a lone point has no line to draw)."""
    mode = "lines+markers" if len(x) == 1 else "lines"
    return go.Scatter(x=list(x), y=list(y), name=name, mode=mode, line=dict(color=colour_), **kwargs)


def _extremes(metrics: Sequence[dict], get) -> tuple[list, list] | None:
    """Each row's min and max of the value `get` reads from a row, where rows span several
    iterations (their `low` and `high`); None when every row is one iteration."""
    if not any("low" in m for m in metrics):
        return None
    return [get(m.get("low", m)) for m in metrics], [get(m.get("high", m)) for m in metrics]


def _band(x: Sequence, low: Sequence, high: Sequence, name: str, colour_: str, alpha: float = 0.2, **kwargs) -> list:
    """A shaded band between `low` and `high` (the low edge, then the high one filled to it)."""
    return [_line(x, low, name, colour_, line_width=0, showlegend=False, hoverinfo="skip", **kwargs),
            _line(x, high, name, colour_, line_width=0, fill="tonexty", fillcolor=_translucent(colour_, alpha),
                  showlegend=False, hoverinfo="skip", **kwargs)]


def _x_positions(metrics: list[dict], x: str):
    """Training x values (one per metrics row) and a function placing an evaluation of the model
    after `trained` iterations: for the cumulative axes, the total of the iterations before it (0 = base)."""
    if x not in X_TITLES:
        raise ValueError(f"x must be one of {sorted(X_TITLES)}, not {x!r}")
    if x == "iteration":
        return [m["iteration"] for m in metrics], lambda trained: trained
    totals = list(accumulate(m.get(x) or 0 for m in metrics))
    return totals, lambda trained: sum(m.get(x) or 0 for m in metrics if m["iteration"] < trained)


def _eval_trace(evaluations: Sequence[dict], name: str, at, label: str, colour_: str) -> go.Scatter | None:
    """The held-out evaluation scores of reward `name` as dashed markers+lines (None if never scored).
    Placed by `trained` (iterations trained; 0 = base); evaluations added later without it are skipped."""
    points = [(at(e["trained"]), e["scores"][name]) for e in evaluations
              if e.get("trained") is not None and name in e.get("scores", {})]
    if not points:
        return None
    xs, ys = zip(*points)
    return go.Scatter(x=xs, y=ys, name=label, mode="lines+markers",
                      line=dict(color=colour_, dash="dash"), marker=dict(size=8))


def _mean(values) -> float | None:
    """Mean of the non-None values, None if there are none."""
    present = [v for v in values if v is not None]
    return sum(present) / len(present) if present else None


def _short(heat: dict, prompt: int, limit: int = 60) -> str:
    """The prompt's text, cut to fit a title."""
    prompts = heat.get("prompts") or []
    text = str(prompts[prompt]) if prompt < len(prompts) else ""
    return escape.plot(text if len(text) <= limit else text[:limit - 1] + "…")  # a prompt is no markup


# --- training progress ----------------------------------------------------------------------------

def reward_value(metric: dict, reward: str):
    """A metrics row's value of `reward` (a reward model's mean, or "total": the weighted sum)."""
    if reward == "total":
        return metric.get("reward")
    return ((metric.get("rewards") or {}).get(reward) or {}).get("mean")


def overlay(runs: Sequence[dict], x: str = "iteration", reward: str | None = None) -> go.Figure:
    """One reward across several runs (G²RPO against its baselines): each run's training mean as a
    line and its held-out evaluation of that reward as dashed markers, one colour per run.
    `reward` names a reward model (default: the first run's first) or "total" for the weighted sum."""
    _x_positions([], x)  # reject an invalid x even when there is nothing to draw
    if reward is None:
        first = next((r["metrics"][0] for r in runs if r.get("metrics")), None)
        reward = next(iter(first.get("rewards") or {}), "total") if first else "total"
    fig = go.Figure()
    for i, run in enumerate(runs):
        metrics = run.get("metrics") or []
        xs, at = _x_positions(metrics, x)
        label = escape.plot(run["label"])  # a run's name is the text it is, never a link
        if metrics:
            fig.add_trace(_line(xs, [reward_value(m, reward) for m in metrics], label, colour(i), legendgroup=label))
        trace = _eval_trace(run.get("evaluations") or (), reward, at, f"{label} (eval)", colour(i))
        if trace is not None:
            trace.legendgroup = label
            fig.add_trace(trace)
    if not fig.data:
        return _empty()
    fig.update_xaxes(title_text=X_TITLES[x])
    fig.update_yaxes(title_text=reward)
    return _layout(fig, f"{reward}: runs compared")


def _flat(values, constant: float) -> bool:
    """True when every recorded value is exactly `constant` (or nothing was recorded): a panel that
    is flat by construction (an on-policy ratio of 1, no clipping, no KL term) says nothing."""
    return all(v is None or v == constant for v in values)


def diagnostics(metrics: list[dict]) -> go.Figure:
    """Small multiples of the optimisation's health per iteration: loss, importance ratio (mean with
    min/max band), clip fraction, how far the policy moved from the base (relative velocity change on
    a fixed probe batch: a run that did not move is told apart from one that moved without gain), KL,
    gradient norm, and where the wall time went (stacked phases). Panels flat by construction (ratio
    exactly 1, clip fraction 0, KL 0) are left out and named in the title instead."""
    if not metrics:
        return _empty()
    records = [m.get("record") or {} for m in metrics]
    has_kl = any(r.get("kl") is not None for r in records)
    kl_title = "KL to reference" if has_kl else "approx KL (old→new)"

    def column(key):
        return lambda m: m.get(key)

    def recorded(key):
        return lambda m: (m.get("record") or {}).get(key)

    kl = recorded("kl") if has_kl else column("approx_kl")
    # A forward-process run (DiffusionNFT) has no likelihood ratio: its panel shows how far the
    # trained velocity moved from the rollout policy's within the iteration instead.
    forward = any(r.get("old_deviation") is not None for r in records)
    xs = [m["iteration"] for m in metrics]

    def seen(get):  # every value drawn: the rows' and, for long runs, their extremes
        spread = _extremes(metrics, get)
        return [get(m) for m in metrics] + (spread[0] + spread[1] if spread else [])

    ratios = seen(column("ratio_mean")) + seen(column("ratio_min")) + seen(column("ratio_max"))

    def single(key, get, colour_=colour(0)):
        spread = _extremes(metrics, get)
        band = _band(xs, *spread, f"{key} min/max", colour_, alpha=0.15) if spread else []
        return band + [_line(xs, [get(m) for m in metrics], key, colour_, showlegend=False)]

    def ratio():
        if forward:
            return single("old deviation", recorded("old_deviation"), colour(1))
        # min then max filled to it ("tonexty"), then the mean on top; a long run's rows: their extremes
        low = [m.get("low", m).get("ratio_min") for m in metrics]
        high = [m.get("high", m).get("ratio_max") for m in metrics]
        band = _band(xs, low, high, "ratio min/max", colour(1))
        band[1].showlegend = True
        return band + [_line(xs, [m.get("ratio_mean") for m in metrics], "ratio mean", colour(1))]

    candidates = [  # (title, traces, flat by construction, what the title says when it is left out)
        ("loss", single("loss", column("loss")), False, ""),
        ("mean (v − v_old)² in the update" if forward else "importance ratio", ratio(),
         not forward and _flat(ratios, 1.0), "ratio ≡ 1"),
        ("clip fraction", single("clip_fraction", column("clip_fraction")), _flat(seen(column("clip_fraction")), 0.0),
         "clip fraction ≡ 0"),
        ("policy movement ‖Δv‖/‖v_base‖", single("policy_movement", recorded("policy_movement")), False, ""),
        (kl_title, single(kl_title, kl), _flat(seen(kl), 0.0), "KL ≡ 0"),
        ("grad norm", single("grad_norm", column("grad_norm")), False, ""),
    ]
    panels = [(title, traces) for title, traces, flat, _ in candidates if not flat]
    hidden = [note for _, _, flat, note in candidates if flat]
    cells, row, col = [], 1, 1  # place the small panels row by row, then the 2-wide timings panel
    for _ in panels:
        cells.append((row, col))
        row, col = (row, col + 1) if col < 4 else (row + 1, 1)
    if col > 3:
        row, col = row + 1, 1
    rows = row
    specs = [[{} if (r, c) in cells else None for c in range(1, 5)] for r in range(1, rows + 1)]
    specs[row - 1][col - 1] = {"colspan": 2}
    fig = make_subplots(rows=rows, cols=4, shared_xaxes=True, vertical_spacing=0.12 if rows > 1 else 0.2,
                        specs=specs, subplot_titles=[title for title, _ in panels] + ["time per iteration (s)"])
    for (title, traces), (r, c) in zip(panels, cells):
        for trace in traces:
            fig.add_trace(trace, row=r, col=c)
    for i, phase in enumerate(PHASES):
        fig.add_trace(go.Bar(x=xs, y=[(r.get("time") or {}).get(phase) for r in records], name=phase,
                             marker_color=colour(i + 2)), row=row, col=col)
    fig.update_xaxes(title_text="iteration", row=rows)
    title = f"not shown, flat by construction: {', '.join(hidden)}" if hidden else None
    return whole_iterations(_layout(fig, title, barmode="stack", height=230 * rows + 100,
                                    margin=dict(l=50, r=20, t=110 if title else 80, b=40),
                                    legend=dict(orientation="h", yanchor="bottom", y=1.08, x=0),
                                    title_font=dict(size=13)), xs)


# --- G²RPO's attribution: where in the trajectory the signal sits ---------------------------------

def step_labels(steps: list[int], spans: dict[int, int] | None = None) -> list[str]:
    """Axis labels of branch steps: "k", or "k→k+m" where E-GRPO merges m grid steps into one."""
    spans = spans or {}
    return [f"{k}→{k + spans[k]}" if spans.get(k, 1) > 1 else str(k) for k in steps]


def step_title(spans: dict[int, int] | None) -> str:
    merged = " · k→j: one SDE step from s_k to s_j (E-GRPO)" if any(m > 1 for m in (spans or {}).values()) else ""
    return f"branch step k (0 = pure noise){merged}"


def step_heatmap(history: dict, value: str = "abs_advantage", spans: dict[int, int] | None = None) -> go.Figure:
    """Over training (x: iteration bins) and the denoising trajectory (y: branch step k), either the
    mean |advantage| (where the learning signal sits) or the group's reward std (how much the noise
    injected at k moves the reward)."""
    if value not in STEP_VALUES:
        raise ValueError(f"value must be one of {sorted(STEP_VALUES)}, not {value!r}")
    if not history or not history.get("iterations"):
        return _empty()
    steps = history["branch_steps"]
    z = [[row[j] for row in history[value]] for j in range(len(steps))]  # [bin][k] -> [k][bin]
    every = history.get("every", 1)
    top = max((v for row in z for v in row if v is not None), default=0) or 1.0
    # anchored at 0 (both values are >= 0): a scale from the smallest value exaggerates differences
    fig = go.Figure(go.Heatmap(x=history["iterations"], y=steps, z=z, colorscale="Viridis", zmin=0, zmax=top,
                               colorbar=dict(title=dict(text=STEP_VALUES[value])),
                               hovertemplate="iteration %{x}<br>k = %{y}<br>%{z:.3g}<extra></extra>"))
    fig.update_xaxes(title_text="iteration" if every <= 1 else f"iteration (bins of {every})")
    fig.update_yaxes(title_text=step_title(spans), tickmode="array", tickvals=steps, ticktext=step_labels(steps, spans))
    return _layout(fig, STEP_VALUES[value])


def member_heatmap(heat: dict | None, prompt: int = 0) -> go.Figure:
    """One iteration and prompt: each group member's mixed advantage at each branch step k, red/blue
    around zero: which members were pushed up or down, and from which step."""
    if not heat or not heat.get("mixed_advantage"):
        return _empty()
    by_k = heat["mixed_advantage"][prompt]  # [k][member]
    members = list(range(len(by_k[0]) if by_k else 0))
    z = [[row[member] for row in by_k] for member in members]  # -> [member][k]
    fig = go.Figure(go.Heatmap(x=heat["branch_steps"], y=members, z=z, colorscale="RdBu", zmid=0,
                               colorbar=dict(title=dict(text="mixed advantage")),
                               hovertemplate="k = %{x}<br>member %{y}<br>%{z:.3g}<extra></extra>"))
    spans = dict(zip(heat["branch_steps"], heat.get("merge_steps") or []))
    fig.update_xaxes(title_text=step_title(spans), tickmode="array", tickvals=heat["branch_steps"],
                     ticktext=step_labels(heat["branch_steps"], spans))
    fig.update_yaxes(title_text="group member", dtick=1)
    return _layout(fig, f"iteration {heat['iteration']} · prompt {prompt}: {_short(heat, prompt)}")


def granularity_bars(heat: dict | None, prompt: int = 0, k_index: int = 0, weights=None) -> go.Figure:
    """The paper's figure, for one (iteration, prompt, branch step): each member's advantage at every
    granularity λ (combined over reward models as Σ_m weights[m]·advantage_m), next to the mixed
    advantage they are averaged into. `weights`: a sequence in reward-model order or {name: weight}."""
    if not heat or not heat.get("advantages"):
        return _empty()
    names = heat["reward_names"]
    if weights is None:
        weights = [1.0] * len(names)
    elif isinstance(weights, Mapping):
        weights = [weights.get(name, 1.0) for name in names]
    per_model = [heat["advantages"][m][prompt][k_index] for m in range(len(names))]  # [m][λ][member]
    fig = go.Figure()
    for j, granularity in enumerate(heat["granularities"]):
        combined = [None if any(v is None for v in values) else sum(w * v for w, v in zip(weights, values))
                    for values in zip(*(adv[j] for adv in per_model))]  # one tuple of m values per member
        fig.add_trace(go.Bar(x=list(range(len(combined))), y=combined, name=f"λ={granularity}",
                             marker_color=colour(j)))
    mixed = heat["mixed_advantage"][prompt][k_index]
    fig.add_trace(go.Scatter(x=list(range(len(mixed))), y=mixed, name="mixed", mode="markers",
                             marker=dict(symbol="diamond", size=11, color="black")))
    fig.update_xaxes(title_text="group member", dtick=1)
    fig.update_yaxes(title_text="advantage")
    k = heat["branch_steps"][k_index]
    return _layout(fig, f"iteration {heat['iteration']} · prompt {prompt} · k = {k}: {_short(heat, prompt)}",
                   barmode="group")


def granularity_agreement(history: dict) -> go.Figure:
    """Per iteration bin, the mean pairwise correlation between the advantages of different
    granularities λ (averaged over branch steps): near 1 the granularities say the same thing."""
    if not history or not history.get("iterations"):
        return _empty()
    means = [_mean(row) for row in history.get("agreement") or []]
    if all(v is None for v in means):
        return _empty("one granularity: nothing to compare")
    fig = go.Figure(_line(history["iterations"], means, "agreement", colour(0)))
    fig.update_xaxes(title_text="iteration")
    fig.update_yaxes(title_text="mean correlation across λ", range=[-1.05, 1.05])
    return whole_iterations(_layout(fig, "granularity agreement"), history["iterations"])
