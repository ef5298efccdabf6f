"""The launch form: presets, the fields a researcher tunes, and their mapping to a config.

A preset is a config file; the form shows its values and the user edits them. Submitting turns the
form back into a config dict (the preset's, with the form's values written over it) and validates it
as the jobs API does (`jobs.api.check_config`: the CLI's rules, plus where files may come from and
the estimate of memory and time), so the UI accepts what the API accepts.
Each problem is shown at the field it names. Nothing here imports torch.
"""
from __future__ import annotations

import copy
import re
from dataclasses import dataclass
from pathlib import Path

from app.numbers import number, shown
from engine.config import ConfigError, parse_config, read_yaml
from engine.config.limits import excerpt, limit

CONFIGS = Path(__file__).resolve().parent.parent / "configs"
PRESETS = {  # label -> config file
    "G²RPO · built-in model": "g2rpo.yaml",
    "E-GRPO · built-in model": "egrpo.yaml",
    "DanceGRPO · built-in model": "dancegrpo.yaml",
    "Flow-GRPO · built-in model": "flowgrpo.yaml",
    "MixGRPO · built-in model": "mixgrpo.yaml",
    "DiffusionNFT · built-in model": "diffusionnft.yaml",
    "G²RPO · FLUX.1-dev LoRA · HPS & CLIP (one 80 GB GPU)": "paper/flux-hps-clip-lora.yaml",
    "E-GRPO · FLUX.1-dev LoRA · HPS (one 80 GB GPU)": "paper/flux-egrpo-hps-lora.yaml",
    "DiffusionNFT · FLUX.1-dev LoRA · HPS & CLIP (one 80 GB GPU)": "paper/flux-diffusionnft-lora.yaml",
}


@dataclass(frozen=True)
class Field:
    key: str  # the form's name for it
    path: str  # where it lives in the config
    label: str
    kind: str  # int | float | ints | rewards | lines | choice | text
    info: str = ""
    advanced: bool = False
    optional: bool = False  # empty means "not set" (the config's default)


FIELDS = (
    Field("algorithm", "algorithm.name", "Algorithm", "choice"),
    Field("model", "model.name", "Model", "choice", "built-in: the 32x32 shapes model that ships with the code"),
    Field("model_path", "model.path", "Model weights (hub id or folder)", "text",
          "flux / sd3 only; empty: FLUX.1-dev or SD3.5-Medium from the hub", optional=True),
    Field("rewards", "rewards", "Rewards (name=weight, ...)", "rewards",
          "training rewards with their weights; each gets its own group advantage"),
    Field("branch_steps", "algorithm.branch_steps", "K: branch steps", "ints", "G²RPO: the steps k where the SDE branches"),
    Field("granularities", "algorithm.granularities", "Λ: granularities", "ints", "G²RPO: denoising strides λ"),
    Field("merge_steps", "algorithm.merge_steps", "Merged spans", "ints",
          "E-GRPO: grid steps each k's SDE step spans, in K's order (empty: 1 each)"),
    Field("group_size", "algorithm.group_size", "G: group size", "int"),
    Field("eta", "algorithm.eta", "η: SDE noise", "float"),
    Field("learning_rate", "train.learning_rate", "Learning rate", "float"),
    Field("lora_rank", "lora.rank", "LoRA rank", "int"),
    Field("iterations", "train.iterations", "Iterations", "int"),
    Field("seed", "train.seed", "Seed", "int"),
    Field("prompts", "prompts", "Training prompts (one per line)", "lines",
          "empty: the built-in world's 351 training prompts"),
    Field("steps", "sampling.steps", "Denoising steps", "int", advanced=True),
    Field("resolution", "model.resolution", "Resolution (pixels)", "int", "flux / sd3 only; empty: 720 FLUX, 512 SD3",
          advanced=True, optional=True),
    Field("guidance", "model.guidance", "Guidance", "float", "FLUX: distilled guidance (3.5); SD3: CFG scale (4.5)",
          advanced=True, optional=True),
    Field("clip_range", "algorithm.clip_range", "Clip range", "float", advanced=True),
    Field("kl_beta", "algorithm.kl_beta", "KL weight β", "float", advanced=True),
    Field("prompts_per_iteration", "train.prompts_per_iteration", "Prompts per iteration", "int", advanced=True),
    Field("eval_every", "train.eval_every", "Held-out evaluation every (0: never)", "int", advanced=True),
    Field("sample_every", "train.sample_every", "Samples every", "int", advanced=True),
    Field("checkpoint_every", "train.checkpoint_every", "Checkpoint every", "int", advanced=True),
    Field("sample_prompts", "sample_prompts", "Sample prompts (one per line)", "lines", advanced=True),
)
KEYS = [f.key for f in FIELDS]
# Settings only some algorithms read: the form greys them out under the others (their values are
# kept, and ignored). DiffusionNFT trains on ODE samples: no SDE noise η, no ratio to clip.
ONLY_FOR = {"branch_steps": ("g2rpo", "egrpo"), "granularities": ("g2rpo", "egrpo"), "merge_steps": ("egrpo",),
            "eta": ("g2rpo", "egrpo", "dancegrpo", "flowgrpo", "mixgrpo"),
            "clip_range": ("g2rpo", "egrpo", "dancegrpo", "flowgrpo", "mixgrpo")}


