"""The study's tables, from result rows: per protocol the scores with 95% intervals over seeds, the
differences from the base and from DanceGRPO with verdicts, the cost to reach a target adherence, and
the reward-hacking table; verdicts.md states each of the papers' comparisons in one line.

A result row is one evaluated model: {"reward" (trained on), "method", "label", "seed", "iteration",
"evaluations", "seconds", "calibrated_seconds", "points": [[protocol, fraction], ...] it stands for,
"scores": {"held_out" | "train": {reward: mean}}}; the base model's row has method "base", no reward,
no seed. Intervals and verdicts come from stats.py, nowhere else.
"""
from __future__ import annotations

import numpy as np

from engine.study.plan import PROTOCOL_LABELS, REFERENCE, Plan
from engine.study.stats import Interval, difference_interval, first_reaching, mean_interval, ratio_interval

SPLIT_WORDS = {"held_out": "held-out", "train": "training"}
# The papers' own comparisons, each (method, against, what the claim is)
CLAIMS = [
    ("g2rpo-L123", "dancegrpo", "G²RPO's Table 1: G²RPO above DanceGRPO"),
    ("g2rpo-L123", "mixgrpo", "G²RPO's Table 1: G²RPO above MixGRPO"),
    ("g2rpo-L123", "flowgrpo", "G²RPO above Flow-GRPO"),
    ("g2rpo-L123", "g2rpo-L1", "G²RPO's Table 2: more granularities help"),
    ("egrpo", "g2rpo-L123", "E-GRPO's claim: merged steps above G²RPO"),
    ("diffusionnft", "flowgrpo", "DiffusionNFT's claim: above Flow-GRPO"),
    # not a paper's claim, the question this testbed's two README runs raise
    ("g2rpo-L123", "diffusionnft", "G²RPO above DiffusionNFT (the newer method)"),
]


def base_row(rows: list[dict]) -> dict | None:
    return next((r for r in rows if r["method"] == "base"), None)


def at_point(rows: list[dict], reward: str, method: str, protocol: str, fraction: float) -> list[dict]:
    """One row per seed: the method's checkpoint where it first reached `fraction` of `protocol`'s budget."""
    return sorted((r for r in rows if r["reward"] == reward and r["method"] == method
                   and [protocol, fraction] in r["points"]), key=lambda r: r["seed"])


def values(rows: list[dict], split: str, name: str) -> list[float]:
    return [r["scores"][split][name] for r in rows]


def interval_cell(iv: Interval | None, digits: int = 3) -> str:
    if iv is None:
        return "—"
    if iv.seeds == 1:
        return f"{iv.estimate:.{digits}f}"
    return f"{iv.estimate:.{digits}f} [{iv.low:.{digits}f}, {iv.high:.{digits}f}]"


def difference_cell(iv: Interval) -> str:
    return f"{iv.text()} {verdict_word(iv)}"


def verdict_word(iv: Interval) -> str:
    verdict = iv.verdict()
    return {"better": "**better**", "worse": "**worse**"}.get(verdict, verdict)  # else "no difference ...", "no verdict ..."


COLUMNS = [("held_out", "adherence"), ("train", "adherence"), ("held_out", "shape"), ("held_out", "count"),
           ("held_out", "colour"), ("held_out", "preference"), ("train", "preference")]


def scores_table(plan: Plan, rows: list[dict], reward: str, protocol: str) -> str:
    """Each method's scores at the full budget of one protocol: mean and 95% interval over seeds."""
    base = base_row(rows)
    columns = [(s, n) for s, n in COLUMNS if n in plan.eval_rewards]
    head = ["method", "seeds", "iterations", "evaluations", "train s", *[f"{n} ({SPLIT_WORDS[s]})" for s, n in columns]]
    lines = ["| " + " | ".join(head) + " |", "|" + " --- |" * len(head)]
    if base is not None:
        lines.append("| " + " | ".join([base["label"], "—", "0", "0", "0",
                                        *[f"{base['scores'][s][n]:.3f}" for s, n in columns]]) + " |")
    for key in plan.track(reward).methods:
        at = at_point(rows, reward, key, protocol, 1.0)
        if not at:
            continue
        cells = [plan.method(key).label, str(len(at)), f"{np.mean([r['iteration'] for r in at]):.0f}",
                 f"{np.mean([r['evaluations'] for r in at]):,.0f}", f"{np.mean([r['seconds'] for r in at]):.0f}"]
        cells += [interval_cell(mean_interval(values(at, s, n))) for s, n in columns]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def differences_table(plan: Plan, rows: list[dict], reward: str, protocol: str, name: str = "adherence") -> str:
    """Each method's difference from the base and from DanceGRPO on held-out and training prompts."""
    base = base_row(rows)
    reference = at_point(rows, reward, REFERENCE, protocol, 1.0)
    head = ["method"] + [f"{name} ({SPLIT_WORDS[s]}) − {who}" for s in ("held_out", "train")
                         for who in ("base", "DanceGRPO")]
    lines = ["| " + " | ".join(head) + " |", "|" + " --- |" * len(head)]
    for key in plan.track(reward).methods:
        at = at_point(rows, reward, key, protocol, 1.0)
        if not at or base is None:
            continue
        cells = [plan.method(key).label]
        for split in ("held_out", "train"):
            cells.append(difference_cell(difference_interval(values(at, split, name), [base["scores"][split][name]])))
            cells.append("—" if key == REFERENCE or not reference else
                         difference_cell(difference_interval(values(at, split, name), values(reference, split, name))))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def run_path(rows: list[dict], reward: str, method: str, seed: int, base: dict, split: str, name: str):
    """A run's (evaluations, calibrated seconds, score) from the base (cost 0) through its checkpoints."""
    own = sorted((r for r in rows if r["reward"] == reward and r["method"] == method and r["seed"] == seed),
                 key=lambda r: r["iteration"])
    return ([0] + [r["evaluations"] for r in own], [0.0] + [r["calibrated_seconds"] or r["seconds"] for r in own],
            [base["scores"][split][name]] + [r["scores"][split][name] for r in own])


