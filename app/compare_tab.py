"""Compare: the base model and a tuned LoRA, or two runs, on the same prompt and the same noise.

The tuned LoRA is a run's checkpoint, a LoRA folder or a Hub id (app/model_choice.py). Images are
drawn by the sampler process (app/sampler.py), never in the UI process; each image is scored by the
rewards the LoRA was trained and evaluated with. The page shows images captioned under them
(app/compare_html.py); the HTTP API returns the images as files. Below: the blind A/B test (app/ab_tab.py).
"""
from __future__ import annotations

import math

import gradio as gr
import numpy as np

from app import ab_tab, compare_html as html_figures, escape, model_choice, sampler
from app.model_choice import prompt_lines
from app.envelopes import flat_config
from app.errors import in_message_line, page_error, page_text, user_errors
from app.numbers import selected_id, whole
from app.redact import redact
from app.runs_tab import run_choices
from engine.config.limits import SEED_MAX

DISPLAY_PIXELS = 256  # small models draw 32x32: enlarged without smoothing, so pixels stay honest
MAX_SEEDS = 16  # a grid's seeds, and the prompts of a two-run comparison (open to every visitor)
RUN_SOURCE, LORA_SOURCE = "a run's checkpoint", "a LoRA folder or Hub id"


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


def _side(reference) -> model_choice.Side:
    try:
        return model_choice.resolve(reference)
    except model_choice.ChoiceError as err:
        raise page_error(redact(str(err))) from None


def _shared(*sides: model_choice.Side) -> dict:
    try:
        return model_choice.shared_settings(*sides)
    except model_choice.ChoiceError as err:
        raise page_error(redact(str(err))) from None


def _tuned(run_id, checkpoint, lora) -> model_choice.Side:
    """The LoRA when one is named, else the run's checkpoint (its latest by default)."""
    if str(lora or "").strip():
        return _side(lora)
    if run_id in (None, ""):
        raise gr.Error("Choose a run (or a LoRA folder or Hub id).")
    return _side(f"run:{selected_id(run_id)}" + (f":{checkpoint}" if checkpoint else ""))


def generate(settings: dict, sides: list[model_choice.Side], prompts: list[str], seeds: list[int]) -> list[list[dict]]:
    """Each side's rows (prompt-major, then seed), drawn from the same noise and scored alike."""
    sampling = settings["sampling"]
    try:
        rows = sampler.generate(model=settings["model"], adapters=[s.adapter for s in sides], prompts=prompts,
                                seeds=seeds, rewards=settings["rewards"], steps=sampling["steps"],
                                shift=sampling["shift"])
    except Exception as err:  # the sampler process failed (its own log has the traceback)
        raise page_error(f"The sampler could not draw these images: {type(err).__name__}: "
                         f"{redact(str(err))[:200]}") from None
    each = len(prompts) * len(seeds)
    return [rows[i * each:(i + 1) * each] for i in range(len(sides))]


def _caption(row: dict, with_prompt: bool = False) -> str:
    """One line per fact (the API's galleries): seed, each score."""
    lines = ([row["prompt"]] if with_prompt else []) + [f"seed {row['seed']}"]
    return "\n".join(lines + [f"{k} {v:.3f}" for k, v in row["scores"].items()])


def _seeds(seed, count=1) -> list[int]:
    seed, count = whole(seed, 0, SEED_MAX, "The seed"), whole(count, 1, MAX_SEEDS, "The number of seeds")
    if seed + count - 1 > SEED_MAX:
        raise gr.Error(f"Seeds go up to {SEED_MAX:,}.")
    return list(range(seed, seed + count))


def _base_and_tuned(run_id, checkpoint, prompt, seeds, lora):
    tuned = _tuned(run_id, checkpoint, lora)
    settings = _shared(tuned)
    prompts = prompt_lines(prompt, settings["model"]["name"], MAX_SEEDS)[:1]
    base, drawn = generate(settings, [_side("base"), tuned], prompts, seeds)
    return tuned, settings, base, drawn


def compare(run_id, checkpoint, prompt: str, seed, lora: str | None = None):
    """Base and tuned for one prompt and seed: slider, both images, every reward's score. `lora`: a
    LoRA folder or Hub id compared instead of the run's checkpoint."""
    _, _, (base,), (tuned,) = _base_and_tuned(run_id, checkpoint, prompt, _seeds(seed), lora)
    b, t = _enlarge(base["image"]), _enlarge(tuned["image"])
    return (b, t), b, t, _score_table(base, tuned)


def _score_table(base: dict, tuned: dict) -> list[list]:
    return [[name, round(base["scores"][name], 4), round(tuned["scores"][name], 4)] for name in base["scores"]]


