"""Tables from result rows: the paper's Table 1 at the final budget, and the same at equal training time.

A result row is one evaluated model: {"method", "label", "seed", "fraction", "iteration",
"evaluations", "seconds", "scores": {reward: mean}}; the base model's row has method "base",
fraction 0 and no seed. Cells are mean ± std over seeds (sample std, n − 1); one seed gives the mean.
"""
from __future__ import annotations

import numpy as np


def metrics(rewards: list[str], held_out: set[str]) -> list[tuple[str, bool]]:
    """(column, is out-of-domain) for every reward. No separate held-out mean: on the shapes world
    `adherence` is exactly the mean of the four held-out verifiers."""
    return [(name, name in held_out) for name in rewards]


def mean_std(values: list[float]) -> tuple[float, float]:
    values = np.asarray(values, dtype=float)
    return float(values.mean()), float(values.std(ddof=1)) if len(values) > 1 else 0.0


def cell(values: list[float], digits: int = 3, bold: bool = False) -> str:
    if not values:
        return "—"
    mean, std = mean_std(values)
    text = f"{mean:.{digits}f}" + (f" ± {std:.{digits}f}" if len(values) > 1 else "")
    return f"**{text}**" if bold else text


def final_rows(rows: list[dict], method: str) -> list[dict]:
    """One row per seed: the method's checkpoint at the full budget (fraction 1)."""
    return [r for r in rows if r["method"] == method and r["fraction"] == 1.0]


def interpolate(rows: list[dict], base: dict, method: str, seconds: float, columns: list[str]) -> list[dict]:
    """Per seed, each column linearly interpolated in training time between the base (t = 0) and the
    seed's checkpoints, at `seconds` (no seed's run may have stopped before it)."""
    out = []
    for seed in sorted({r["seed"] for r in rows if r["method"] == method}):
        points = sorted((r for r in rows if r["method"] == method and r["seed"] == seed), key=lambda r: r["seconds"])
        times = [0.0] + [r["seconds"] for r in points]
        scores = {c: float(np.interp(seconds, times, [base["scores"][c]] + [r["scores"][c] for r in points]))
                  for c in columns}
        out.append({"seed": seed, "scores": scores, "seconds": seconds})
    return out


def render(groups: dict[str, tuple[str, list[dict]]], base: dict | None, columns: list[tuple[str, bool]],
           training: str, extra: list[tuple[str, str, int]]) -> str:
    """Markdown: a base row, then one row per method ({key: (label, rows of its seeds)}); the best
    method mean of each score column in bold; `extra` columns are (header, row key, digits)."""
    names = [c for c, _ in columns]
    header = ["training reward", "method", *[f"{c} ({'out-of-domain' if h else 'in-domain'})" for c, h in columns],
              *[h for h, _, _ in extra]]
    lines = ["| " + " | ".join(header) + " |", "|" + " --- |" * len(header)]
    if base is not None:
        lines.append("| — | " + " | ".join([base["label"], *[cell([base["scores"][c]]) for c in names],
                                             *["0" for _ in extra]]) + " |")
    means = {c: [mean_std([r["scores"][c] for r in rows])[0] for _, rows in groups.values() if rows] for c in names}
    for label, rows in groups.values():
        cells = [cell([r["scores"][c] for r in rows],
                      bold=bool(rows) and mean_std([r["scores"][c] for r in rows])[0] == max(means[c])) for c in names]
        cells += [cell([r[key] for r in rows], digits) for _, key, digits in extra]
        lines.append("| " + " | ".join([training, label, *cells]) + " |")
    return "\n".join(lines)


def table_markdown(rows: list[dict], methods: list[tuple[str, str]], rewards: list[str], held_out: set[str],
                   training: str) -> str:
    """Table 1 at the final budget, then the same models compared at equal training time."""
    columns = metrics(rewards, held_out)
    names = [c for c, _ in columns]
    base = next((r for r in rows if r["method"] == "base"), None)
    final = {key: (label, final_rows(rows, key)) for key, label in methods}
    text = ["## At the same budget of model evaluations (the final checkpoint of every run)", "",
            render(final, base, columns, training,
                   [("iterations", "iteration", 0), ("evaluations", "evaluations", 0), ("train s", "seconds", 1)])]
    if base is not None and any(rs for _, rs in final.values()):
        # The fastest method's time at the full budget: every run has a checkpoint at or after it.
        seconds = min(min(r["seconds"] for r in rs) for _, rs in final.values() if rs)
        timed = {key: (label, interpolate(rows, base, key, seconds, names)) for key, label in methods if final[key][1]}
        text += ["", f"## At the same training time ({seconds:.0f} s: the shortest run at the full budget), "
                     "scores linearly interpolated in time between the base model and each run's checkpoints", "",
                 render(timed, base, columns, training, [])]
    return "\n".join(text) + "\n"
