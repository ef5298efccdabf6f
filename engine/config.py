"""Typed run configuration: YAML plus `key=value` overrides, validated before any work starts.

Every field is a typed dataclass attribute; an unknown key, a wrong type or an impossible value is a
`ConfigError` listing every problem, raised before a model is built or a file written.
"""
from __future__ import annotations

import copy
import dataclasses
import re
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path

import yaml

ALGORITHMS = ("g2rpo", "dancegrpo", "flowgrpo", "mixgrpo")
# Per-algorithm defaults for the settings that differ between the methods (see the spec).
ALGORITHM_DEFAULTS = {
    "g2rpo": dict(eta=0.7, noise_form="flow", shared_noise=True),
    "dancegrpo": dict(eta=0.3, noise_form="dance", shared_noise=True),
    "flowgrpo": dict(eta=0.7, noise_form="flow", shared_noise=False),
    "mixgrpo": dict(eta=0.7, noise_form="flow", shared_noise=True),
}


MAX_CACHED_PROMPTS = 2000  # model.free_text_encoders keeps every prompt's embedding in memory


class ConfigError(ValueError):
    """An invalid configuration; the message lists every problem found, `problems` one each
    ("algorithm.granularities: Lambda must not be empty"), so a form can show each at its field."""

    def __init__(self, message: str, problems: list[str] | None = None):
        super().__init__(message)
        self.problems = problems or [message]

    def by_field(self) -> dict[str, list[str]]:
        """Problems keyed by the config path they name ("train.learning_rate", "prompts"; list
        indices dropped), or "" when a problem names none."""
        fields: dict[str, list[str]] = {}
        for problem in self.problems:
            match = re.match(r"([a-z_]+(?:\[\d+\])?(?:\.[a-z_]+(?:\[\d+\])?)*): (.*)", problem, re.S)
            key, text = (re.sub(r"\[\d+\]", "", match[1]), match[2]) if match else ("", problem)
            fields.setdefault(key, []).append(text)
        return fields


@dataclass
class ModelConfig:
    name: str = "builtin"  # builtin | tiny-flux (random weights, tests) | flux | sd3
    path: str | None = None  # flux/sd3: hub id or local pipeline folder (None: the adapter's default)
    resolution: int | None = None  # flux/sd3: image side in pixels (None: 720 FLUX, 512 SD3)
    guidance: float | None = None  # FLUX: distilled guidance (3.5); SD3: CFG scale (4.5; 1 = no CFG)
    dtype: str = "auto"  # frozen weights: auto = bfloat16 on a GPU, float32 on the CPU
    gradient_checkpointing: bool = False  # trade compute for activation memory
    max_sequence_length: int = 512  # T5 tokens per prompt (flux/sd3)
    free_text_encoders: bool = False  # encode every prompt once at start, then free the text encoders


@dataclass
class SamplingConfig:
    steps: int = 16
    shift: float = 3.0


@dataclass
class AlgorithmConfig:
    name: str = "g2rpo"
    group_size: int = 12
    eta: float | None = None  # None: the algorithm's default (0.7; DanceGRPO 0.3)
    noise_form: str | None = None  # "flow" sigma = eta sqrt(s/(1-s)) | "dance" constant eta
    shared_noise: bool | None = None  # members of a prompt share the initial noise
    clip_range: float = 1e-4  # small because log-probs are element means
    adv_clamp: float = 5.0
    kl_beta: float = 0.0  # KL to the adapter-disabled reference (LoRA only)
    branch_steps: list[int] = field(default_factory=lambda: list(range(8)))  # G²RPO's K
    granularities: list[int] = field(default_factory=lambda: [1, 2, 3])  # G²RPO's Lambda
    # G²RPO: how a completion whose strides stop short of s = 0 ends (engine.sampling.completion_schedule):
    # "append_zero" steps on to s = 0 from the last strided point; "authors" returns x0_hat predicted at
    # the point before it, as the authors' run_ode_sample_step does.
    completion: str = "append_zero"
    train_fraction: float = 0.6  # DanceGRPO: share of steps trained per iteration
    global_std: bool = False  # Flow-GRPO: normalise by the batch's std, not the group's
    window_size: int = 4  # MixGRPO's SDE window
    window_shift_every: int = 25  # MixGRPO: iterations before the window moves by one step


