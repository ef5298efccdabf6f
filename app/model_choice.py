"""Which model draws an image in Compare: the base model, a run's checkpoint, a LoRA folder or a Hub LoRA.

A reference is one line of text, the same wherever a model is chosen (Compare's tuned side, each
side of the blind A/B test, the HTTP API):

    base                              the base model (of the other side's LoRA)
    run:3                             run 3's latest checkpoint (also "run 3", "#3")
    run:3:checkpoints/iter_000020     one of its checkpoints
    docs/readme-run/lora              a LoRA folder (pytorch_lora_weights.safetensors) in the allowed folders
    someone/g2rpo-lora                a LoRA on the Hugging Face Hub, where the Hub is reachable

`resolve` turns a reference into a Side: what the sampler loads and the settings the LoRA was
trained with (model, sampling, rewards, prompts), or raises ChoiceError with a one-line reason.
Nothing is loaded here (the UI process never imports torch). A LoRA folder's settings come from a
config.yaml in it or in the folder above (where exports and the README's runs keep it); without
one, the built-in model's. A Hub LoRA's base model comes from its model card.
"""
from __future__ import annotations

import html
import re
from dataclasses import dataclass
from pathlib import Path

import gradio as gr

from engine.training.hub import HUB_ID, check_source, is_local
from app.redact import redact
from engine.config.limits import excerpt, limit

LORA_WEIGHTS = "pytorch_lora_weights.safetensors"  # engine.training.checkpoint.LORA_WEIGHTS (no torch import here)
REPOSITORY = Path(__file__).resolve().parent.parent
RUN = re.compile(r"^(?:run[: ]\s*|#)(\d{1,18})(?::(.+))?$", re.IGNORECASE)
BASE = "base"
BUILTIN_REWARDS = ["adherence", "preference", "background", "colour", "shape", "count"]
PIPELINE_FAMILIES = {"flux": "black-forest-labs/flux", "sd3": "stabilityai/stable-diffusion-3"}  # Hub id prefixes
CONFIG_BYTES = 1_000_000  # a config.yaml beside a LoRA is a few KB


class ChoiceError(ValueError):
    """A reference that names nothing Compare can draw with; the message is one line."""


@dataclass(frozen=True)
class Side:
    reference: str  # normalised: "base", "run:3:checkpoints/iter_000020", a folder as given, a Hub id
    label: str  # how the page names it
    adapter: str | None  # what the sampler loads: an absolute folder or a Hub id; None: the base model
    settings: dict | None  # model, sampling, rewards, sample_prompts, eval_prompts; None for the base
    run_id: int | None = None


def committed_loras() -> list[Path]:
    """The repository's docs/*/lora folders: the README's LoRAs, always allowed (read-only)."""
    return sorted(p for p in (REPOSITORY / "docs").glob("*/lora") if (p / LORA_WEIGHTS).is_file())


def lora_folders() -> list[Path]:
    """Where a LoRA folder may be read from: the folders submitted configs may read (jobs/settings.py)
    and the committed LoRAs."""
    from jobs import settings

    return [*settings.config_file_dirs(), *committed_loras()]


