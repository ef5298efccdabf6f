"""Monitor: a run's curves, where its reward comes from step by step, its branches, and its samples, live.

A gr.Timer polls every two seconds; figures are rebuilt and sent only when the run moved. The
attribution views (G²RPO only) read the per-step statistics the worker stores each iteration.
"""
from __future__ import annotations

import gradio as gr

from app import attribution, branches, curves, figures, monitor, numbers, samples_grid
from engine.config import BRANCHING
from app.errors import user_errors
from app.numbers import selected_id
from app.runs_tab import run_choices

X_AXES = {"iteration": "iteration", "model evaluations": "model_evaluations", "wall time": "seconds"}
STEP_VALUES = {"variance share per step (%)": "share", "mean |advantage|": "abs_advantage",
               "reward std in the group": "reward_std"}
POLL_SECONDS = 2.0
SMOOTHING = 0.6  # the EMA weight a run opens with: one prompt's zig-zag averaged over a few iterations
WINDOW = 20  # iterations the attribution views average by default: one prompt's noise over several
NO_HISTORY = {"iterations": [], "branch_steps": [], "every": 1}
EXPLAINER = """**Singular Stochastic Sampling.** For each prompt the sampler runs one deterministic (ODE)
anchor trajectory from pure noise. At each branch step k in K, the G group members leave the anchor's
state x_k with **one** stochastic (SDE) step each, then finish by ODE. Everything before k is shared and
everything after k is deterministic, so the members' differences in reward come from the noise injected
at step k alone: their rewards measure what step k does to the image.

```
noise ──ODE──▶ x_k ──SDE (one step, G draws)──▶ ──ODE at stride λ=1──▶ image ▶ reward
                                               ╰──ODE at stride λ=2──▶ image ▶ reward
```

**Multi-Granularity Advantage Integration (MGAI).** Each member is finished at every granularity λ in Λ
(the ODE takes strides of λ steps), and each finish is scored. Per (prompt, k) and per reward model the G
rewards at one λ become z-scores (the advantage at λ, the bars of *Advantage at each granularity*). The
**mixed** advantage of a member (the diamonds, and the colour of *Mixed advantage per member and step*) is
the sum of its z-scores over λ and the weighted reward models, clamped to ±`adv_clamp` (5 by default):
members whose finishes all agree reach the clamp.

**The views.** *Attribution per denoising step*: rows are branch steps k (0 = pure noise), columns
iterations, both values averaged over the iteration's prompts (and over a bin of iterations on long
runs); *mean |advantage|* is how much learning signal G²RPO credits to k, *reward std in the group* how
much the noise injected at k moves the reward (at the finest λ). The scale starts at 0. With one prompt
per iteration a column is one prompt's noise: read the rows' trend across columns, not single cells.
*Agreement*: the mean correlation between the advantages at different λ (1: the granularities agree).

**A window of iterations.** The member and granularity views and the per-step summary below them
average a window of iterations (and their prompts, or one prompt index of each). Member indices
mean nothing across groups, so a window is averaged by **rank**: in each group the members are
ordered by mixed advantage (rank 0: the highest) and the r-th of each are averaged. The map then
shows how sharply each step separates its best members from its worst, the bars whether every λ
ranks members as the mixed advantage does. A window of one iteration and one prompt shows that
group's members as they are.""" + "\n\n" + attribution.SHARE_EXPLAINER