def target_table(plan: Plan, rows: list[dict], reward: str = "adherence") -> str:
    """Model evaluations and seconds each method needs to first reach the target held-out adherence,
    interpolated between its checkpoints; runs that never reach it are counted, not averaged."""
    base = base_row(rows)
    if base is None:
        return ""
    target = base["scores"]["held_out"]["adherence"] + plan.target
    need: dict[str, tuple[list[float], list[float], int]] = {}
    for key in plan.track(reward).methods:
        evals, secs, seeds = [], [], 0
        for seed in sorted({r["seed"] for r in rows if r["reward"] == reward and r["method"] == key}):
            seeds += 1
            costs, seconds, scores = run_path(rows, reward, key, seed, base, "held_out", "adherence")
            if (e := first_reaching(costs, scores, target)) is not None:
                evals.append(e)
                secs.append(first_reaching(seconds, scores, target))
        need[key] = (evals, secs, seeds)
    head = ["method", "runs that reach it", "model evaluations", "seconds (calibrated)",
            "DanceGRPO's evaluations ÷ this method's"]
    lines = [f"Held-out adherence ≥ {target:.3f} (the base's {base['scores']['held_out']['adherence']:.3f} "
             f"+ {plan.target:g}), first reached, interpolated linearly between a run's checkpoints; "
             "means and intervals over the runs that reach it.", "",
             "| " + " | ".join(head) + " |", "|" + " --- |" * len(head)]
    reference = need.get(REFERENCE, ([], [], 0))[0]
    # a reference that never gets there bounds the ratio from below by what its runs spent
    spent = [max(r["evaluations"] for r in rows if r["reward"] == reward and r["method"] == REFERENCE and r["seed"] == seed)
             for seed in {r["seed"] for r in rows if r["reward"] == reward and r["method"] == REFERENCE}]
    for key, (evals, secs, seeds) in need.items():
        ratio = "—"
        if evals and reference and key != REFERENCE:
            ratio = interval_cell(ratio_interval(reference, evals), 2) + "×"
        elif evals and spent and not reference and key != REFERENCE:
            ratio = f"more than {min(spent) / np.mean(evals):.1f}× (DanceGRPO never reached it in {min(spent):,} evaluations)"
        lines.append("| " + " | ".join([plan.method(key).label, f"{len(evals)} of {seeds}",
                                        interval_cell(mean_interval(evals), 0) if evals else "never",
                                        interval_cell(mean_interval(secs), 1) if secs else "never", ratio]) + " |")
    return "\n".join(lines)


def moves(iv: Interval) -> str:
    verdict = iv.verdict()
    return {"better": "rises", "worse": "falls"}.get(verdict, verdict)


def hacking_verdict(reward_gain: Interval, verifiers_train: Interval, verifiers_held_out: Interval) -> str:
    """Hacking in the strict sense: on the prompts it was trained on, the learned reward rises while
    the exact verifiers fall; what the held-out verifiers do is said beside it."""
    head = ("**hacking**: on the training prompts the learned reward rises while the verifiers fall"
            if reward_gain.verdict() == "better" and verifiers_train.verdict() == "worse" else
            f"learned reward (training prompts) {moves(reward_gain)}, verifiers {moves(verifiers_train)}")
    return f"{head}; held-out verifiers: {moves(verifiers_held_out)}"


