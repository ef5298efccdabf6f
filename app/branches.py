"""Monitor's branch explorer: one (iteration, prompt, k) group of a G²RPO run, its G members' completed
images at every granularity λ, ranked by mixed advantage, each captioned with its numbers.

The trainer keeps the branches every train.branch_every iterations (engine/training/branches.py); jobs/branches.py
reads them. Images are sent inline as small PNGs (the data folder is never served), the built-in
model's 32x32 enlarged with nearest-neighbour so its pixels stay sharp. No torch.
"""
from __future__ import annotations

import html

import gradio as gr

from app import compare_html
from jobs import branches

SHOWN_SIDE = 128  # pixels per image side on the page
EXPLAINER = """Each row is one granularity λ: the members' images finished by ODE at stride λ from the
same SDE step at k. Columns are the G members **ranked by mixed advantage** (left: highest; a member
keeps its column in every row). Under each image: the training reward at that λ, its **z**-score in
the group at that λ, and the member's mixed advantage **A** (the sum of its z-scores over λ and the
weighted rewards, clamped). On the built-in world the finest λ's row adds the verifier scores. Stored
at iteration 0 and every `train.branch_every` iterations (the first four prompts of each)."""


def _number(value, signed: bool = False) -> str:
    if value is None:
        return "n/a"
    return f"{value:+.2f}" if signed else f"{value:.3f}"


def _inline(image) -> str:
    """A PNG data URI of the image at SHOWN_SIDE (whole-pixel enlargement: pixels stay pixels)."""
    return compare_html.inline(compare_html.scaled(image, SHOWN_SIDE))


def _caption(rank: int, member: dict, finish: dict, finest: bool) -> str:
    lines = [f"#{rank + 1} · member {member['member']}"]
    for name, value in finish["rewards"].items():
        prefix = f"{html.escape(name)} " if len(finish["rewards"]) > 1 else ""
        lines.append(f"{html.escape(name)} {_number(value)}")
        lines.append(f"{prefix}z {_number(finish['z'][name], signed=True)}")
    lines.append(f"A {_number(member['mixed'], signed=True)}")
    if finest:
        lines += [f"{html.escape(name)} {_number(value)}" for name, value in member["components"].items()]
    return "<figcaption>" + "<br>".join(lines) + "</figcaption>"


def group_html(group: dict) -> str:
    """The group as HTML: a heading, then one row of ranked members per λ, captions under the images."""
    lambdas = group["granularities"]
    finest = lambdas.index(min(lambdas))
    head = (f'<p class="branch-head">Iteration {group["iteration"]} · prompt {group["prompt_index"]}: '
            f'<q>{html.escape(group["prompt"])}</q> · k = {group["k"]} · {len(group["members"])} members, '
            "ranked by mixed advantage (left: highest)</p>")
    rows = []
    for li, lam in enumerate(lambdas):
        cells = [f'<figure><img src="{_inline(m["finishes"][li]["image"])}" '
                 f'alt="member {m["member"]}, λ = {lam}">{_caption(rank, m, m["finishes"][li], li == finest)}</figure>'
                 for rank, m in enumerate(group["members"])]
        rows.append(f'<div class="branch-row"><div class="branch-lambda">λ = {lam}</div>{"".join(cells)}</div>')
    return f'<div class="branch-explorer">{head}{"".join(rows)}</div>'


def _message(text: str) -> str:
    return f'<p class="branch-empty">{html.escape(text)}</p>'


def _empty(view: dict) -> str:
    if view.get("run_id") is None:
        return ""
    train = (((view.get("run") or {}).get("config") or {}).get("train") or {})
    every = train.get("branch_every")
    if every == 0:
        return _message("This run keeps no branches (train.branch_every = 0).")
    if every is None:
        return _message("This run was started before branches were stored.")
    return _message(f"No branches stored yet: this run keeps them at iteration 0 and every {every} iterations after.")