def compare_page(run_id, checkpoint, prompt: str, seed, lora: str | None = None):
    """The page's comparison: the slider, both images captioned under them, the score table."""
    side, settings, (base,), (tuned,) = _base_and_tuned(run_id, checkpoint, prompt, _seeds(seed), lora)
    model = model_choice.model_name(settings["model"])
    figures = [html_figures.figure(base["image"], [f"base model: {model}", f"seed {base['seed']}",
                                                   *html_figures.score_lines(base["scores"])], html_figures.PAIR_SIDE),
               html_figures.figure(tuned["image"], [f"tuned: {side.label}", f"seed {tuned['seed']}",
                                                    *html_figures.score_lines(tuned["scores"], base["scores"])],
                                   html_figures.PAIR_SIDE)]
    heading = f"{base['prompt']} (change against the base in brackets)"
    return (_enlarge(base["image"]), _enlarge(tuned["image"])), html_figures.rows([(heading, figures)]), \
        _score_table(base, tuned)


def seed_grid(run_id, checkpoint, prompt: str, seed, count, lora: str | None = None):
    """The same comparison over several seeds: one gallery row for base, one for tuned."""
    _, _, base, tuned = _base_and_tuned(run_id, checkpoint, prompt, _seeds(seed, count), lora)
    return ([(_enlarge(r["image"]), _caption(r)) for r in base], [(_enlarge(r["image"]), _caption(r)) for r in tuned])


def _cells(rows: list[dict], lines) -> list[str]:
    return [html_figures.figure(r["image"], lines(i, r), html_figures.GRID_SIDE) for i, r in enumerate(rows)]


def seed_grid_page(run_id, checkpoint, prompt: str, seed, count, lora: str | None = None) -> str:
    """The page's grid: a row of base images, a row of tuned ones, each captioned under it."""
    side, settings, base, tuned = _base_and_tuned(run_id, checkpoint, prompt, _seeds(seed, count), lora)
    base_cells = _cells(base, lambda i, r: [f"seed {r['seed']}", *html_figures.score_lines(r["scores"])])
    tuned_cells = _cells(tuned, lambda i, r: [f"seed {r['seed']}",
                                              *html_figures.score_lines(r["scores"], base[i]["scores"])])
    return html_figures.rows([(f"base model: {model_choice.model_name(settings['model'])}", base_cells),
                              (f"tuned: {side.label} (change against the same seed's base in brackets)", tuned_cells)])


def _two_runs(run_a, run_b, prompts: str, seed, count):
    if run_a in (None, "") or run_b in (None, ""):
        raise gr.Error("Choose two runs.")
    a, b = _side(f"run:{selected_id(run_a)}"), _side(f"run:{selected_id(run_b)}")
    settings = _shared(a, b)
    first, second = generate(settings, [a, b], prompt_lines(prompts, settings["model"]["name"], MAX_SEEDS), _seeds(seed, count))
    table = [[name] + [round(float(np.mean([r["scores"][name] for r in side])), 4) for side in (first, second)]
             for name in first[0]["scores"]]
    return a, b, first, second, table


def two_runs(run_a, run_b, prompts: str, seed, count):
    """Two runs' latest checkpoints on the same prompts and seeds, with mean scores."""
    _, _, first, second, table = _two_runs(run_a, run_b, prompts, seed, count)
    return ([(_enlarge(r["image"]), _caption(r, with_prompt=True)) for r in first],
            [(_enlarge(r["image"]), _caption(r, with_prompt=True)) for r in second], table)


def two_runs_page(run_a, run_b, prompts: str, seed, count):
    a, b, first, second, table = _two_runs(run_a, run_b, prompts, seed, count)
    lines = lambda i, r: [r["prompt"], f"seed {r['seed']}", *html_figures.score_lines(r["scores"])]  # noqa: E731
    return html_figures.rows([(a.label, _cells(first, lines)), (b.label, _cells(second, lines))]), table


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


def lora_choices():
    """The LoRA list: the README's committed LoRAs (a folder or Hub id may be typed instead)."""
    return gr.update(choices=[(f"{p} (the README's)", p) for p in map(model_choice.shown_path,
                                                                        model_choice.committed_loras())])


def _source_shown(source):
    return gr.update(visible=source == RUN_SOURCE), gr.update(visible=source == LORA_SOURCE)


def _page(fn):
    """A page handler: the LoRA counts only while "a LoRA" is the chosen source."""
    def handler(source, run, checkpoint, lora, *rest):
        return fn(run, checkpoint, *rest, lora if source == LORA_SOURCE else None)
    handler.__name__ = handler.__qualname__ = fn.__name__
    return handler