def hacking_table(plan: Plan, rows: list[dict], reward: str = "preference") -> str:
    """Trained on the learned reward: does it rise on the training prompts while the exact verifiers fall?"""
    base = base_row(rows)
    if base is None or reward not in {t.reward for t in plan.tracks}:
        return ""
    protocol = plan.track(reward).protocols[0]
    head = ["method", "seeds", "preference (training) − base", "preference (held-out) − base",
            "adherence (training) − base", "adherence (held-out) − base", "verdict"]
    lines = ["| " + " | ".join(head) + " |", "|" + " --- |" * len(head)]
    for key in plan.track(reward).methods:
        at = at_point(rows, reward, key, protocol, 1.0)
        if not at:
            continue
        diff = {(s, n): difference_interval(values(at, s, n), [base["scores"][s][n]])
                for s in ("train", "held_out") for n in ("preference", "adherence")}
        lines.append("| " + " | ".join([plan.method(key).label, str(len(at)),
                                        *[diff[s, n].text() for n, s in (("preference", "train"), ("preference", "held_out"),
                                                                          ("adherence", "train"), ("adherence", "held_out"))],
                                        hacking_verdict(diff["train", "preference"], diff["train", "adherence"],
                                                        diff["held_out", "adherence"])]) + " |")
    return "\n".join(lines)


def budget_words(plan: Plan, protocol: str) -> str:
    budget = plan.budgets[protocol]
    return {"iterations": f"{budget:g} iterations", "evaluations": f"{budget:,.0f} model evaluations",
            "seconds": f"{budget:g} s of training"}[protocol]


def table_markdown(plan: Plan, rows: list[dict], calibration: list[dict], machine: str) -> str:
    seeds = len(plan.seeds)
    text = [f"# The study: {seeds} seeds per method, means and 95% intervals over seeds", "",
            f"Scored on {len(plan.eval_prompts)} held-out prompts × {plan.eval_seeds} seed(s) and "
            f"{len(plan.train_prompts)} training prompts × 1, the same noise for every model; adherence is the mean "
            "of the four exact verifiers. Intervals are expanded percentile bootstraps over seeds (stats.py: 10,000 "
            "resamples, the tails widened for few seeds; a difference resamples each side's seeds on its own); a verdict is **better** or **worse** when its "
            f"interval excludes 0, else no difference detectable. {machine}.", ""]
    for track in plan.tracks:
        for protocol in track.protocols:
            text += [f"## Trained on `{track.reward}`: {PROTOCOL_LABELS[protocol]} ({budget_words(plan, protocol)})",
                     "", scores_table(plan, rows, track.reward, protocol), ""]
            text += [f"Differences in {track.reward}:", "",
                     differences_table(plan, rows, track.reward, protocol, track.reward), ""]
            if track.reward != "adherence" and "adherence" in plan.eval_rewards:
                text += ["Differences in adherence (the exact verifiers, not trained on):", "",
                         differences_table(plan, rows, track.reward, protocol, "adherence"), ""]
    if "adherence" in {t.reward for t in plan.tracks}:
        text += ["## The cost to reach a held-out adherence (trained on `adherence`)", "", target_table(plan, rows), ""]
    if hack := hacking_table(plan, rows):
        text += ["## Reward hacking: trained on the learned `preference` (HPS's role)", "", hack, ""]
    if calibration:
        text += ["## The clock of the equal-time protocol", "",
                 "Seconds per model evaluation of each method, measured once at the start of the study (one "
                 "warm-up iteration, then the timed ones); a run's seconds under that protocol are its evaluations "
                 "times this rate.", "", "| trained on | method | ms / evaluation | evaluations / iteration | s / iteration |",
                 "| --- | --- | --- | --- | --- |"]
        text += [f"| {c['reward']} | {c['method']} | {1000 * c['seconds_per_evaluation']:.2f} | "
                 f"{c['evaluations_per_iteration']:,.0f} | {c['seconds_per_iteration']:.2f} |" for c in calibration]
    return "\n".join(text) + "\n"


def verdicts_markdown(plan: Plan, rows: list[dict]) -> str:
    """One line per comparison the papers make, per protocol, on held-out and training adherence."""
    lines = ["# Verdicts, as measured", "",
             f"{len(plan.seeds)} seeds per method; Δ is the difference in adherence with its 95% interval.", ""]
    track = next((t for t in plan.tracks if t.reward == "adherence"), None)
    if track is None:
        return "\n".join(lines) + "\n"
    base = base_row(rows)
    for protocol in track.protocols:
        lines += [f"## {PROTOCOL_LABELS[protocol]} ({budget_words(plan, protocol)})", ""]
        if base is not None:
            for key in track.methods:
                at = at_point(rows, track.reward, key, protocol, 1.0)
                if at:
                    iv = difference_interval(values(at, "held_out", "adherence"), [base["scores"]["held_out"]["adherence"]])
                    lines.append(f"- {plan.method(key).label} against the base model, held-out: {iv.text()}: "
                                 f"{iv.verdict('better', 'worse')}.")
        for key, against, claim in CLAIMS:
            if key not in track.methods or against not in track.methods:
                continue
            a, b = (at_point(rows, track.reward, k, protocol, 1.0) for k in (key, against))
            if not a or not b:
                continue
            parts = []
            for split in ("held_out", "train"):
                iv = difference_interval(values(a, split, "adherence"), values(b, split, "adherence"))
                parts.append(f"{SPLIT_WORDS[split]} Δ {iv.text()}: {iv.verdict()}")
            lines.append(f"- {claim}: {'; '.join(parts)}.")
        lines.append("")
    return "\n".join(lines) + "\n"
