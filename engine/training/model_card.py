"""The model card of an exported LoRA: a README.md in the diffusers LoRA convention, built with
huggingface_hub's ModelCard / ModelCardData, so the Hub reads its metadata (base_model,
library_name, tags, a widget gallery of the samples) and a reader sees what was trained, how, with
which scores, and how to load it (`pipe.load_lora_weights`).

What it states comes from the run: the config, the records (training reward of the first and last
iteration) and the evaluations (held-out scores of the base model and of the exported checkpoint).
No torch here: the UI process exports.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path

from huggingface_hub import ModelCard, ModelCardData

CARD = "README.md"
ALGORITHMS = {"g2rpo": "G²RPO (Granular GRPO, arXiv 2510.01982)", "egrpo": "E-GRPO", "dancegrpo": "DanceGRPO",
              "flowgrpo": "Flow-GRPO", "mixgrpo": "MixGRPO", "diffusionnft": "DiffusionNFT"}
PIPELINES = {"flux": "FluxPipeline", "sd3": "StableDiffusion3Pipeline"}
HUB_ID = re.compile(r"[A-Za-z0-9][\w.-]*/[\w.-]+")
# The algorithm settings each method reads (the card lists those; the others are ignored by it).
_SDE = ("group_size", "eta", "noise_form", "shared_noise", "clip_range", "adv_clamp", "kl_beta")
_BRANCHING = _SDE + ("branch_steps", "granularities", "completion")
READS = {"g2rpo": _BRANCHING, "egrpo": _BRANCHING + ("merge_steps",), "dancegrpo": _SDE + ("train_fraction",),
         "flowgrpo": _SDE + ("global_std",), "mixgrpo": _SDE + ("window_size", "window_shift_every"),
         "diffusionnft": ("group_size", "adv_clamp", "kl_beta", "nft_beta", "nft_times", "nft_group_noise", "nft_noise",
                          "nft_time_fraction", "nft_old_decay", "nft_negatives")}
TRAIN_SETTINGS = ("iterations", "prompts_per_iteration", "learning_rate", "lr_schedule", "optimizer_step",
                  "weight_decay", "max_grad_norm", "mixed_precision", "seed")


@dataclass
class CardFacts:
    """What a run measured, as far as the card needs it; fed record by record."""
    first_iteration: int | None = None
    first_rewards: dict[str, float] = field(default_factory=dict)  # reward name -> mean of that iteration
    last_iteration: int | None = None
    last_rewards: dict[str, float] = field(default_factory=dict)
    evaluations: list[dict] = field(default_factory=list)  # {trained, prompts, seeds, scores}

    def add(self, record: dict) -> None:
        means = {name: v["mean"] for name, v in record["reward"].items()}
        if self.first_iteration is None:
            self.first_iteration, self.first_rewards = record["iteration"], means
        self.last_iteration, self.last_rewards = record["iteration"], means
        self.evaluations += [record[key] for key in ("base_evaluation", "evaluation") if record.get(key)]

    def with_record(self, record: dict | None) -> "CardFacts":
        """A copy that has seen `record` too, if one is given (this one unchanged)."""
        copy = CardFacts(self.first_iteration, dict(self.first_rewards), self.last_iteration, dict(self.last_rewards),
                         list(self.evaluations))
        if record is not None:
            copy.add(record)
        return copy

    @classmethod
    def from_records(cls, records) -> "CardFacts":
        facts = cls()
        for record in records:
            facts.add(record)
        return facts

    @classmethod
    def from_jsonl(cls, path: Path, before: int) -> "CardFacts":
        """From a run folder's records.jsonl, the iterations before `before` (a resume's start), read line by line."""
        if not Path(path).exists():
            return cls()
        with open(path) as f:
            return cls.from_records(r for r in map(json.loads, filter(str.strip, f)) if r["iteration"] < before)

    def scores(self, trained: int) -> tuple[dict | None, dict | None]:
        """The base model's evaluation and the latest one of the policy after at most `trained`
        iterations (with the most seeds among those of that iteration), on the same prompts."""
        known = [{**e, "trained": _trained(e)} for e in self.evaluations if _trained(e) is not None]
        tuned = [e for e in known if 0 < e["trained"] <= trained]
        latest = max(tuned, key=lambda e: (e["trained"], e.get("seeds") or 0), default=None)
        bases = [e for e in known if e["trained"] == 0
                 and (latest is None or (e["prompts"], e.get("seeds")) == (latest["prompts"], latest.get("seeds")))]
        return (bases[-1] if bases else None), latest


def _trained(evaluation: dict) -> int | None:
    """Iterations trained before an evaluation: stored, or read from its checkpoint's name (iter_NNNNNN)."""
    if evaluation.get("trained") is not None:
        return evaluation["trained"]
    found = re.search(r"iter_(\d+)", evaluation.get("checkpoint") or "")
    return int(found[1]) if found else None


def base_model(model: dict) -> str | None:
    """The base model's Hub id (the card's `base_model`), or None for the built-in models and local folders."""
    if model["name"] not in PIPELINES:
        return None
    from engine.models import DEFAULT_PATHS

    path = model.get("path") or DEFAULT_PATHS[model["name"]]
    return path if HUB_ID.fullmatch(path) and not Path(path).exists() else None


def _value(value) -> str:
    if isinstance(value, list):
        return ", ".join(map(str, value)) or "—"
    return "—" if value is None else str(value)


