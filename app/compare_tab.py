"""Compare: the base model and a tuned LoRA, or two runs, on the same prompt and the same noise.

Images are drawn by the sampler process (app/sampler.py), never in the UI process; each image is
scored by the run's training and evaluation rewards.
"""
from __future__ import annotations

import gradio as gr
import numpy as np

from app import escape, sampler
from app.envelopes import flat_config
from app.errors import in_message_line, page_error, page_text, user_errors
from app.numbers import whole
from app.redact import redact
from app.numbers import selected_id
from app.runs_tab import run_choices
from engine.limits import SEED_MAX, limit

DISPLAY_PIXELS = 256  # small models draw 32x32: enlarged without smoothing, so pixels stay honest
MAX_SEEDS = 16  # a grid's seeds, and the prompts of a two-run comparison (open to every visitor)


def _enlarge(image: np.ndarray) -> np.ndarray:
    factor = max(1, DISPLAY_PIXELS // max(image.shape[:2]))
    return image.repeat(factor, axis=0).repeat(factor, axis=1)


def _run(run_id) -> dict:
    from jobs import api

    if run_id in (None, ""):
        raise gr.Error("Choose a run.")
    try:
        return api.get_run(selected_id(run_id))
    except api.JobError as err:
        raise page_error(page_text(err)) from None


def _checkpoint(run: dict, checkpoint: str | None) -> str:
    if not run["checkpoints"]:
        raise gr.Error(f"Run #{run['id']} has no checkpoint yet: compare once it has saved one.")
    chosen = checkpoint if checkpoint in run["checkpoints"] else run["checkpoints"][-1]
    return f"{run['folder']}/{chosen}"


def _prompts(text: str, model: str) -> list[str]:
    from engine.config import ModelConfig
    from engine.models import check_model_prompts

    prompts = [line.strip() for line in str(text or "").splitlines() if line.strip()]
    if not prompts:
        raise gr.Error("Enter a prompt.")
    if len(prompts) > MAX_SEEDS:
        raise gr.Error(f"At most {MAX_SEEDS} prompts at once, got {len(prompts):,}.")
    if any(len(p) > limit("prompt_chars") for p in prompts):
        raise gr.Error(f"A prompt is longer than {limit('prompt_chars'):,} characters.")
    try:
        check_model_prompts(ModelConfig(model), prompts)
    except ValueError as err:
        raise gr.Error(str(err)) from None
    return prompts


def _rewards(run: dict) -> list[str]:
    config = run["config"]
    return list(dict.fromkeys([r["name"] for r in config["rewards"]] + list(config.get("eval_rewards", []))))


def _generate(run: dict, adapters: list, prompts: list[str], seeds: list[int]) -> list[dict]:
    sampling = run["config"]["sampling"]
    try:
        return sampler.generate(model=run["config"]["model"], adapters=adapters, prompts=prompts, seeds=seeds,
                                rewards=_rewards(run), steps=sampling["steps"], shift=sampling["shift"])
    except Exception as err:  # the sampler process failed (its own log has the traceback)
        raise page_error(f"The sampler could not draw these images: {type(err).__name__}: "
                         f"{redact(str(err))[:200]}") from None


def _caption(row: dict, with_prompt: bool = False) -> str:
    """One line per fact (the gallery's CSS wraps lines instead of cutting them): seed, each score."""
    lines = ([row["prompt"]] if with_prompt else []) + [f"seed {row['seed']}"]
    return "\n".join(lines + [f"{k} {v:.3f}" for k, v in row["scores"].items()])


def _seeds(seed, count=1) -> list[int]:
    seed, count = whole(seed, 0, SEED_MAX, "The seed"), whole(count, 1, MAX_SEEDS, "The number of seeds")
    if seed + count - 1 > SEED_MAX:
        raise gr.Error(f"Seeds go up to {SEED_MAX:,}.")
    return list(range(seed, seed + count))


def compare(run_id, checkpoint, prompt: str, seed):
    """Base and tuned for one prompt and seed: slider, both images, every reward's score."""
    run = _run(run_id)
    folder = _checkpoint(run, checkpoint)
    base, tuned = _generate(run, [None, folder], _prompts(prompt, run["model"])[:1], _seeds(seed))
    scores = [[name, round(base["scores"][name], 4), round(tuned["scores"][name], 4)] for name in base["scores"]]
    b, t = _enlarge(base["image"]), _enlarge(tuned["image"])
    return (b, t), b, t, scores


def seed_grid(run_id, checkpoint, prompt: str, seed, count):
    """The same comparison over several seeds: one gallery row for base, one for tuned."""
    run = _run(run_id)
    rows = _generate(run, [None, _checkpoint(run, checkpoint)], _prompts(prompt, run["model"])[:1],
                     _seeds(seed, count))
    half = len(rows) // 2
    return ([(_enlarge(r["image"]), _caption(r)) for r in rows[:half]],
            [(_enlarge(r["image"]), _caption(r)) for r in rows[half:]])


def two_runs(run_a, run_b, prompts: str, seed, count):
    """Two runs' latest checkpoints on the same prompts and seeds, with mean scores."""
    a, b = _run(run_a), _run(run_b)
    if a["model"] != b["model"]:
        raise gr.Error(f"Run #{a['id']} tuned {a['model']} and run #{b['id']} {b['model']}: pick runs of one model.")
    prompts, seeds = _prompts(prompts, a["model"]), _seeds(seed, count)
    rows = _generate(a, [_checkpoint(a, None), _checkpoint(b, None)], prompts, seeds)
    first, second = rows[:len(rows) // 2], rows[len(rows) // 2:]
    table = [[name] + [round(float(np.mean([r["scores"][name] for r in side])), 4) for side in (first, second)]
             for name in rows[0]["scores"]]
    return ([(_enlarge(r["image"]), _caption(r, with_prompt=True)) for r in first],
            [(_enlarge(r["image"]), _caption(r, with_prompt=True)) for r in second], table)



def config_diff(run_a, run_b) -> str:
    """Markdown: the settings in which two runs' configs differ (what to credit a difference to)."""
    if run_a in (None, "") or run_b in (None, ""):
        return ""
    a, b = _run(run_a), _run(run_b)
    flat_a, flat_b = flat_config(a["config"]), flat_config(b["config"])
    keys = [k for k in dict.fromkeys([*flat_a, *flat_b]) if flat_a.get(k) != flat_b.get(k)]
    if not keys:
        return f"Runs #{a['id']} and #{b['id']} have the same config."
    show = lambda v: "–" if v is None else escape.markdown(str(v)[:80])  # noqa: E731  (prompts, paths: text)
    rows = [f"| setting | #{a['id']} | #{b['id']} |", "| --- | --- | --- |"]
    rows += [f"| `{k}` | {show(flat_a.get(k))} | {show(flat_b.get(k))} |" for k in keys]
    return "\n".join(rows)


def checkpoint_choices(run_id):
    """The run's checkpoints, the latest and the best held-out one (app.curves) labelled as such."""
    from app import curves
    from app.monitor import held_out
    from jobs import api

    if run_id in (None, ""):
        return gr.update(choices=[], value=None)
    run = _run(run_id)
    rows = api.checkpoints(run["id"])
    best = curves.best_checkpoint(api.queries.evaluations(run["id"]), rows, held_out({"run": run}))
    labels = {row["path"]: row["path"] for row in rows}
    if rows:
        labels[rows[-1]["path"]] += " · latest"
    if best is not None and best["checkpoint"] != rows[-1]["path"]:  # offered beside the latest
        labels[best["checkpoint"]] += " · best held-out"
    choices = [(label, path) for path, label in labels.items()]
    return gr.update(choices=choices, value=rows[-1]["path"] if rows else None)


def build() -> dict:
    with gr.Row():
        run = gr.Dropdown(run_choices(), label="Run", elem_id="compare-run", scale=2, allow_custom_value=True)
        checkpoint = gr.Dropdown([], label="Checkpoint (default: latest)", scale=2, allow_custom_value=True)
        refresh = gr.Button("↻ runs", scale=0, min_width=80)
    with gr.Row():
        prompt = gr.Textbox("two red circles on a black background", label="Prompt", elem_id="compare-prompt", scale=3)
        seed = gr.Number(0, label="Seed", scale=1)
    button = gr.Button("Compare base and tuned", variant="primary", elem_id="compare-button")
    message = gr.Markdown(elem_id="compare-message")
    slider = gr.ImageSlider(label="base ⟷ tuned", elem_id="compare-slider", max_height=300)
    with gr.Row():
        base = gr.Image(label="base", elem_id="compare-base", height=280)
        tuned = gr.Image(label="tuned", elem_id="compare-tuned", height=280)
    scores = gr.Dataframe(headers=["reward", "base", "tuned"], label="Scores", elem_id="compare-scores")
    with gr.Accordion("Seed grid", open=False):
        count = gr.Slider(2, MAX_SEEDS, value=6, step=1, label="seeds (from the seed above)")
        grid_button = gr.Button("Draw the grid")
        grid_base = gr.Gallery(label="base", columns=6, height="auto", elem_id="grid-base")
        grid_tuned = gr.Gallery(label="tuned", columns=6, height="auto", elem_id="grid-tuned")
    with gr.Accordion("Two runs side by side", open=False):
        with gr.Row():
            run_b = gr.Dropdown(run_choices(), label="Second run", scale=2, allow_custom_value=True)
            prompts = gr.Textbox("two red circles on a black background\na red triangle on a gray background",
                                 label="Prompts (one per line)", lines=3, scale=3)
        runs_button = gr.Button("Compare the two runs' latest checkpoints")
        with gr.Row():
            gallery_a = gr.Gallery(label="first run", columns=4, height="auto", elem_id="gallery-a")
            gallery_b = gr.Gallery(label="second run", columns=4, height="auto", elem_id="gallery-b")
        runs_table = gr.Dataframe(headers=["reward", "first run", "second run"], label="Mean scores")
        diff = gr.Markdown(elem_id="config-diff")

    run.change(user_errors(checkpoint_choices), run, checkpoint, api_visibility="private")
    for dropdown in (run, run_b):  # the two runs' settings that differ, as soon as both are chosen
        dropdown.change(in_message_line(config_diff, 1), [run, run_b], [diff, message], api_visibility="private")
    # The page's buttons say what went wrong in the message line (an unknown word in the prompt...);
    # the API's /compare, /seed_grid, /compare_runs (hidden buttons) raise it.
    for trigger, fn, inputs, outputs, name in (
            (button, compare, [run, checkpoint, prompt, seed], [slider, base, tuned, scores], "compare"),
            (grid_button, seed_grid, [run, checkpoint, prompt, seed, count], [grid_base, grid_tuned], "seed_grid"),
            (runs_button, two_runs, [run, run_b, prompts, seed, count], [gallery_a, gallery_b, runs_table],
             "compare_runs")):
        trigger.click(in_message_line(fn, len(outputs)), inputs, outputs + [message], api_name=f"{name}_page",
                      api_visibility="private", concurrency_id="sampler")  # named: fn's name is the API's
        gr.Button(visible=False).click(user_errors(fn), inputs, outputs, api_name=name, concurrency_id="sampler")
    refresh.click(lambda: [gr.update(choices=run_choices())] * 2, None, [run, run_b], api_visibility="private")
    for dropdown in (run, run_b):  # opening a list shows the runs launched since the page loaded
        dropdown.focus(lambda: gr.update(choices=run_choices()), None, dropdown, api_visibility="private")
    return {"run": run, "run_b": run_b}
