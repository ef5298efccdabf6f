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
    return (f"**Where the reward's variance sits** ({span}, {groups} group{'s' if groups > 1 else ''}: {which}): {shares}. "
            f"Step k={top} carries the most.")