def _settings(config: dict) -> str:
    rows = [("rewards (weight)", ", ".join(f"{r['name']} ({r['weight']:g})" for r in config["rewards"]))]
    a = config["algorithm"]
    rows += [(f"algorithm.{k}", _value(v)) for k, v in a.items() if k == "name" or k in READS.get(a["name"], a)]
    rows += [(f"sampling.{k}", _value(v)) for k, v in config["sampling"].items()]
    rows += [(f"lora.{k}", "the model's default" if v is None else _value(v))
             for k, v in config["lora"].items() if k != "enabled"]
    rows += [(f"train.{k}", _value(config["train"][k])) for k in TRAIN_SETTINGS]
    return "| setting | value |\n| --- | --- |\n" + "\n".join(f"| `{k}` | {v} |" for k, v in rows)


def _scores(facts: CardFacts, trained: int) -> str:
    lines = []
    if facts.first_iteration is not None:
        lines += [f"Training reward (the mean over an iteration's samples), iteration {facts.first_iteration} → "
                  f"{facts.last_iteration}:", "", "| reward | first | last |", "| --- | --- | --- |"]
        lines += [f"| {name} | {facts.first_rewards[name]:.4f} | {facts.last_rewards.get(name, float('nan')):.4f} |"
                  for name in facts.first_rewards]
    base, tuned = facts.scores(trained)
    if tuned is not None:
        seeds = f", {tuned['seeds']} seed(s) each" if tuned.get("seeds") else ""
        lines += ["", f"Evaluation on the `{tuned['prompts']}` prompts{seeds}, the same noise for both columns:", "",
                  f"| score | base model | after {tuned['trained']} iterations |", "| --- | --- | --- |"]
        before = base["scores"] if base else {}
        lines += [f"| {name} | {format(before[name], '.4f') if name in before else '—'} | {score:.4f} |"
                  for name, score in tuned["scores"].items()]
    return "\n".join(lines).strip() or "No scores were recorded for this checkpoint."


def _usage(config: dict, where: str) -> str:
    model, s = config["model"], config["sampling"]
    if model["name"] not in PIPELINES:
        what = "the built-in model" if model["name"] == "builtin" else "the random-weight test model `tiny-flux`"
        evaluate = f"python -m engine.evaluate --prompts eval --seeds 4 --lora {where}"
        adapter = f'model.transformer.load_lora_adapter("{where}", prefix="transformer")'
        return (f"The base is {what} of G²RPO studio, which ships with its code; score this LoRA on the held-out "
                f"prompts with every reward:\n\n```bash\n{evaluate}\n```\n\nor load it into the transformer: `{adapter}`.")
    from engine.models import PIPELINE_DEFAULTS

    defaults = PIPELINE_DEFAULTS[model["name"]]
    base = base_model(model) or model.get("path") or defaults["path"]
    resolution = model.get("resolution") or defaults["resolution"]
    guidance = defaults["guidance"] if model.get("guidance") is None else model["guidance"]
    pipeline, steps = PIPELINES[model["name"]], s["steps"]
    dynamic = "use_dynamic_shifting=False, " if model["name"] == "flux" else ""
    prompt = (config.get("sample_prompts") or ["a prompt"])[0].replace('"', "'")
    return f"""```python
import numpy as np, torch
from diffusers import {pipeline}, FlowMatchEulerDiscreteScheduler

pipe = {pipeline}.from_pretrained("{base}", torch_dtype=torch.bfloat16).to("cuda")
pipe.load_lora_weights("{where}")
# the training's time grid: shift {s['shift']:g}, no resolution-dependent shift
pipe.scheduler = FlowMatchEulerDiscreteScheduler.from_config(pipe.scheduler.config, {dynamic}shift={s['shift']:g})
image = pipe("{prompt}", height={resolution}, width={resolution}, guidance_scale={guidance:g},
             num_inference_steps={steps}, sigmas=np.linspace(1, 1 / {steps}, {steps})).images[0]
```"""


def lora_card(config: dict, facts: CardFacts, trained: int, images: list[tuple[str, str]] = (),
              repo_id: str | None = None) -> ModelCard:
    """The card of a LoRA trained for `trained` iterations with `config` (the resolved run config).
    `images`: (path inside the LoRA folder, prompt) of sample images that travel with it."""
    a, model = config["algorithm"], config["model"]
    algorithm = ALGORITHMS.get(a["name"], a["name"])
    base = base_model(model)
    tags = ["text-to-image", "diffusers", "lora", "template:sd-lora", "reinforcement-learning", a["name"], "g2rpo-studio"]
    if model["name"] in PIPELINES:
        tags.append(model["name"])
    widget = [{"text": prompt, "output": {"url": path}} for path, prompt in images] or None
    data = ModelCardData(base_model=base, library_name="diffusers", pipeline_tag="text-to-image", tags=tags, widget=widget)
    rewards = ", ".join(f"`{r['name']}`" for r in config["rewards"])
    title = repo_id or f"{algorithm} LoRA"
    on = f"[{base}](https://huggingface.co/{base})" if base else f"`{model.get('path') or model['name']}`"
    gallery = "<Gallery />\n\n" if images else ""
    body = f"""# {title}

{gallery}A LoRA (rank {config['lora']['rank']}, alpha {config['lora']['alpha']:g}) on {on}, trained for {trained} \
iterations by online reinforcement learning with {algorithm} against the reward {rewards}, in G²RPO studio. The \
base model's licence applies to it.

## Scores

{_scores(facts, trained)}

## How to use it

{_usage(config, repo_id or "path/to/this/folder")}

## Training settings

{_settings(config)}
"""
    return ModelCard(f"---\n{data.to_yaml()}\n---\n\n{body}")
