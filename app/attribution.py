"""G²RPO's attribution over a window of iterations and their prompts, as the Monitor draws it.

One (iteration, prompt, branch step k) cell holds the G members' advantages at each granularity λ
and their mixed advantage. Member indices mean nothing across cells (member 3 of one prompt is no
kin of member 3 of another), so a window is averaged by **rank**: within each cell the members are
ordered by their mixed advantage (0: the highest) and the r-th ranked values are averaged. The
member × step map then shows how sharply each step k separates its best members from its worst,
and the granularity bars whether the λ agree with the mixed ranking. A single cell keeps its
members as they are. The per-step summary is taken over the same cells.

Pure functions of `jobs.queries.attribution_window`'s answer; figures through app.figures.
"""
from __future__ import annotations

from app import figures

MAX_WINDOW = 200  # iterations averaged at most (a default run stores 8 cells per iteration and prompt)


def _mean(values):
    known = [v for v in values if v is not None]
    return sum(known) / len(known) if known else None


def cells(window: dict, prompt: int | None = None) -> list[dict]:
    """The window's cells, of one prompt index (None: all the iterations' prompts)."""
    return [c for c in window["cells"] if prompt is None or c["prompt"] == prompt]


def _order(mixed: list) -> list[int]:
    """Member indices by mixed advantage, highest first (unknown values last)."""
    return sorted(range(len(mixed)), key=lambda i: (mixed[i] is None, -(mixed[i] or 0.0)))


def average(window: dict, weights: dict[str, float] | None = None, prompt: int | None = None) -> dict | None:
    """{"mixed": [k][member], "by_lambda": [k][λ][member] (Σ_m weight_m · advantage_m), "ranked",
    "groups"}: one group (an iteration's prompt) as it is, several averaged by rank. None if the
    window has no such group."""
    chosen = cells(window, prompt)
    if not chosen:
        return None
    w = [(weights or {}).get(name, 1.0) for name in window["reward_names"]]
    steps, lambdas = window["branch_steps"], window["granularities"]
    groups = len({(c["iteration"], c["prompt"]) for c in chosen})
    ranked = groups > 1
    mixed = {k: [] for k in steps}
    by_lambda = {k: [[] for _ in lambdas] for k in steps}
    for cell in chosen:
        if cell["k"] not in mixed:
            continue
        order = _order(cell["mixed_advantage"]) if ranked else range(len(cell["mixed_advantage"]))
        mixed[cell["k"]].append([cell["mixed_advantage"][i] for i in order])
        for j in range(len(lambdas)):
            per_member = zip(*(adv[j] for adv in cell["advantages"]))  # one tuple of reward models per member
            combined = [None if None in values else sum(a * v for a, v in zip(w, values)) for values in per_member]
            by_lambda[cell["k"]][j].append([combined[i] for i in order])

    def column_means(rows):  # [cell][member] -> [member], averaging the cells that have that member
        return [_mean(row[i] for row in rows if i < len(row)) for i in range(max((len(r) for r in rows), default=0))]

    return {"mixed": [column_means(mixed[k]) for k in steps],
            "by_lambda": [[column_means(rows) for rows in by_lambda[k]] for k in steps],
            "ranked": ranked, "groups": groups}


def describe(window: dict, prompt: int | None, count: int) -> str:
    """A title: "iterations 40–49 · mean of 20 groups, by rank" or "iteration 49 · prompt 0: ..."."""
    span = (f"iteration {window['last']}" if window["first"] == window["last"]
            else f"iterations {window['first']}–{window['last']}")
    if count == 1:
        text = figures._short({"prompts": window["prompts"]}, prompt or 0, 50)
        return f"{span} · prompt {prompt or 0}: {text}"
    which = f" (prompt {prompt} of each)" if prompt is not None else ""
    return f"{span} · mean of {count} groups{which}, by rank"


def _as_heat(window: dict, avg: dict) -> dict:
    """The average in the layout figures.member_heatmap and granularity_bars take (one prompt, one
    already weighted reward model)."""
    return {"iteration": window["last"], "prompts": [""], "reward_names": ["weighted"],
            "branch_steps": window["branch_steps"], "granularities": window["granularities"],
            "merge_steps": window.get("merge_steps"), "mixed_advantage": [avg["mixed"]],
            "advantages": [[avg["by_lambda"]]]}