@dataclass
class LoraConfig:
    enabled: bool = True  # False: full fine-tuning of the transformer
    rank: int = 8
    alpha: float = 16.0
    target_modules: list[str] | None = None  # None: the model adapter's default


@dataclass
class TrainConfig:
    iterations: int = 100
    prompts_per_iteration: int = 1  # per process; each prompt is a whole group
    learning_rate: float = 1e-4
    betas: list[float] = field(default_factory=lambda: [0.9, 0.999])
    weight_decay: float = 1e-4
    max_grad_norm: float = 1.0
    optimizer_step: str = "per_step"  # "per_step" (one per trained step k) | "per_iteration"
    micro_batch: int = 64  # most samples per model call; bounds memory, not the result
    mixed_precision: str = "no"  # "no" | "bf16" | "fp16"
    seed: int = 0
    checkpoint_every: int = 10
    sample_every: int = 10
    eval_every: int = 0  # score eval_prompts with every reward this often (0: never); base model first
    # Rows of the fixed probe batch on which every iteration records how far the policy moved
    # (relative change of the velocity against the base model); 0 records nothing.
    movement_probe: int = 8


@dataclass
class RewardConfig:
    name: str
    weight: float = 1.0
    model: str | None = None  # real reward models: hub id or local path (None: the published weights)


