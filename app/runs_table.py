"""The Runs table: one row per run, newest first, with what one sorts and filters runs by: status,
progress, ETA, latest reward, best held-out score, tags, duration, the duration the cost preview
predicted when it was submitted (jobs/forecast.py; for its first planned iterations: a run trained
longer ran more) and the win rate people gave it in a blind A/B test (app/ab_results.run_cell).
Sorting (a header's menu) and filtering (the search box) happen in the page.
"""
from __future__ import annotations

COLUMNS = ["id", "name", "tags", "algorithm", "model", "status", "progress", "ETA", "reward", "best held-out",
           "duration (min)", "predicted (min)", "blind A/B: win rate (95%)", "created (UTC)"]
# numbers sort as numbers; the rest as text
DATATYPES = ["number", "str", "str", "str", "str", "str", "str", "str", "number", "number", "number", "str", "str", "str"]


def eta(seconds: float | None) -> str:
    if seconds is None:
        return ""
    minutes, s = divmod(int(round(seconds)), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h {minutes:02d}m" if hours else f"{minutes}m {s:02d}s"


def predicted(estimate: dict | None) -> str:
    """The preview's range in minutes, "7.0–9.8" ("" for a run submitted before forecasts were kept)."""
    if not estimate:
        return ""
    return f"{estimate['low_s'] / 60:.1f}–{estimate['high_s'] / 60:.1f}"


def best_held_out(evaluated: list[dict], trained_on) -> float | None:
    """The best of a run's evaluations after training: the mean of its held-out scores (those of
    rewards it did not train on; every score when all were trained on); the base model's excluded."""
    scored = list(dict.fromkeys(name for scores in evaluated for name in scores))
    watched = [name for name in scored if name not in trained_on] or scored
    means = []
    for scores in evaluated:
        values = [scores[name] for name in watched if scores.get(name) is not None]
        if values:
            means.append(sum(values) / len(values))
    return max(means) if means else None


def table() -> list[list]:
    from app.ab_results import run_cell
    from jobs import api, runs, votes

    rows = api.list_runs()
    summaries = api.run_summaries([r["id"] for r in rows])
    tested = votes.tests_of_runs([r["id"] for r in rows])
    out = []
    for r in rows:
        done = 0 if r["last_iteration"] is None else r["last_iteration"] + 1
        summary = summaries[r["id"]]
        left = ""
        if r["status"] == "running" and summary["seconds_per_iteration"] is not None:
            left = eta((r["iterations"] - done) * summary["seconds_per_iteration"])
        reward, best = summary["reward"], best_held_out(summary["evaluated"], summary["trained_on"])
        spent = runs.duration(r)
        out.append([r["id"], r["name"], ", ".join(r["tags"]), r["algorithm"], r["model"], r["status"],
                    f"{done}/{r['iterations']} ({100 * done // max(r['iterations'], 1)}%)", left,
                    None if reward is None else round(reward, 4), None if best is None else round(best, 4),
                    None if spent is None else round(spent / 60, 1), predicted(r.get("estimate")),
                    run_cell(r["id"], tested.get(r["id"], [])), r["created_at"].strftime("%Y-%m-%d %H:%M")])
    return out