def member_figure(window: dict | None, weights=None, prompt: int | None = None):
    avg = average(window, weights, prompt) if window else None
    if avg is None:
        return figures.member_heatmap(None)
    fig = figures.member_heatmap(_as_heat(window, avg))
    if avg["ranked"]:  # rank 0 on top
        fig.update_yaxes(title_text="member rank (0: highest mixed adv.)", autorange="reversed")
    return fig.update_layout(title_text=describe(window, prompt, avg["groups"]))


def bars_figure(window: dict | None, k, weights=None, prompt: int | None = None):
    avg = average(window, weights, prompt) if window else None
    if avg is None:
        return figures.granularity_bars(None)
    steps = window["branch_steps"]
    k_index = steps.index(k) if k in steps else 0
    fig = figures.granularity_bars(_as_heat(window, avg), 0, k_index, [1.0])
    if avg["ranked"]:
        fig.update_xaxes(title_text="member rank (0: highest mixed advantage)")
    return fig.update_layout(title_text=f"k = {steps[k_index]} · {describe(window, prompt, avg['groups'])}")


def step_summary(window: dict | None, prompt: int | None = None) -> str:
    """A sentence to quote: each branch step's share of the reward's variance within groups (the
    square of the group's reward std at k, averaged over the window's cells)."""
    chosen = cells(window, prompt) if window else []
    steps = window["branch_steps"] if window else []
    variance = [_mean(c["reward_std"] ** 2 for c in chosen if c["k"] == k and c["reward_std"] is not None)
                for k in steps]
    total = sum(v for v in variance if v is not None)
    if not total:
        return ""
    shares = " · ".join(f"k={k}: {v / total:.0%}" for k, v in zip(steps, variance) if v is not None)
    top = max((v, k) for k, v in zip(steps, variance) if v is not None)[1]
    groups = len({(c["iteration"], c["prompt"]) for c in chosen})
    span = (f"iteration {window['first']}" if window["first"] == window["last"]
            else f"iterations {window['first']}–{window['last']}")
    which = f"prompt {prompt} of each" if prompt is not None else "all their prompts"
    sentence = (f"**Where the reward's variance sits** ({span}, {groups} group{'s' if groups > 1 else ''}: {which}): {shares}. "
                f"Step k={top} carries the most.")
    table = share_table(window, prompt)
    return f"{sentence}\n\n{table}" if table else sentence


# --- Each step's share of the reward's variance, per reward and verifier (the default view) --------

SHARE_EXPLAINER = """**Variance share per step (the default colour).** For every reward model and, on the
built-in world, every verifier (background, colour, shape, count), the variance of the G members' scores
in a (prompt, k) group, at the finest λ, averaged over the window's groups: V_k. A block's column is
V_k / Σ V over the branch steps, in %, so it sums to 100%: which steps' noise decides that property.
Equal shares would be 100% / |K|. A property whose members never differ at any step (decided before
the first branch, by the anchor's shared initial noise) has no share: its column is blank.
`python -m engine.attribution` measures the same without training, with intervals and against
independent initial noises (see docs/attribution.md in the repository).

**Why |advantage| is only the second colour.** Advantages are z-scores within each (prompt, k) group,
summed over λ: whatever the step, the mean |advantage| is about 2 by construction (as long as the
members differ at all), so that map is nearly uniform. It shows where G²RPO *credits* signal, not
where the reward comes from."""

MIN_WINDOW = 5  # iterations per column of the share map at least: one iteration's few groups are noisy
MAX_COLUMNS = 40