def _whole(value) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def show(view: dict, iteration, prompt, k) -> str:
    """The chosen group's HTML, or a line saying why there is none."""
    iteration, prompt, k = _whole(iteration), _whole(prompt), _whole(k)
    if view.get("run_id") is None or iteration is None:
        return _empty(view)
    try:
        return group_html(branches.group(branches.run_folder(view["run_id"]), iteration, prompt or 0,
                                         k if k is not None else -1))
    except branches.BranchError as err:
        return _message(f"⚠️ {err}")


def choices(view: dict, iteration, prompt, k) -> tuple:
    """The prompt and k dropdowns for a stored iteration (keeping the chosen values where it has them)."""
    iteration, meta = _whole(iteration), None
    try:
        if iteration is not None:
            meta = branches.numbers(branches.run_folder(view["run_id"]), iteration)["meta"]
    except branches.BranchError:
        pass
    if meta is None:
        return gr.update(choices=[], value=None), gr.update(choices=[], value=None)
    prompts = [(f"{i}: {text}", i) for i, text in enumerate(meta["prompts"])]
    prompt, k, steps = _whole(prompt), _whole(k), meta["branch_steps"]
    return (gr.update(choices=prompts, value=prompt if prompt is not None and 0 <= prompt < len(prompts) else 0),
            gr.update(choices=steps, value=k if k in steps else steps[0]))


def pick(view: dict, iteration, prompt, k) -> tuple:
    """The user chose an iteration: its prompts and branch steps, and the group."""
    prompt_update, k_update = choices(view, iteration, prompt, k)
    return prompt_update, k_update, show(view, iteration, prompt_update.get("value"), k_update.get("value"))


def refresh(view: dict, listed: dict, iteration, prompt, k) -> tuple:
    """The run moved or changed: list its stored iterations again; follow the newest unless an older
    one is chosen. Nothing is sent when the listing did not change."""
    run_id = view.get("run_id")
    stored = branches.iterations(branches.run_folder(run_id)) if run_id is not None else []
    now = {"run": run_id, "iterations": stored}
    if now == listed:
        return (gr.skip(),) * 5
    chosen = _whole(iteration)
    following = listed.get("run") != run_id or not listed.get("iterations") or chosen == listed["iterations"][-1]
    chosen = (stored[-1] if following or chosen not in stored else chosen) if stored else None
    pick_prompt, pick_k, page = pick(view, chosen, prompt, k) if stored else (
        gr.update(choices=[], value=None), gr.update(choices=[], value=None), _empty(view))
    iteration_update = gr.update(choices=[(f"iteration {i}", i) for i in stored], value=chosen)
    return now, iteration_update, pick_prompt, pick_k, page


def build() -> dict:
    """The explorer's controls (inside the Monitor's G²RPO views); `wire` connects them to the view."""
    with gr.Accordion("Branch explorer: each branch step's members, their images at every λ", open=False,
                      elem_id="branch-explorer"):
        gr.Markdown(EXPLAINER)
        with gr.Row():
            iteration = gr.Dropdown([], label="Iteration (those that kept their branches)", elem_id="branch-iteration")
            prompt = gr.Dropdown([], label="Prompt", elem_id="branch-prompt", scale=2)
            k = gr.Dropdown([], label="Branch step k", elem_id="branch-k")
        images = gr.HTML(elem_id="branch-images")
    return {"iteration": iteration, "prompt": prompt, "k": k, "images": images, "listed": gr.State({})}


def wire(parts: dict, view: gr.State) -> None:
    iteration, prompt, k, images, listed = (parts[key] for key in ("iteration", "prompt", "k", "images", "listed"))
    view.change(refresh, [view, listed, iteration, prompt, k], [listed, iteration, prompt, k, images],
                api_visibility="private", concurrency_limit=None, show_progress="hidden")
    iteration.input(pick, [view, iteration, prompt, k], [prompt, k, images], api_visibility="private",
                    concurrency_limit=None)
    for control in (prompt, k):
        control.input(show, [view, iteration, prompt, k], images, api_visibility="private", concurrency_limit=None)