def applies(key: str, algorithm: str) -> bool:
    """Whether the algorithm reads the form's field `key` (an unknown algorithm: every field, so
    the config's check names the problem)."""
    from engine.config import ALGORITHMS

    return key not in ONLY_FOR or algorithm not in ALGORITHMS or algorithm in ONLY_FOR[key]


SAVED = "★ "  # the label of a preset saved by a user: "★ my preset"
RUN_LABEL = re.compile(r"run #(\d{1,18})")  # a run's config, cloned into the form: "run #7"
INTERVALS = ("checkpoint_every", "sample_every")  # fitted to the iterations unless the user sets them


def run_label(run_id: int) -> str:
    return f"run #{run_id}"


def preset_labels() -> list[str]:
    """The Preset list: the built-in presets, then the saved ones."""
    from jobs import api

    return [*PRESETS, *(SAVED + name for name in api.list_presets())]


def known(label) -> bool:
    """Whether the form can start from `label`: a built-in preset, a saved one or a run's config."""
    try:
        preset_config(label)
    except ConfigError:
        return False
    return True


def preset_config(label: str) -> dict:
    """The config a label starts the form from: a built-in preset's file, a saved preset (SAVED +
    name) or a run's stored config (run_label). ConfigError for anything else."""
    if isinstance(label, str) and label in PRESETS:
        return read_yaml(CONFIGS / PRESETS[label])
    from jobs import api

    found = RUN_LABEL.fullmatch(label) if isinstance(label, str) else None
    try:
        if found:
            return copy.deepcopy(api.get_run(int(found[1]), checkpoints=False)["config"])
        if isinstance(label, str) and label.startswith(SAVED):
            return copy.deepcopy(api.get_preset(label.removeprefix(SAVED)))
    except api.JobError as err:
        raise ConfigError(f"unknown preset: {err}") from None
    raise ConfigError(f"unknown preset {excerpt(label)}; known: {', '.join(PRESETS)}, a saved preset ({SAVED}name) "
                      "or a run's config (run #ID)")


def _get(config: dict, path: str):
    node = config
    for part in path.split("."):
        if not isinstance(node, dict) or part not in node:
            return None
        node = node[part]
    return node


def _set(config: dict, path: str, value) -> None:
    *parents, last = path.split(".")
    node = config
    for part in parents:
        node = node.setdefault(part, {})
    node[last] = value


def preset_values(label: str) -> dict:
    """The form's values for a preset: its file's settings, the defaults where it says nothing."""
    resolved = parse_config(preset_config(label)).to_dict()
    values = {}
    for f in FIELDS:
        value = _get(resolved, f.path)
        if f.kind == "ints":
            value = ", ".join(map(str, value))
        elif f.kind == "rewards":
            value = ", ".join(f"{r['name']}={r['weight']:g}" for r in value)
        elif f.kind == "lines":  # unset training prompts stay an empty box: the model's default set
            value = "\n".join(value or [])
        elif f.optional:  # shown in a text box: empty means the default
            value = "" if value is None else str(value)
        values[f.key] = value
    return values


def _parse(f: Field, raw):
    """A form value as the config wants it, or ValueError with a message for the field."""
    if f.optional and (raw is None or (isinstance(raw, str) and not raw.strip())):
        return None
    if f.kind in ("int", "float"):
        if raw is None or (isinstance(raw, str) and not raw.strip()):
            raise ValueError("a number is needed")
        try:
            value = number(raw)  # ints stay exact, however large: the config's bounds name the limit
        except ValueError as needed:
            raise ValueError(f"{needed} is needed, got {shown(raw)}") from None
        if f.kind == "int":
            if not isinstance(value, int):
                raise ValueError(f"a whole number is needed, got {shown(raw)}")
            return value
        try:
            return float(value)
        except OverflowError:  # an int past the largest float
            raise ValueError(f"a finite number is needed, got {shown(raw)}") from None
    if f.kind == "ints":
        items = [s for s in re.split(r"[,\s]+", str(raw or "").strip()) if s]
        try:
            return [int(s) for s in items]
        except ValueError:
            raise ValueError(f"whole numbers separated by commas, got {raw!r}") from None
    if f.kind == "rewards":
        rewards = []
        for item in (s.strip() for s in str(raw or "").split(",")):
            if not item:
                continue
            name, _, weight = item.partition("=")
            try:
                rewards.append({"name": name.strip(), "weight": float(weight) if weight.strip() else 1.0})
            except ValueError:
                raise ValueError(f"name=weight, got {item!r}") from None
        return rewards
    if f.kind == "lines":
        lines = [line.strip() for line in str(raw or "").splitlines() if line.strip()]
        too_long = [line for line in lines if len(line) > limit("prompt_chars")]
        if too_long:
            raise ValueError(f"a prompt of {len(too_long[0]):,} characters; at most {limit('prompt_chars'):,} "
                             "(G2RPO_MAX_PROMPT_CHARS)")
        return lines or None
    return raw


