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


def run_cell(run_id: int, tests: list[dict]) -> str:
    """The Runs row's blind-test cell (plain text) from jobs.votes.tests_of_runs: the run's own win
    rate and Wilson interval in the test with the most votes, the model it faced and the votes; ""
    before any vote. Like the results button, it is for after voting: a voter who watches it learns
    which side was which."""
    from jobs import vote_stats

    voted = sorted((t for t in tests if t["a"] + t["b"] + t["same"]),
                   key=lambda t: (-(t["a"] + t["b"] + t["same"]), -t["id"]))
    if not voted:
        return ""
    test = voted[0]
    as_b = test["run_b"] == run_id and test["run_a"] != run_id  # both sides from this run: read as A
    t = vote_stats.from_counts(a=test["b"], b=test["a"], same=test["same"]) if as_b else \
        vote_stats.from_counts(a=test["a"], b=test["b"], same=test["same"])
    other = test["label_a"] if as_b else test["label_b"]
    more = f"; {len(voted) - 1} more test{'s' if len(voted) > 2 else ''} in Compare" if len(voted) > 1 else ""
    return (f"{_number(t['rate'])} ({_interval(t['wilson'])}) vs {other}, {t['votes']} vote"
            f"{'s' if t['votes'] != 1 else ''}, test #{test['id']}{more}")