def _windows(history: dict) -> list[tuple[int, int, list[int]]]:
    """History rows grouped into columns of at least MIN_WINDOW iterations, at most MAX_COLUMNS of
    them: (first iteration, last iteration, row indices) each."""
    rows, every = len(history["iterations"]), history.get("every", 1) or 1
    size = max(1, -(-MIN_WINDOW // every), -(-rows // MAX_COLUMNS))
    out = []
    for start in range(0, rows, size):
        picked = list(range(start, min(start + size, rows)))
        out.append((history["iterations"][picked[0]], history["iterations"][picked[-1]] + every - 1, picked))
    return out


def _share_of(variances: list[list[float | None]]) -> list[float | None]:
    """Rows' variances per step [row][k] -> the pooled share per step in % (None where undefined)."""
    steps = len(variances[0]) if variances else 0
    means = [_mean(row[k] for row in variances) for k in range(steps)]
    total = sum(v for v in means if v is not None)
    return [None if v is None or total <= 0 else 100 * v / total for v in means]


def share_map(history: dict, spans: dict[int, int] | None = None) -> "figures.go.Figure":
    """Over training (columns: windows of iterations) and the trajectory (rows: branch steps k), one
    block per reward model and verifier component: each step's share of that score's within-group
    variance in %, every column of a block summing to 100%."""
    rows = (history or {}).get("variance") or []
    names = list(dict.fromkeys(name for row in rows for name in row))
    if not names:
        return figures._empty("no per-step variance stored for this run yet (choose mean |advantage|)")
    steps = history["branch_steps"]
    columns = _windows(history)
    labels = [f"{a}" if a == b else f"{a}–{b}" for a, b, _ in columns]
    blocks = {name: [_share_of([rows[i][name] for i in picked if name in rows[i]]) for _, _, picked in columns]
              for name in names}  # [column][k]
    top = max((v for block in blocks.values() for col in block for v in col if v is not None), default=0)
    top = max(10 * -(-top // 10), 10, 200 / max(len(steps), 1))  # anchored at 0; uniform sits mid-scale or lower
    fig = figures.make_subplots(rows=len(names), cols=1, shared_xaxes=True, vertical_spacing=0.04,
                                subplot_titles=names)
    for r, name in enumerate(names, start=1):
        z = [[col[j] for col in blocks[name]] for j in range(len(steps))]  # [k][column]
        text = [[None if v is None else f"{v:.0f}%" for v in row] for row in z]
        fig.add_trace(figures.go.Heatmap(
            x=labels, y=[str(s) for s in figures.step_labels(steps, spans)], z=z, text=text, zmin=0, zmax=top,
            colorscale="Viridis", showscale=r == 1, name=name,
            colorbar=dict(title=dict(text="share of the<br>variance"), ticksuffix="%", len=0.5, y=1, yanchor="top"),
            hovertemplate=f"{name}<br>iterations %{{x}}<br>k = %{{y}}<br>%{{z:.1f}}% of its variance<extra></extra>"),
            row=r, col=1)
        fig.update_yaxes(title_text="k", autorange="reversed", type="category", row=r, col=1)
    fig.update_xaxes(title_text="iterations (each column a window; a block's column sums to 100%)", type="category",
                     row=len(names), col=1)
    uniform = 100 / max(len(steps), 1)
    return figures._layout(fig, f"Share of each score's within-group variance injected at step k (equal shares: {uniform:.1f}%)",
                           height=110 + 150 * len(names), margin=dict(l=60, r=20, t=90, b=50))


def share_table(window: dict | None, prompt: int | None = None) -> str:
    """The window's shares as a Markdown table (rows k, columns reward and verifiers), each with its
    95% bootstrap interval over the window's groups (engine.attribution's math; numpy only)."""
    import numpy as np

    from engine.attribution import resampling_weights, share_interval

    chosen = cells(window, prompt) if window else []
    if not chosen or not chosen[0].get("variance"):
        return ""
    steps = window["branch_steps"]
    groups = sorted({(c["iteration"], c["prompt"]) for c in chosen})
    index = {g: i for i, g in enumerate(groups)}
    names = list(chosen[0]["variance"])
    columns = {}
    for name in names:
        var = np.full((len(groups), len(steps)), np.nan)
        for c in chosen:
            if c["k"] in steps and c["variance"].get(name) is not None:
                var[index[(c["iteration"], c["prompt"])], steps.index(c["k"])] = c["variance"][name]
        var = var[np.isfinite(var).all(1)]  # whole groups only
        if len(var) == 0:
            continue
        columns[name] = share_interval(var, resampling_weights(len(var), 1000))
    if not columns:
        return ""

    def cell(interval, j):
        value = interval["value"][j]
        if not np.isfinite(value):
            return "—"
        return f"{100 * value:.0f}% [{100 * interval['low'][j]:.0f}–{100 * interval['high'][j]:.0f}]"

    lines = [f"**Each score's variance by step** ({len(groups)} group{'s' if len(groups) > 1 else ''}; "
             "a column sums to 100%, 95% interval over groups; — : never varies)", "",
             "| k | " + " | ".join(columns) + " |", "|---|" + "---|" * len(columns)]
    lines += [f"| {k} | " + " | ".join(cell(iv, j) for iv in columns.values()) + " |" for j, k in enumerate(steps)]
    return "\n".join(lines)