@dataclass
class Config:
    model: ModelConfig = field(default_factory=ModelConfig)
    sampling: SamplingConfig = field(default_factory=SamplingConfig)
    algorithm: AlgorithmConfig = field(default_factory=AlgorithmConfig)
    lora: LoraConfig = field(default_factory=LoraConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    rewards: list[RewardConfig] = field(default_factory=lambda: [RewardConfig("preference")])
    prompts: list[str] | None = None  # None: prompts_file, else the shapes world's training prompts
    prompts_file: str | None = None  # training prompts, one per line (e.g. HPDv2's train prompts)
    sample_prompts: list[str] = field(default_factory=lambda: list(DEFAULT_SAMPLE_PROMPTS))
    eval_prompts: list[str] | None = None  # None: eval_prompts_file, else the shapes world's held-out prompts
    eval_prompts_file: str | None = None  # held-out prompts, one per line (e.g. HPDv2's 400 test prompts)
    eval_rewards: list[str] = field(default_factory=list)  # scored at evaluation besides the training rewards

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def training_prompts(self) -> list[str]:
        from engine.world import train_prompts

        return _prompts(self.prompts, self.prompts_file, train_prompts)

    def evaluation_prompts(self) -> list[str]:
        from engine.world import eval_prompts

        return _prompts(self.eval_prompts, self.eval_prompts_file, eval_prompts)

    def evaluation_rewards(self) -> list[str]:
        """The training rewards, then the extra evaluation rewards (each once)."""
        return list(dict.fromkeys([r.name for r in self.rewards] + list(self.eval_rewards)))


def _prompts(inline: list[str] | None, path: str | None, world) -> list[str]:
    """Inline prompts, else the file's, else the shapes world's set."""
    if inline is not None:
        return inline
    return read_prompts(path) if path is not None else world()


def read_prompts(path: str | Path) -> list[str]:
    """One prompt per line; blank lines and lines starting with # are skipped."""
    lines = Path(path).expanduser().read_text(encoding="utf-8").splitlines()
    return [line.strip() for line in lines if line.strip() and not line.lstrip().startswith("#")]


# Two training prompts and two held-out ones, sampled from fixed noise as the run goes.
DEFAULT_SAMPLE_PROMPTS = (
    "two red circles on a black background",
    "a large blue square on a white background",
    "a red triangle on a gray background",
    "three blue circles on a black background",
)


# ---------------------------------------------------------------- parsing and type checking


def _check_type(value, hint, path: str):
    """Return value converted to `hint` (int -> float only), or raise ConfigError."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        return _check_type(value, next(a for a in args if a is not type(None)), path)
    if origin is list:
        if not isinstance(value, list):
            raise ConfigError(f"{path}: expected a list, got {value!r}")
        return [_check_type(v, args[0], f"{path}[{i}]") for i, v in enumerate(value)]
    if dataclasses.is_dataclass(hint):
        return _from_dict(hint, value, path)
    if hint is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if hint is float and isinstance(value, str):  # YAML 1.1 reads 1e-3 (no dot) as a string
        try:
            return float(value)
        except ValueError:
            pass
    if hint in (int, float, str, bool) and (type(value) is not hint):
        raise ConfigError(f"{path}: expected {hint.__name__}, got {value!r}")
    return value


def _from_dict(cls, data, path: str):
    if not isinstance(data, dict):
        raise ConfigError(f"{path or 'config'}: expected a mapping, got {data!r}")
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - names)
    if unknown:
        raise ConfigError(f"unknown key(s) {', '.join(f'{path}.{k}'.lstrip('.') for k in unknown)}; "
                          f"known: {', '.join(sorted(names))}")
    kwargs = {k: _check_type(v, hints[k], f"{path}.{k}".lstrip(".")) for k, v in data.items()}
    try:
        return cls(**kwargs)
    except TypeError as err:  # a required field is missing
        raise ConfigError(f"{path or 'config'}: {err}") from None


def apply_override(data: dict, assignment: str) -> None:
    """Apply `a.b.c=value` (value parsed as YAML) to a nested dict in place."""
    if "=" not in assignment:
        raise ConfigError(f"override {assignment!r} is not key=value")
    key, raw = assignment.split("=", 1)
    parts = key.strip().split(".")
    node = data
    for part in parts[:-1]:
        node = node.setdefault(part, {})
        if not isinstance(node, dict):
            raise ConfigError(f"override {key!r}: {part!r} is not a section")
    try:
        node[parts[-1]] = yaml.safe_load(raw)
    except yaml.YAMLError as err:
        raise ConfigError(f"override {key!r}: cannot parse {raw!r}: {err}") from None


def load_config(path: str | Path | dict | None = None, overrides: list[str] = ()) -> Config:
    """Read YAML (or a dict, or defaults), apply overrides, type-check, resolve defaults and validate."""
    data = {}
    if isinstance(path, dict):
        data = copy.deepcopy(path)
    elif path is not None:
        try:
            data = yaml.safe_load(Path(path).read_text()) or {}
        except (OSError, yaml.YAMLError) as err:
            raise ConfigError(f"cannot read config {path}: {err}") from None
    for assignment in overrides:
        apply_override(data, assignment)
    return validate(resolve(_from_dict(Config, data, "")))


def config_from_dict(data: dict) -> Config:
    return validate(parse_config(data))


def parse_config(data: dict) -> Config:
    """Typed and with defaults resolved, but not validated: for showing a config (a preset whose
    model is not downloaded yet still fills the form; submitting it validates)."""
    return resolve(_from_dict(Config, copy.deepcopy(data), ""))


def resolve(cfg: Config) -> Config:
    """Fill the algorithm-dependent defaults (left as None) so the saved config is explicit."""
    defaults = ALGORITHM_DEFAULTS.get(cfg.algorithm.name, {})
    for key, value in defaults.items():
        if getattr(cfg.algorithm, key) is None:
            setattr(cfg.algorithm, key, value)
    return cfg


# ---------------------------------------------------------------- validation


def validate(cfg: Config) -> Config:
    from engine.models import check_model_prompts, model_names, model_problems
    from engine.rewards.base import reward_problems

    errors: list[str] = []

    def need(ok: bool, message: str):
        if not ok:
            errors.append(message)

    a, t, s, lora = cfg.algorithm, cfg.train, cfg.sampling, cfg.lora
    errors.extend(model_problems(cfg.model))
    need(a.name in ALGORITHMS, f"algorithm.name: unknown algorithm {a.name!r}; known: {', '.join(ALGORITHMS)}")
    need(s.steps >= 2, f"sampling.steps: need at least 2 steps, got {s.steps}")
    need(s.shift > 0, f"sampling.shift: must be > 0, got {s.shift}")
    need(a.group_size >= 2, f"algorithm.group_size: a group needs at least 2 members, got {a.group_size}")
    need(a.eta is not None and a.eta > 0, f"algorithm.eta: must be > 0 (the SDE step needs noise), got {a.eta}")
    need(a.noise_form in ("flow", "dance"), f"algorithm.noise_form: 'flow' or 'dance', got {a.noise_form!r}")
    need(a.clip_range > 0, f"algorithm.clip_range: must be > 0, got {a.clip_range}")
    need(a.adv_clamp > 0, f"algorithm.adv_clamp: must be > 0, got {a.adv_clamp}")
    need(a.kl_beta >= 0, f"algorithm.kl_beta: must be >= 0, got {a.kl_beta}")
    need(not (a.kl_beta > 0 and not lora.enabled),
         "algorithm.kl_beta: the KL reference is the adapter-disabled model, so it needs lora.enabled")
    if a.name == "g2rpo":
        need(len(a.branch_steps) > 0, "algorithm.branch_steps: K must not be empty")
        need(len(set(a.branch_steps)) == len(a.branch_steps), f"algorithm.branch_steps: repeated steps in {a.branch_steps}")
        bad = [k for k in a.branch_steps if not 0 <= k < s.steps]
        need(not bad, f"algorithm.branch_steps: {bad} beyond the grid; steps are 0..{s.steps - 1} with sampling.steps={s.steps}")
        need(len(a.granularities) > 0, "algorithm.granularities: Lambda must not be empty")
        need(len(set(a.granularities)) == len(a.granularities), f"algorithm.granularities: repeated values in {a.granularities}")
        bad = [g for g in a.granularities if g < 1]
        need(not bad, f"algorithm.granularities: every granularity must be >= 1, got {bad}")
        need(a.completion in ("append_zero", "authors"),
             f"algorithm.completion: 'append_zero' or 'authors', got {a.completion!r}")
        if a.completion == "authors" and not bad:
            from engine.schedule import completion_schedule

            lost = [(k, g) for k in a.branch_steps for g in a.granularities
                    if 0 <= k < s.steps - 2 and k + 2 not in completion_schedule(k, g, s.steps, "authors")]
            need(not lost, f"algorithm.completion: with 'authors', (k, lambda) = {lost} would skip the fine step "
                 f"k+1 -> k+2 that every granularity shares; use 'append_zero' or smaller k or lambda")
    need(0 < a.train_fraction <= 1, f"algorithm.train_fraction: must be in (0, 1], got {a.train_fraction}")
    need(a.name != "mixgrpo" or 1 <= a.window_size <= s.steps - 1,
         f"algorithm.window_size: must be in 1..{s.steps - 1}, got {a.window_size}")
    need(a.window_shift_every >= 1, f"algorithm.window_shift_every: must be >= 1, got {a.window_shift_every}")
    need(lora.rank >= 1, f"lora.rank: must be >= 1, got {lora.rank}")
    need(lora.alpha > 0, f"lora.alpha: must be > 0, got {lora.alpha}")
    need(t.iterations >= 1, f"train.iterations: must be >= 1, got {t.iterations}")
    need(t.prompts_per_iteration >= 1, f"train.prompts_per_iteration: must be >= 1, got {t.prompts_per_iteration}")
    need(t.learning_rate > 0, f"train.learning_rate: must be > 0, got {t.learning_rate}")
    need(len(t.betas) == 2 and all(0 <= b < 1 for b in t.betas), f"train.betas: two values in [0, 1), got {t.betas}")
    need(t.weight_decay >= 0, f"train.weight_decay: must be >= 0, got {t.weight_decay}")
    need(t.max_grad_norm > 0, f"train.max_grad_norm: must be > 0, got {t.max_grad_norm}")
    need(t.optimizer_step in ("per_step", "per_iteration"), f"train.optimizer_step: 'per_step' or 'per_iteration', got {t.optimizer_step!r}")
    need(t.micro_batch >= 1, f"train.micro_batch: must be >= 1, got {t.micro_batch}")
    need(t.mixed_precision in ("no", "bf16", "fp16"), f"train.mixed_precision: 'no', 'bf16' or 'fp16', got {t.mixed_precision!r}")
    need(t.checkpoint_every >= 1, f"train.checkpoint_every: must be >= 1, got {t.checkpoint_every}")
    need(t.sample_every >= 1, f"train.sample_every: must be >= 1, got {t.sample_every}")
    need(t.eval_every >= 0, f"train.eval_every: must be >= 0 (0: no evaluation), got {t.eval_every}")
    need(t.movement_probe >= 0, f"train.movement_probe: must be >= 0 (0: not recorded), got {t.movement_probe}")
    need(len(cfg.rewards) > 0, "rewards: at least one reward model is needed")
    for i, r in enumerate(cfg.rewards):
        errors.extend(f"rewards[{i}].name: {problem}" for problem in reward_problems(r.name, r.model))
        need(r.weight > 0, f"rewards[{i}].weight: must be > 0, got {r.weight}")
    trained = {r.name for r in cfg.rewards}  # evaluation reuses these, with their own weights
    for i, name in enumerate(cfg.eval_rewards):
        if name not in trained:
            errors.extend(f"eval_rewards[{i}]: {problem}" for problem in reward_problems(name))
    need(cfg.prompts is None or len(cfg.prompts) > 0, "prompts: at least one training prompt is needed")
    need(cfg.prompts is None or cfg.prompts_file is None, "prompts_file: give prompts or prompts_file, not both")
    need(cfg.eval_prompts is None or cfg.eval_prompts_file is None,
         "eval_prompts_file: give eval_prompts or eval_prompts_file, not both")
    file_prompts = {}  # prompts read from files, checked by the model below like inline ones
    for key in ("prompts_file", "eval_prompts_file"):
        path = getattr(cfg, key)
        if path is not None:
            try:
                file_prompts[key] = read_prompts(path)
                need(len(file_prompts[key]) > 0, f"{key}: {path} holds no prompt")
            except (OSError, UnicodeDecodeError) as err:
                errors.append(f"{key}: cannot read {path}: {err}")
    need(cfg.eval_prompts is None or len(cfg.eval_prompts) > 0, "eval_prompts: at least one prompt is needed (or leave it out)")
    need(len(cfg.sample_prompts) > 0, "sample_prompts: at least one prompt is needed")
    if cfg.model.name in model_names():
        sources = {key: getattr(cfg, key) for key in ("prompts", "sample_prompts", "eval_prompts")}
        for key, prompts in {**sources, **file_prompts}.items():
            for i, prompt in enumerate(prompts or []):
                try:
                    check_model_prompts(cfg.model, [prompt])
                except ValueError as err:
                    where = f"{key}: line {i + 1}" if key in file_prompts else f"{key}[{i}]"
                    errors.append(f"{where}: {err}")
    if cfg.model.free_text_encoders and not errors:
        count = len(cfg.training_prompts())
        need(count <= MAX_CACHED_PROMPTS, f"model.free_text_encoders: {count:,} training prompts would be cached "
             f"(up to 4 MB each with T5 at 512 tokens); at most {MAX_CACHED_PROMPTS:,}, or keep the encoders")
    if errors:
        raise ConfigError("invalid config:\n  - " + "\n  - ".join(errors), errors)
    return cfg
