"""A blind test's results as Markdown: A's win rate over B with its 95% intervals, overall and per
prompt attribute, and the voters' agreement with each reward (jobs/vote_stats.py computes them)."""
from __future__ import annotations

import math

from app import escape

ROLES = {"adherence": "the verifiers' mean", "preference": "the learned reward", "background": "a verifier",
         "colour": "a verifier", "shape": "a verifier", "count": "a verifier"}


md = escape.markdown  # user text (a model's name, a prompt) shown as itself


def _number(value: float) -> str:
    return "n/a" if math.isnan(value) else f"{value:.3f}"


def _interval(bounds: tuple[float, float]) -> str:
    return "n/a" if any(math.isnan(b) for b in bounds) else f"{bounds[0]:.3f} – {bounds[1]:.3f}"


def _reward(name: str) -> str:
    return md(name) + (f" ({ROLES[name]})" if name in ROLES else "")


def _row(name: str, t: dict, bootstrap: bool) -> str:
    cells = [name, str(t["votes"]), str(t["a"]), str(t["b"]), str(t["same"]), _number(t["rate"]), _interval(t["wilson"])]
    return "| " + " | ".join(cells + ([_interval(t["bootstrap"])] if bootstrap else [])) + " |"


def results(test: dict, votes: list[dict]) -> str:
    from jobs import vote_stats

    head = (f"**Test #{test['id']}**: model A = {md(test['label_a'])}, model B = {md(test['label_b'])}; "
            f"{len(test['prompts'])} prompts ({md(test['prompt_set'])}) × {test['seeds']} seeds.")
    if not votes:
        return head + "\n\nNo votes yet."
    overall = vote_stats.tally(votes)
    prompts = len({v["prompt"] for v in votes})
    lines = [head, "",
             f"A's win rate over B: **{_number(overall['rate'])}** from {overall['votes']} votes, 95% interval "
             f"**{_interval(overall['wilson'])}** (Wilson). A tie (\"same\") counts as half a win for each model, so "
             f"0.5 is no preference; the bootstrap interval resamples the {prompts} prompts with their votes.", "",
             "| prompts | votes | A better | B better | same | A's win rate | 95% interval (Wilson) | "
             "95% interval (bootstrap over prompts) |",
             "| --- | --- | --- | --- | --- | --- | --- | --- |", _row("all", overall, bootstrap=True)]
    attributes = vote_stats.by_attribute(votes)
    if attributes:
        lines += ["", "Per prompt attribute (Wilson intervals):", "",
                  "| attribute | votes | A better | B better | same | A's win rate | 95% interval (Wilson) |",
                  "| --- | --- | --- | --- | --- | --- | --- |"]
        lines += [_row(f"{attribute} = {md(value)}", t, bootstrap=False) for attribute, value, t in attributes]
    agreement = vote_stats.agreement(votes)
    if agreement:
        lines += ["", "Agreement with the rewards: of the votes that picked a side on a pair the reward scored "
                      "differently, the share that picked the image it scored higher.", "",
                  "| reward | votes that picked a side | the reward told the images apart | voter agreed | agreement |",
                  "| --- | --- | --- | --- | --- |"]
        lines += [f"| {_reward(r['reward'])} | {r['decisive']} | {r['told_apart']} | {r['agreed']} | {_number(r['rate'])} |"
                  for r in agreement]
    return "\n".join(lines)