def build(authorized: gr.State) -> dict:
    source = gr.Radio([RUN_SOURCE, LORA_SOURCE], value=RUN_SOURCE, label="Tuned model", elem_id="compare-source")
    with gr.Row() as run_row:
        run = gr.Dropdown(run_choices(), label="Run", elem_id="compare-run", scale=2, allow_custom_value=True)
        checkpoint = gr.Dropdown([], label="Checkpoint (default: latest)", scale=2, allow_custom_value=True)
        refresh = gr.Button("↻ runs", scale=0, min_width=80)
    lora = gr.Dropdown([], value=None, label="LoRA: a folder in the allowed folders, or a Hub id (owner/name)",
                       elem_id="compare-lora", allow_custom_value=True, visible=False)
    with gr.Row():
        prompt = gr.Textbox("two red circles on a black background", label="Prompt", elem_id="compare-prompt", scale=3)
        seed = gr.Number(0, label="Seed", scale=1)
    button = gr.Button("Compare base and tuned", variant="primary", elem_id="compare-button")
    message = gr.Markdown(elem_id="compare-message")
    gr.Markdown("Base ⟷ tuned: drag the line across the image.")
    slider = gr.ImageSlider(show_label=False, elem_id="compare-slider", max_height=300)
    pair = gr.HTML(elem_id="compare-images")
    scores = gr.Dataframe(headers=["reward", "base", "tuned"], label="Scores", elem_id="compare-scores")
    with gr.Accordion("Seed grid", open=False):
        count = gr.Slider(2, MAX_SEEDS, value=6, step=1, label="seeds (from the seed above)")
        grid_button = gr.Button("Draw the grid", elem_id="grid-button")
        grid = gr.HTML(elem_id="compare-grid")
    with gr.Accordion("Two runs side by side", open=False):
        with gr.Row():
            run_b = gr.Dropdown(run_choices(), label="Second run", scale=2, allow_custom_value=True)
            prompts = gr.Textbox("two red circles on a black background\na red triangle on a gray background",
                                 label="Prompts (one per line)", lines=3, scale=3)
        runs_button = gr.Button("Compare the two runs' latest checkpoints")
        runs_grid = gr.HTML(elem_id="compare-runs-grid")
        runs_table = gr.Dataframe(headers=["reward", "first run", "second run"], label="Mean scores")
        diff = gr.Markdown(elem_id="config-diff")
    ab_parts = ab_tab.build(authorized)
    # What the HTTP API returns (files and galleries a client can save), never shown on the page.
    with gr.Group(visible=False):
        api_base, api_tuned = gr.Image(), gr.Image()
        api_grid_base, api_grid_tuned, api_gallery_a, api_gallery_b = (gr.Gallery() for _ in range(4))

    source.change(_source_shown, source, [run_row, lora], api_visibility="private")
    source.change(lora_choices, None, lora, api_visibility="private")
    run.change(user_errors(checkpoint_choices), run, checkpoint, api_visibility="private")
    for dropdown in (run, run_b):  # the two runs' settings that differ, as soon as both are chosen
        dropdown.change(in_message_line(config_diff, 1), [run, run_b], [diff, message], api_visibility="private")
    # The page's buttons say what went wrong in the message line (an unknown word in the prompt...)
    # and clear the old result; the API's /compare, /seed_grid, /compare_runs (hidden buttons) raise it.
    tuned = [source, run, checkpoint, lora]
    for trigger, page_fn, inputs, outputs in (
            (button, _page(compare_page), tuned + [prompt, seed], [slider, pair, scores]),
            (grid_button, _page(seed_grid_page), tuned + [prompt, seed, count], [grid]),
            (runs_button, two_runs_page, [run, run_b, prompts, seed, count], [runs_grid, runs_table])):
        empty = ["" if isinstance(o, gr.HTML) else None for o in outputs]  # an HTML given None keeps its old value
        trigger.click(in_message_line(page_fn, len(outputs), clear=empty), inputs, outputs + [message],
                      api_visibility="private", concurrency_id="sampler")
    for fn, inputs, outputs, name in (
            (compare, [run, checkpoint, prompt, seed, lora], [slider, api_base, api_tuned, scores], "compare"),
            (seed_grid, [run, checkpoint, prompt, seed, count, lora], [api_grid_base, api_grid_tuned], "seed_grid"),
            (two_runs, [run, run_b, prompts, seed, count], [api_gallery_a, api_gallery_b, runs_table], "compare_runs")):
        gr.Button(visible=False).click(user_errors(fn), inputs, outputs, api_name=name, concurrency_id="sampler")
    refresh.click(lambda: [gr.update(choices=run_choices())] * 2, None, [run, run_b], api_visibility="private")
    for dropdown in (run, run_b):  # opening a list shows the runs launched since the page loaded
        dropdown.focus(lambda: gr.update(choices=run_choices()), None, dropdown, api_visibility="private")
    return {"run": run, "run_b": run_b, "source": source, **ab_parts}