def default_name(config: dict) -> str:
    """A run name that tells runs apart when the user gives none: the algorithm and the settings a
    sweep varies (G, K and Λ for G²RPO, learning rate, seed), e.g. "g2rpo G12 K8 Λ3 lr 0.0001 seed 0"."""
    a, t = config.get("algorithm") or {}, config.get("train") or {}
    parts = [str(a.get("name", "g2rpo"))]
    if a.get("group_size") is not None:
        parts.append(f"G{a['group_size']}")
    if a.get("name", "g2rpo") in ("g2rpo", "egrpo"):
        parts += [f"K{len(a[key])}" if key == "branch_steps" else f"Λ{len(a[key])}"
                  for key in ("branch_steps", "granularities") if isinstance(a.get(key), list)]
    if t.get("learning_rate") is not None:
        parts.append(f"lr {t['learning_rate']:g}")
    if t.get("seed") is not None:
        parts.append(f"seed {t['seed']}")
    return " ".join(parts)


def form_to_config(preset: str, values: dict) -> tuple[dict, dict[str, str]]:
    """(config dict, {field key: message}) from the form. The config is only valid if no messages."""
    config = copy.deepcopy(preset_config(preset))
    errors = {}
    for f in FIELDS:
        try:
            value = _parse(f, values.get(f.key))
        except ValueError as err:
            errors[f.key] = str(err)
            continue
        if f.optional and value is None:
            _set(config, f.path, None)
            continue
        if f.kind == "lines" and value is None:
            if f.path == "sample_prompts":
                errors[f.key] = "at least one prompt is needed"
            else:  # no training prompts: the model's default set
                config.pop(f.path, None)
            continue
        _set(config, f.path, value)
    return config, errors


def fitted_interval(every: int, preset_iterations: int, iterations: int) -> int:
    """A checkpoint or sample interval scaled to a run of `iterations` from the preset's (its
    `every` over `preset_iterations`), so a shorter run keeps as many mid-run points as the preset
    has, and has at least one (an interval of 30 left a 20-iteration run with none). Never longer
    than the preset's."""
    if iterations < 2:
        return every
    scaled = round(every * iterations / max(preset_iterations, 1)) if iterations < preset_iterations else every
    return max(1, min(scaled, every, iterations - 1))


def fitted_intervals(preset: str, iterations) -> dict:
    """{interval key: value} for a run of `iterations` from `preset` (the preset's values when
    `iterations` is not a whole number yet)."""
    base = preset_values(preset)
    try:
        n = int(iterations)
    except (TypeError, ValueError):
        return {key: base[key] for key in INTERVALS}
    if n != iterations:
        return {key: base[key] for key in INTERVALS}
    return {key: fitted_interval(base[key], base["iterations"], n) for key in INTERVALS}


def complete(preset: str, values: dict) -> dict:
    """The form's values with the ones left out (None) filled as the form would be: the preset's
    value, and checkpoint and sample intervals fitted to the iterations (what the API's callers
    leave empty keeps the preset they named)."""
    base = preset_values(preset)
    filled = {key: base[key] if values.get(key) is None else values[key] for key in KEYS}
    fitted = fitted_intervals(preset, filled["iterations"])
    return {**filled, **{key: fitted[key] for key in INTERVALS if values.get(key) is None}}


def _problems(err: ConfigError) -> dict[str, str]:
    """{field key or "": message} from a ConfigError's problems."""
    errors: dict[str, str] = {}
    by_path = {f.path: f.key for f in FIELDS}
    for path, messages in err.by_field().items():
        key = by_path.get(path) or by_path.get(path.split(".")[0]) or ""
        errors[key] = "; ".join(filter(None, [errors.get(key), *messages]))
    return errors


def check(preset: str, values: dict) -> tuple[dict | None, dict[str, str]]:
    """Validate the form as the jobs API does (the CLI's rules, files only from the documented
    folders, the estimate against this machine): (resolved config, {}) or (None, {field key or "": message}).

    Every problem in one round: the config's checks come in stages (form values, types and bounds,
    settings that depend on each other, the estimate) and each stops at its first failing stage, so
    the fields found wrong are set back to the preset's values and the rest checked again until
    nothing new is found."""
    from jobs import api

    base = preset_values(preset)
    _, errors = form_to_config(preset, values)
    for _ in range(len(FIELDS) + 1):  # each round adds a field, or stops
        config, _ = form_to_config(preset, {**values, **{key: base[key] for key in errors if key in base}})
        try:
            resolved = api.check_config(config)
        except ConfigError as err:
            new = {key: message for key, message in _problems(err).items() if key not in errors}
            errors.update(new)
            if not set(new) - {""}:  # nothing new that a reset could get past
                break
            continue
        return (None, errors) if errors else (resolved, {})
    return None, errors
