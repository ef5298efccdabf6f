"""Overlay: the comparison study in small. Pick several runs, finished or running (G²RPO against its
baselines, or one method under several settings), and draw one reward of all of them on one axis, against
iterations, model evaluations or wall time, with a table of where each ended. Runs that differ only in
train.seed can be drawn as one envelope (their mean and a band: app/envelopes.py).
"""
from __future__ import annotations

import gradio as gr

from app import curves, envelopes, escape, figures
from app.figures import reward_value as _reward_of
from app.errors import user_errors
from app.monitor_tab import X_AXES
from app.numbers import selected_id

LAST = 10  # iterations averaged for a run's final training reward
MAX_RUNS = 12


def overlay_choices() -> list[tuple[str, int]]:
    """Every run that has started: running ones are drawn up to their latest iteration."""
    from jobs import api

    return [(f"#{r['id']} {r['name'] or r['algorithm']} · {r['status']}", r["id"])
            for r in api.list_runs() if r["status"] != "queued"]


def load_runs(run_ids: list) -> list[dict]:
    """Each run's label, metrics and held-out evaluations, as figures.overlay takes them."""
    from jobs import api

    runs = []
    for run_id in run_ids or []:
        run = api.get_run(selected_id(run_id))
        label = f"#{run['id']} {run['name'] or run['algorithm']}"
        runs.append({"label": label, "config": run["config"], "metrics": api.curves(run["id"])["rows"],
                     "evaluations": api.queries.evaluations(run["id"])})
    return runs


def reward_names(runs: list[dict]) -> list[str]:
    names = {}
    for run in runs:
        for m in run["metrics"][:1]:
            names.update(dict.fromkeys(m.get("rewards") or {}))
        for e in run["evaluations"]:
            names.update(dict.fromkeys(e.get("scores") or {}))
    return [*names, "total"]


def _number(value) -> str:
    return "–" if value is None else f"{value:.4f}"


def summary(runs: list[dict], reward: str) -> str:
    """Markdown: per run, the mean training reward of its last iterations and its last evaluation."""
    rows = ["| run | iterations | model evaluations | training reward (last 10) | last held-out evaluation |",
            "| --- | ---: | ---: | ---: | ---: |"]
    for run in runs:
        metrics = run["metrics"]
        recent = curves.recent_mean(metrics, lambda m: _reward_of(m, reward), LAST)
        evaluated = [e["scores"][reward] for e in run["evaluations"] if reward in (e.get("scores") or {})]
        spent = sum(m.get("model_evaluations") or 0 for m in metrics)  # a row's total over its iterations
        rows.append(f"| {escape.markdown(run['label'])} | {sum(m.get('count', 1) for m in metrics)} | {spent:,} | "
                    f"{_number(recent)} | "
                    f"{_number(evaluated[-1] if evaluated else None)} |")
    return "\n".join(rows)


def seed_summary(runs: list[dict], reward: str) -> str:
    """Markdown: per config with several seeds, the mean and spread of their final training rewards."""
    rows = []
    for group in envelopes.groups(runs):
        finals = []
        for run in group:
            recent = curves.recent_mean(run["metrics"], lambda m: _reward_of(m, reward), LAST)
            if recent is not None:
                finals.append(recent)
        if len(group) > 1 and finals:
            mean, low, high = envelopes.spread(finals, "min–max")
            std = envelopes.spread(finals, "± std")
            rows.append(f"| {escape.markdown(envelopes.group_label(group))} | {len(finals)} | {mean:.4f} | {std[2] - mean:.4f} | "
                        f"{low:.4f} – {high:.4f} |")
    if not rows:
        return ""
    return "\n".join(["", "| seeds of one config | seeds | training reward (last 10), mean | std | min – max |",
                      "| --- | ---: | ---: | ---: | ---: |", *rows])


def draw(run_ids: list, reward: str | None, x_axis: str, by_seed: bool = False, band: str = envelopes.BANDS[0]):
    """The overlay of the selected runs (at least two), their summary, and the reward choices; with
    `by_seed`, runs that differ only in train.seed as one envelope (mean and `band`)."""
    if not run_ids or len(run_ids) < 2:
        raise gr.Error("Select at least two runs to overlay.")
    if len(run_ids) > MAX_RUNS:
        raise gr.Error(f"At most {MAX_RUNS} runs at once, got {len(run_ids):,}.")
    if band not in envelopes.BANDS:
        raise gr.Error(f"The band is one of {', '.join(envelopes.BANDS)}, not {str(band)[:30]!r}.")
    runs = load_runs(run_ids)
    names = reward_names(runs)
    reward = reward if reward in names else names[0]
    if by_seed:
        plot, table = envelopes.figure(runs, X_AXES[x_axis], reward, band), summary(runs, reward) + seed_summary(runs, reward)
    else:
        plot, table = figures.overlay(runs, X_AXES[x_axis], reward), summary(runs, reward)
    return plot, table, gr.update(choices=names, value=reward)


def redraw(run_ids: list, reward: str | None, x_axis: str, by_seed: bool = False, band: str = envelopes.BANDS[0]):
    """Another axis, reward or envelope setting: redraw if there is something drawn, else wait for the button."""
    if not run_ids or len(run_ids) < 2:
        return gr.skip(), gr.skip(), gr.skip()
    return draw(run_ids, reward, x_axis, by_seed, band)


def build() -> dict:
    gr.Markdown("Overlay runs (running ones up to their latest iteration): one reward of each on one axis "
                "(training mean as a line, held-out evaluations as dashed markers).")
    with gr.Row():
        runs = gr.Dropdown(overlay_choices(), multiselect=True, label="Runs", elem_id="overlay-runs", scale=3,
                           allow_custom_value=True)  # runs started after the page was drawn
        refresh = gr.Button("↻ runs", scale=0, min_width=80)
    with gr.Row():
        reward = gr.Dropdown([], label="Reward", allow_custom_value=True, elem_id="overlay-reward")
        x_axis = gr.Radio(list(X_AXES), value="model evaluations", label="x axis")
    with gr.Row():
        by_seed = gr.Checkbox(False, label="Seed envelopes: runs that differ only in train.seed as their mean and a band",
                              elem_id="overlay-by-seed", scale=3)
        band = gr.Radio(list(envelopes.BANDS), value=envelopes.BANDS[0], label="band", elem_id="overlay-band", scale=1)
    button = gr.Button("Overlay", variant="primary", elem_id="overlay-button")
    plot = gr.Plot(label="runs compared", elem_id="overlay-plot")
    table = gr.Markdown()
    refresh.click(lambda: gr.update(choices=overlay_choices()), None, runs, api_visibility="private")
    inputs, outputs = [runs, reward, x_axis, by_seed, band], [plot, table, reward]
    button.click(user_errors(draw), inputs, outputs, api_name="overlay")
    for control in (x_axis, by_seed, band):
        control.change(user_errors(redraw), inputs, outputs, api_visibility="private")
    reward.input(redraw, inputs, outputs, api_visibility="private")
    return {"runs": runs}