def shown_path(folder: Path) -> str:
    """A folder as the page offers it: relative to the working directory when inside it."""
    try:
        return str(folder.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(folder)


def resolve(reference) -> Side:
    text = str(reference if reference is not None else "").strip()
    if not text:
        raise ChoiceError("Choose a model: base, a run (run:3), a LoRA folder or a Hub id (owner/name).")
    if len(text) > 500:
        raise ChoiceError(f"A model reference is at most 500 characters, got {len(text):,}.")
    if text.lower() == BASE:
        return Side(BASE, "base model", None, None)
    if found := RUN.match(text):
        return _run_side(int(found[1]), found[2])
    if is_local(text):
        return _folder_side(text)
    return _hub_side(text)


def _run_side(run_id: int, checkpoint: str | None) -> Side:
    from jobs import api

    try:
        run = api.get_run(run_id)
    except api.JobError as err:
        raise ChoiceError(str(err)) from None
    if not run["checkpoints"]:
        raise ChoiceError(f"Run #{run_id} has no checkpoint yet: compare once it has saved one.")
    chosen = (checkpoint or "").strip() or run["checkpoints"][-1]
    if chosen not in run["checkpoints"]:
        raise ChoiceError(f"Run #{run_id} has no checkpoint {excerpt(chosen)}; it has "
                          f"{', '.join(run['checkpoints'][-5:])}.")
    name = Path(chosen).name + (" (latest)" if chosen == run["checkpoints"][-1] else "")
    return Side(f"run:{run_id}:{chosen}", f"run #{run_id} · {name}", str(Path(run["folder"]) / chosen),
                settings_of(run["config"]), run_id)


def _folder_side(text: str) -> Side:
    from engine.config.files import inside

    folder, allowed = Path(text).expanduser(), lora_folders()
    if not inside(text, allowed):  # said without looking at whether the path exists
        raise ChoiceError(f"LoRA {excerpt(text)} is outside the folders Compare reads LoRAs from "
                          f"({', '.join(shown_path(f) for f in allowed)}): put it in one of them "
                          "(the data folder's models/, or a folder in G2RPO_FILE_DIRS).")
    if not (folder / LORA_WEIGHTS).is_file():
        raise ChoiceError(f"LoRA {excerpt(text)}: no {LORA_WEIGHTS} in that folder (a LoRA exported or "
                          "saved by G²RPO studio has one).")
    config = next((c for c in (folder / "config.yaml", folder.parent / "config.yaml") if c.is_file()), None)
    settings = builtin_settings() if config is None else _config_settings(config, text)
    return Side(text, f"LoRA {text}", str(folder.resolve()), settings)


def _hub_side(text: str) -> Side:
    if not HUB_ID.match(text):
        raise ChoiceError(f"{excerpt(text)} is neither base, a run (run:3), a LoRA folder nor a Hub id (owner/name).")
    problem = check_source(text, LORA_WEIGHTS, "LoRA")
    if problem:
        raise ChoiceError(problem)
    model = model_from_card(_hub_card(text))
    if model is None:
        raise ChoiceError(f"Hub LoRA {text!r}: its model card names no base model Compare can draw with "
                          "(the built-in model, FLUX or SD3); a LoRA pushed by G²RPO studio names one.")
    settings = builtin_settings() if model["name"] == "builtin" else {**builtin_settings(), "model": model,
                                                                       "rewards": [], "eval_prompts": None,
                                                                       "sample_prompts": []}
    return Side(text, f"Hub LoRA {text}", text, settings)


def _hub_card(repo: str) -> dict:
    """The card's metadata (the YAML at the top of README.md); {} when the LoRA has no card."""
    from huggingface_hub import ModelCard

    try:
        return ModelCard.load(repo).data.to_dict()
    except Exception:  # no README.md, or unreadable: the caller says what is missing
        return {}


def model_from_card(card: dict) -> dict | None:
    """The model section for a Hub LoRA's card: FLUX or SD3 by tag or base_model; a G²RPO studio
    LoRA of the built-in model (tagged g2rpo-studio, no pipeline tag); else None."""
    tags = {str(t).lower() for t in card.get("tags") or []}
    base = card.get("base_model")
    base = str(base[0] if isinstance(base, list) and base else base or "")
    for name, family in PIPELINE_FAMILIES.items():
        if name in tags or base.lower().startswith(family):
            return {"name": name, "path": base if HUB_ID.match(base) else None}
    if "g2rpo-studio" in tags and not base:
        return {"name": "builtin"}
    return None


def builtin_settings() -> dict:
    """A LoRA folder without a config: the built-in model, its default sampling, every built-in reward."""
    return {"model": {"name": "builtin"}, "sampling": {"steps": 16, "shift": 3.0}, "rewards": list(BUILTIN_REWARDS),
            "sample_prompts": [], "eval_prompts": None}


def settings_of(config: dict) -> dict:
    """What Compare needs of a (resolved) run config: model, sampling, every reward it scored, prompts."""
    rewards = [r["name"] for r in config.get("rewards") or []] + list(config.get("eval_rewards") or [])
    return {"model": dict(config["model"]), "sampling": dict(config["sampling"]),
            "rewards": list(dict.fromkeys(rewards)), "sample_prompts": list(config.get("sample_prompts") or []),
            "eval_prompts": config.get("eval_prompts")}


def _config_settings(path: Path, shown: str) -> dict:
    """The settings in a config.yaml beside a LoRA, checked as a submitted config's would be (types,
    bounds, a known model whose local files lie in the allowed folders, known rewards)."""
    import yaml

    from engine.config import ConfigError, parse_config
    from engine.config.files import local_source_refused
    from engine.models import model_problems
    from engine.rewards import reward_problems

    where = f"LoRA {excerpt(shown)}: its {path.name}"
    try:
        if path.stat().st_size > CONFIG_BYTES:
            raise ChoiceError(f"{where} is larger than {CONFIG_BYTES:,} bytes")
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
        if not isinstance(data, dict):
            raise ChoiceError(f"{where} is not a mapping of settings")
        keep = ("model", "sampling", "rewards", "eval_rewards", "sample_prompts", "eval_prompts")
        cfg = parse_config({k: data[k] for k in keep if k in data})
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as err:
        raise ChoiceError(f"{where} cannot be read ({type(err).__name__})") from None
    except ConfigError as err:
        raise ChoiceError(f"{where} is not a valid config: {str(err).splitlines()[0][:200]}") from None
    refusal = cfg.model.path and local_source_refused("model.path", cfg.model.path, lora_folders())
    problems = [refusal] if refusal else model_problems(cfg.model)
    problems += [p for name in cfg.evaluation_rewards() for p in reward_problems(name)]
    if problems:
        raise ChoiceError(f"{where}: {problems[0]}")
    return settings_of({"model": vars(cfg.model), "sampling": vars(cfg.sampling),
                        "rewards": [{"name": r.name} for r in cfg.rewards], "eval_rewards": cfg.eval_rewards,
                        "sample_prompts": cfg.sample_prompts, "eval_prompts": cfg.eval_prompts})


def same_model(a: dict, b: dict) -> bool:
    keys = ("name", "path", "resolution")
    return all(a.get(k) == b.get(k) for k in keys)


def model_name(model: dict) -> str:
    return model["name"] + (f" ({model['path']})" if model.get("path") else "")


def shared_settings(*sides: Side) -> dict:
    """The settings the sides are drawn with: the first LoRA's (the base takes its model). Refused:
    all sides the base model, or LoRAs of different models."""
    tuned = [s for s in sides if s.settings is not None]
    if not tuned:
        raise ChoiceError("Both sides are the base model: choose a run's checkpoint or a LoRA for one of them.")
    first = tuned[0]
    for other in tuned[1:]:
        if not same_model(first.settings["model"], other.settings["model"]):
            raise ChoiceError(f"{first.label} is a LoRA of {model_name(first.settings['model'])} and {other.label} "
                              f"of {model_name(other.settings['model'])}: compare LoRAs of one model.")
    return first.settings


def choices() -> list[tuple[str, str]]:
    """What a model dropdown offers (each side may also be typed: a folder or a Hub id): the base
    model, each run's latest checkpoint, the committed LoRAs."""
    from jobs import api

    runs = [(f"run #{r['id']} {r['name'] or r['algorithm']} · latest checkpoint", f"run:{r['id']}")
            for r in api.list_runs() if r.get("last_checkpoint")]
    loras = [(f"LoRA {shown_path(p)}", shown_path(p)) for p in committed_loras()]
    return [("base model", BASE), *runs, *loras]


def prompt_lines(text: str, model: str, at_most: int) -> list[str]:
    """The non-empty lines of `text`, each one the model can encode (gr.Error otherwise)."""
    from engine.config import ModelConfig
    from engine.models import check_model_prompts

    prompts = [line.strip() for line in str(text or "").splitlines() if line.strip()]
    if not prompts:
        raise gr.Error("Enter a prompt.")
    if len(prompts) > at_most:
        raise gr.Error(f"At most {at_most} prompts at once, got {len(prompts):,}.")
    if any(len(p) > limit("prompt_chars") for p in prompts):
        raise gr.Error(f"A prompt is longer than {limit('prompt_chars'):,} characters.")
    try:
        check_model_prompts(ModelConfig(model), prompts)
    except ValueError as err:
        raise gr.Error(html.escape(redact(str(err)), quote=False)) from None
    return prompts