def _whole(value, what: str, low: int = 0):
    """A whole number from a field (None when empty), or gr.Error naming the field."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    return numbers.whole(value, low, numbers.RUN_ID_MAX, what)


def iteration_views(view: dict, iteration, window, prompt, k):
    """The member x step heatmap, the granularity bars and the per-step summary, over the `window`
    iterations ending at `iteration` (-1: the latest) and one prompt index or all (-1)."""
    from jobs import api

    empty = figures.member_heatmap(None), figures.granularity_bars(None)
    try:
        last = _whole(iteration, "The iteration", low=-1)
        size = _whole(window, "The window") or 1
        which = _whole(prompt, "The prompt", low=-1)
        if not 1 <= size <= attribution.MAX_WINDOW:
            raise gr.Error(f"The window is 1 to {attribution.MAX_WINDOW} iterations, not {size:,}.")
    except gr.Error as err:
        return (*empty, f"⚠️ {err.message}")
    if view["run_id"] is None:
        return (*empty, "")
    last = None if last is None or last < 0 else last
    which = None if which is None or which < 0 else which
    cells = api.attribution_window(view["run_id"], last, size)
    if cells is None:
        return (*empty, f"⚠️ Iteration {last} has no attribution stored." if last is not None else "")
    if which is not None and which >= len(cells["prompts"]):
        count = len(cells["prompts"])
        return (*empty, f"⚠️ No prompt {which}: this run draws {count} prompt{'s' if count > 1 else ''} per "
                        f"iteration (0–{count - 1}); -1 averages them.")
    weights = monitor.reward_weights(view)
    return (attribution.member_figure(cells, weights, which), attribution.bars_figure(cells, k, weights, which),
            attribution.step_summary(cells, which))


def reward_view(view: dict, x_axis: str, smoothing: float = 0.0):
    try:
        weight = min(max(numbers.number(smoothing or 0), 0.0), 0.99)
    except ValueError:
        weight = 0.0
    return curves.reward_curves(view["metrics"], view["evaluations"], monitor.held_out(view), X_AXES[x_axis],
                                float(weight))


def notes(view: dict) -> str:
    """Under the status: the held-out scores since base, and the over-optimisation warning."""
    held_out = monitor.held_out(view)
    lines = [curves.warning_line(view["metrics"], view["evaluations"], view.get("checkpoints") or [], held_out),
             curves.held_out_readout(view["evaluations"], held_out)]
    return "\n\n".join(line for line in lines if line)


def step_view(view: dict, value: str):
    spans = monitor.merge_spans(view)
    if STEP_VALUES[value] == "share":
        return attribution.share_map(view["history"] or NO_HISTORY, spans)
    return figures.step_heatmap(view["history"] or NO_HISTORY, STEP_VALUES[value], spans)


def render(view, x_axis, smoothing, step_value, iteration, window, prompt, k, at=None, follow=True):
    """Every output of the tab from the view (no query but the chosen window's attribution)."""
    is_g2rpo = (view["run"] or {}).get("algorithm") in BRANCHING  # G²RPO and E-GRPO: the attribution views
    history = view["history"] or NO_HISTORY
    steps = history["branch_steps"]
    chosen = iteration_views(view, iteration, window, prompt, k) if is_g2rpo else (gr.skip(),) * 3
    return (view, monitor.status_line(view), notes(view), reward_view(view, x_axis, smoothing),
            step_view(view, step_value) if is_g2rpo else gr.skip(), chosen[2], chosen[0], chosen[1],
            figures.granularity_agreement(history) if is_g2rpo else gr.skip(),
            figures.diagnostics(view["metrics"]), monitor.gallery(view),
            gr.update(visible=is_g2rpo), gr.update(choices=steps, value=k if k in steps else (steps[0] if steps else None)),
            samples_grid.grid(view, at, follow), samples_grid.slider(view, at, follow),
            gr.update(choices=run_choices()))  # the run's label carries its status: relabel it


def samples_api(run_id):
    """A run's newest sample images (what the Monitor's gallery shows)."""
    from jobs import api

    run_id = selected_id(run_id)
    return monitor.gallery({"run_id": run_id, "samples": api.samples(run_id)})


def tick(view, run_id, *controls):
    """The timer: redraw only when the run moved (its status, iterations or error changed)."""
    view, changed = monitor.poll(view, run_id)
    if not changed:
        return [view] + [gr.skip()] * (OUTPUTS - 1)
    return render(view, *controls)


def redraw(view, run_id, *controls):
    """The user changed the run: redraw all of it."""
    view, _ = monitor.poll(view, run_id)
    return render(view, *controls)


OUTPUTS = 16  # what render returns


def pick_iteration(view, at):
    """The user moved the grid's slider: show that iteration, and stop following the newest."""
    return samples_grid.grid(view, at, False), samples_grid.slider(view, at, False), False


def build() -> dict:
    """The run's status and warnings on top, always in view; under them one view per sub-tab, each
    about a screen: the curves with the held-out scores, where the reward comes from (G²RPO and
    E-GRPO), the samples, the diagnostics."""
    with gr.Column(elem_id="monitor-head"):
        with gr.Row():
            run = gr.Dropdown(run_choices(), label="Run", elem_id="monitor-run", scale=3, allow_custom_value=True)
            refresh = gr.Button("↻ runs", scale=0, min_width=80)
        status = gr.Markdown("Select a run (or launch one).", elem_id="monitor-status")
        warning = gr.Markdown(elem_id="monitor-notes")
    with gr.Tabs(elem_id="monitor-views"):
        with gr.Tab("Reward and held-out", id="curves", elem_id="monitor-curves"):
            with gr.Row():
                x_axis = gr.Radio(list(X_AXES), value="iteration", label="x axis", scale=2)
                smoothing = gr.Slider(0, 0.99, value=SMOOTHING, step=0.01, label="smoothing (EMA weight; 0: raw)",
                                      elem_id="smoothing", scale=1)
            rewards = gr.Plot(label="Reward: training mean (smoothed; raw points faint) and held-out change since base",
                              elem_id="reward-plot")
        with gr.Tab("Where the reward comes from", id="attribution", elem_id="monitor-attribution",
                    visible=False) as attribution_views:
            with gr.Accordion("What these views show (Singular Stochastic Sampling, MGAI)", open=False):
                gr.Markdown(EXPLAINER, elem_id="attribution-explainer")
            step_value = gr.Radio(list(STEP_VALUES), value=next(iter(STEP_VALUES)), label="colour")
            steps = gr.Plot(label="Attribution per denoising step (colour scale from 0)", show_label=False,  # its title says it
                            elem_id="step-heatmap")
            with gr.Row():
                iteration = gr.Number(value=-1, precision=0, label="Window ends at iteration (-1: latest)", scale=1,
                                      elem_id="attribution-iteration")
                window = gr.Slider(1, attribution.MAX_WINDOW, value=WINDOW, step=1,
                                   label="Window (iterations averaged)", elem_id="attribution-window", scale=2)
                prompt = gr.Number(value=-1, precision=0, label="Prompt (index; -1: mean over the iteration's prompts)",
                                   scale=1, elem_id="attribution-prompt")
                k = gr.Dropdown([], label="Branch step k for the granularity view", scale=1)
            summary = gr.Markdown(elem_id="step-summary")
            with gr.Row():
                members = gr.Plot(label="Mixed advantage per member and step", elem_id="member-heatmap")
                granularities = gr.Plot(label="Advantage at each granularity λ and mixed", elem_id="granularity-bars")
            agreement = gr.Plot(label="Agreement between granularities over the run")
            explorer = branches.build()
        with gr.Tab("Samples", id="samples", elem_id="monitor-samples"):
            gr.Markdown("Each sample prompt, base beside the chosen iteration (fixed noise).")
            with gr.Row():
                at = gr.Slider(0, 1, value=0, step=1, label="Iteration (those that drew samples)",
                               elem_id="samples-iteration", interactive=False, scale=4)
                follow = gr.Checkbox(True, label="follow the newest", elem_id="samples-follow", scale=1)
            grid = gr.HTML(elem_id="samples-grid")
            gallery = gr.Gallery(label="All samples (fixed noise; newest first)", columns=6, height="auto",
                                 elem_id="samples-gallery", format="png")
        with gr.Tab("Diagnostics", id="diagnostics", elem_id="monitor-diagnostics"):
            diagnostics = gr.Plot(label="Loss, ratio, clipping, KL, gradient norm, timings", elem_id="diagnostics-plot")
    samples = gr.Button(visible=False)  # the API's /samples: a run's newest sample images

    view = gr.State(monitor.new_view(None))
    branches.wire(explorer, view)
    controls = [x_axis, smoothing, step_value, iteration, window, prompt, k, at, follow]
    outputs = [view, status, warning, rewards, steps, summary, members, granularities, agreement, diagnostics,
               gallery, attribution_views, k, grid, at, run]
    assert len(outputs) == OUTPUTS

    timer = gr.Timer(POLL_SECONDS)
    timer.tick(user_errors(tick), [view, run] + controls, outputs, api_visibility="private", concurrency_limit=None,
               show_progress="hidden")
    run.change(user_errors(redraw), [view, run] + controls, outputs, api_visibility="private", concurrency_limit=None)
    for control in (x_axis, smoothing):
        control.change(reward_view, [view, x_axis, smoothing], rewards, api_visibility="private",
                       concurrency_limit=None, show_progress="hidden")
    step_value.change(step_view, [view, step_value], steps, api_visibility="private", concurrency_limit=None)
    for control in (iteration, window, prompt, k):
        control.change(iteration_views, [view, iteration, window, prompt, k], [members, granularities, summary],
                       api_visibility="private", concurrency_limit=None, show_progress="hidden")
    at.input(pick_iteration, [view, at], [grid, at, follow], api_visibility="private", show_progress="hidden",
             trigger_mode="always_last")
    follow.input(lambda v, a, f: (samples_grid.grid(v, a, f), samples_grid.slider(v, a, f)), [view, at, follow],
                 [grid, at], api_visibility="private", show_progress="hidden")
    samples.click(user_errors(samples_api), run, gallery, api_name="samples")
    refresh.click(lambda: gr.update(choices=run_choices()), None, run, api_visibility="private")
    run.focus(lambda: gr.update(choices=run_choices()), None, run, api_visibility="private")  # new runs appear
    return {"run": run}
