"""Monitor: a run's curves, where its reward comes from step by step, and its samples, live.

A gr.Timer polls every two seconds; figures are rebuilt and sent only when the run moved. The
attribution views (G²RPO only) read the per-step statistics the worker stores each iteration.
"""
from __future__ import annotations

import gradio as gr

from app import figures, monitor
from app.errors import user_errors
from app.runs_tab import run_choices, selected_id

X_AXES = {"iteration": "iteration", "model evaluations": "model_evaluations", "wall time": "seconds"}
STEP_VALUES = {"mean |advantage|": "abs_advantage", "reward std in the group": "reward_std"}
POLL_SECONDS = 2.0
NO_HISTORY = {"iterations": [], "branch_steps": [], "every": 1}


def _heat(view: dict, iteration):
    from jobs import api

    if view["run_id"] is None:
        return None
    return api.heatmap(view["run_id"], None if iteration in (None, "") or iteration < 0 else int(iteration))


def iteration_views(view: dict, iteration, prompt, k):
    """The chosen iteration's member x step heatmap and granularity bars."""
    heat = _heat(view, iteration)
    if heat is None:
        return figures.member_heatmap(None), figures.granularity_bars(None)
    prompt = min(max(int(prompt or 0), 0), len(heat["prompts"]) - 1)
    k_index = heat["branch_steps"].index(k) if k in heat["branch_steps"] else 0
    weights = monitor.reward_weights(view)
    return (figures.member_heatmap(heat, prompt),
            figures.granularity_bars(heat, prompt, k_index, [weights.get(n, 1.0) for n in heat["reward_names"]]))


def reward_view(view: dict, x_axis: str):
    return figures.reward_curves(view["metrics"], view["evaluations"], monitor.held_out(view), X_AXES[x_axis])


def step_view(view: dict, value: str):
    return figures.step_heatmap(view["history"] or NO_HISTORY, STEP_VALUES[value])


def render(view, x_axis, step_value, iteration, prompt, k):
    """Every output of the tab from the view (no query but the chosen iteration's heatmap)."""
    is_g2rpo = (view["run"] or {}).get("algorithm") == "g2rpo"
    history = view["history"] or NO_HISTORY
    steps = history["branch_steps"]
    member, bars = iteration_views(view, iteration, prompt, k) if is_g2rpo else (gr.skip(), gr.skip())
    return (view, monitor.status_line(view), reward_view(view, x_axis),
            step_view(view, step_value) if is_g2rpo else gr.skip(), member, bars,
            figures.granularity_agreement(history) if is_g2rpo else gr.skip(),
            figures.diagnostics(view["metrics"]), monitor.gallery(view),
            gr.update(visible=is_g2rpo), gr.update(choices=steps, value=k if k in steps else (steps[0] if steps else None)))


def samples_api(run_id):
    """A run's newest sample images (what the Monitor's gallery shows)."""
    from jobs import api

    run_id = selected_id(run_id)
    return monitor.gallery({"run_id": run_id, "samples": api.samples(run_id)})


def build() -> dict:
    with gr.Row():
        run = gr.Dropdown(run_choices(), label="Run", elem_id="monitor-run", scale=3, allow_custom_value=True)
        refresh = gr.Button("↻ runs", scale=0, min_width=80)
    status = gr.Markdown("Select a run (or launch one).", elem_id="monitor-status")
    x_axis = gr.Radio(list(X_AXES), value="iteration", label="x axis")
    rewards = gr.Plot(label="Reward (training mean ± std; held-out evaluation dashed)", elem_id="reward-plot")
    with gr.Column(visible=False) as attribution:
        gr.Markdown("### Where the reward comes from\nBranch step k (0 = pure noise) against iteration. "
                    "Colour: how much the reward moves with the noise injected at k, or the mean |advantage| "
                    "G²RPO credits to k.")
        step_value = gr.Radio(list(STEP_VALUES), value="mean |advantage|", label="colour")
        steps = gr.Plot(label="Attribution per denoising step", elem_id="step-heatmap")
        with gr.Row():
            iteration = gr.Number(value=-1, precision=0, label="Iteration (-1: latest)", scale=1)
            prompt = gr.Number(value=0, precision=0, label="Prompt (index in the iteration)", scale=1)
            k = gr.Dropdown([], label="Branch step k for the granularity view", scale=1)
        with gr.Row():
            members = gr.Plot(label="Mixed advantage per member and step", elem_id="member-heatmap")
            granularities = gr.Plot(label="Advantage at each granularity λ and mixed", elem_id="granularity-bars")
        agreement = gr.Plot(label="Agreement between granularities over the run")
    diagnostics = gr.Plot(label="Loss, ratio, clipping, KL, gradient norm, timings")
    gallery = gr.Gallery(label="Samples (fixed noise; newest first)", columns=8, height="auto",
                         elem_id="samples-gallery", format="png")
    samples = gr.Button(visible=False)  # the API's /samples: a run's newest sample images

    view = gr.State(monitor.new_view(None))
    controls = [x_axis, step_value, iteration, prompt, k]
    outputs = [view, status, rewards, steps, members, granularities, agreement, diagnostics, gallery, attribution, k]

    def tick(view, run_id, *controls):
        view, changed = monitor.poll(view, run_id)
        if not changed:
            return [view] + [gr.skip()] * (len(outputs) - 1)
        return render(view, *controls)

    def redraw(view, run_id, *controls):  # the user changed a control or the run: redraw all of it
        view, _ = monitor.poll(view, run_id)
        return render(view, *controls)

    timer = gr.Timer(POLL_SECONDS)
    timer.tick(user_errors(tick), [view, run] + controls, outputs, api_visibility="private", concurrency_limit=None,
               show_progress="hidden")
    run.change(user_errors(redraw), [view, run] + controls, outputs, api_visibility="private", concurrency_limit=None)
    x_axis.change(reward_view, [view, x_axis], rewards, api_visibility="private", concurrency_limit=None)
    step_value.change(step_view, [view, step_value], steps, api_visibility="private", concurrency_limit=None)
    for control in (iteration, prompt, k):
        control.change(iteration_views, [view, iteration, prompt, k], [members, granularities],
                       api_visibility="private", concurrency_limit=None)
    samples.click(user_errors(samples_api), run, gallery, api_name="samples")
    refresh.click(lambda: gr.update(choices=run_choices()), None, run, api_visibility="private")
    run.focus(lambda: gr.update(choices=run_choices()), None, run, api_visibility="private")  # new runs appear
    return {"run": run}
