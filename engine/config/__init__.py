"""Typed run configuration: YAML plus `key=value` overrides, validated before any work starts.

Every field is a typed attribute of a (pydantic) dataclass that declares its type and bounds:
an unknown key, a wrong type, a value out of bounds or above a limit (engine/config/limits.py), a float
that is not finite: each is one line of a `ConfigError` listing every problem, raised before a
model is built or a file written. `validate` then checks what spans fields or needs the model,
rewards and prompt files. Nothing here imports torch (the UI validates with it).

Validation is a pipeline, each stage a function in its own place, going down:
  1. parse_config (here): YAML read within bounds (safe_yaml), types and bounds per field (fields,
     limits), algorithm defaults resolved;
  2. checks.cross_field_problems: settings that depend on each other, from the config alone;
  3. resources.resource_problems: the model, rewards, trackers and prompt files it names (files:
     which folders it may read), and the prompts the model can encode;
  then, before queueing, the jobs API's estimate against the machine (estimate.budget_problems).

The package also holds the pieces validation reads: fields (types and bounds), limits (the
operator's limits), files (which folders a config may read), safe_yaml (bounded YAML) and estimate
(memory and time before launch). It may import engine.models, engine.rewards, engine.world and
engine.training's torch-free tracker and Hub checks; nothing that trains.
"""
from __future__ import annotations

import contextlib
import copy
import re
import dataclasses
import typing
from dataclasses import field
from pathlib import Path
from typing import Annotated, Literal

import yaml
from pydantic import BeforeValidator, ConfigDict, TypeAdapter, ValidationError
from pydantic.dataclasses import dataclass

from engine.config.fields import (Bool, ConfigError, Float, Int, Name, Prompt, Seed, Source, above, at_least, at_most,
                           limited, non_empty, one_of, problems_of, rule)
from engine.config import safe_yaml
from engine.config.files import read_prompts
from engine.training.hub import sources_by_text
from engine.config.limits import excerpt, limit
from engine.training.tracking import TRACKERS

__all__ = ["Config", "ConfigError", "config_from_dict", "load_config", "parse_config", "validate"]

ALGORITHMS = ("g2rpo", "egrpo", "dancegrpo", "flowgrpo", "mixgrpo", "diffusionnft")
BRANCHING = ("g2rpo", "egrpo")  # the methods that branch one SDE step off an ODE anchor
# Per-algorithm defaults for the settings that differ between the methods (see the spec).
ALGORITHM_DEFAULTS = {
    "g2rpo": dict(eta=0.7, noise_form="flow", shared_noise=True),
    "egrpo": dict(eta=0.7, noise_form="flow", shared_noise=True),
    "dancegrpo": dict(eta=0.3, noise_form="dance", shared_noise=True),
    "flowgrpo": dict(eta=0.7, noise_form="flow", shared_noise=False),
    "mixgrpo": dict(eta=0.7, noise_form="flow", shared_noise=True),
    # DiffusionNFT samples by ODE from one noise per member; eta and the noise form go unused.
    "diffusionnft": dict(eta=0.7, noise_form="flow", shared_noise=False),
}

MAX_CACHED_PROMPTS = 2000  # model.free_text_encoders keeps every prompt's embedding in memory
SCHEMA = ConfigDict(extra="forbid", allow_inf_nan=False)  # unknown keys and inf/nan are errors

Positive = Annotated[Float, above(0)]
# Every float setting has a finite upper bound (engine.config.fields.at_most): one where the setting has a
# natural range, else FLOAT32_SAFE for scales that only make a run diverge (caught: engine/training/errors.py)
# but must still fit the float32 tensors they multiply (at most 3.4e38; beyond, torch raises).
FLOAT32_SAFE = 1e30
Count = Annotated[Int, at_least(1)]


def items(limit: str):
    return limited(limit, len)


def _tracker_list(value):
    """`--set train.log_with=tensorboard` names one tracker; "none" names none."""
    if isinstance(value, str):
        return [] if value == "none" else [value]
    return value


@dataclass(config=SCHEMA)
class ModelConfig:
    name: Name = "builtin"  # builtin | tiny-flux (random weights, tests) | flux | sd3
    path: Source | None = None  # flux/sd3: hub id or local pipeline folder (None: the adapter's default)
    resolution: Annotated[Int, limited("resolution")] | None = None  # flux/sd3: side in pixels (None: 720 FLUX, 512 SD3)
    # FLUX: distilled guidance (3.5); SD3: CFG scale (4.5; 1 = no CFG)
    guidance: Annotated[Float, at_least(0), at_most(100, "CFG scales past about 30 are unused")] | None = None
    dtype: Name = "auto"  # frozen weights: auto = bfloat16 on a GPU, float32 on the CPU
    gradient_checkpointing: Bool = False  # trade compute for activation memory
    max_sequence_length: Int = 512  # T5 tokens per prompt (flux/sd3)
    free_text_encoders: Bool = False  # encode every prompt once at start, then free the text encoders


@dataclass(config=SCHEMA)
class SamplingConfig:
    steps: Annotated[Int, at_least(2, "need at least 2 steps"), limited("steps")] = 16
    shift: Annotated[Positive, at_most(100, "the time shift; FLUX and SD3 use 3")] = 3.0


@dataclass(config=SCHEMA)
class AlgorithmConfig:
    name: Annotated[Name, one_of(ALGORITHMS, "algorithm")] = "g2rpo"
    group_size: Annotated[Int, at_least(2, "a group needs at least 2 members"), limited("group_size")] = 12
    # None: the algorithm's (0.7; DanceGRPO 0.3)
    eta: Annotated[Float, above(0, "must be > 0 (the SDE step needs noise)"),
                   at_most(10, "the SDE's noise scale; the methods use 0.3 to 1")] | None = None
    noise_form: Literal["flow", "dance"] | None = None  # "flow" sigma = eta sqrt(s/(1-s)) | "dance" constant eta
    shared_noise: Bool | None = None  # members of a prompt share the initial noise
    # small because log-probs are element means
    clip_range: Annotated[Positive, at_most(10, "the ratio is clipped to [1 - c, 1 + c]; from 1 on, the lower "
                                                "side clips nothing")] = 1e-4
    adv_clamp: Annotated[Positive, at_most(1e6, "no advantage comes near it")] = 5.0
    # KL to the adapter-disabled reference (LoRA only)
    kl_beta: Annotated[Float, at_least(0), at_most(1000, "the KL term's weight")] = 0.0
    # G²RPO's K and Lambda (each at most one entry per grid step)
    branch_steps: Annotated[list[Annotated[Int, at_least(0)]], items("steps")] = field(default_factory=lambda: list(range(8)))
    granularities: Annotated[list[Annotated[Int, at_least(1, "every granularity must be >= 1")]], items("steps")] = field(
        default_factory=lambda: [1, 2, 3])
    # E-GRPO: how many grid steps the one SDE step at each branch step spans, in the order of
    # branch_steps (empty: 1 each, which is G²RPO); k's step goes s_k -> s_{k+m} with the noise of s_k
    merge_steps: Annotated[list[Annotated[Int, at_least(1, "every merge must span >= 1 step")]], items("steps")] = field(
        default_factory=list)
    # G²RPO: how a completion whose strides stop short of s = 0 ends (engine.method.sampling.completion_schedule):
    # "append_zero" steps on to s = 0 from the last strided point; "authors" returns x0_hat predicted at
    # the point before it, as the authors' run_ode_sample_step does.
    completion: Literal["append_zero", "authors"] = "append_zero"
    train_fraction: Annotated[Float, rule(lambda f: 0 < f <= 1, "must be in (0, 1]")] = 0.6  # DanceGRPO: share of steps trained
    global_std: Bool = False  # Flow-GRPO: normalise by the batch's std, not the group's
    window_size: Int = 4  # MixGRPO's SDE window
    window_shift_every: Count = 25  # MixGRPO: iterations before the window moves by one step
    def spans(self) -> dict[int, int]:
        """Branch step k -> the grid steps its SDE step spans (1 unless E-GRPO merges)."""
        return {k: (self.merge_steps[i] if self.merge_steps else 1) for i, k in enumerate(self.branch_steps)}

    nft_beta: Annotated[Float, above(0), rule(lambda b: b <= 1, "must be in (0, 1]")] = 1.0  # DiffusionNFT's beta
    nft_times: Annotated[Count, limited("steps")] = 4  # DiffusionNFT: noise levels each sample is trained at
    nft_group_noise: Bool = False  # DiffusionNFT: a group's members share those levels and noise (authors: not)
    # DiffusionNFT: the noise each clean sample is noised again with: "fresh" draws (the authors'), or
    # "rollout", the initial noise the sample was drawn from, so that the regression target lies on the
    # model's own noise-to-image pairing (meant to lower the gradient's variance; measured no faster on
    # the built-in model: docs/builtin-world.md)
    nft_noise: Literal["fresh", "rollout"] = "fresh"
    # DiffusionNFT: the share of the sampling grid, from its noisy end, that the levels are drawn from
    # (Flow-Factory's timestep_range): layout, count and shape are decided at high noise
    nft_time_fraction: Annotated[Float, rule(lambda f: 0 < f <= 1, "must be in (0, 1]")] = 1.0
    # DiffusionNFT: the old policy is an EMA of the trained weights with this decay per iteration (the
    # authors'; engine/method/old_policy.py); 0: the policy at the start of each iteration (the rollout's)
    nft_old_decay: Annotated[Float, rule(lambda d: 0 <= d < 1, "must be in [0, 1)")] = 0.0
    # DiffusionNFT: False gives members below their group's mean r = 1/2 (no push away from them): the
    # loss then learns from the better samples only, like reward-filtered fine-tuning (authors: True)
    nft_negatives: Bool = True


@dataclass(config=SCHEMA)
class LoraConfig:
    enabled: Bool = True  # False: full fine-tuning of the transformer
    rank: Annotated[Count, limited("lora_rank")] = 8
    alpha: Annotated[Positive, at_most(FLOAT32_SAFE, "the LoRA scale alpha / rank multiplies float32 values")] = 16.0
    target_modules: Annotated[list[Name], rule(lambda v: len(v) <= 64, "at most 64 module names")] | None = None  # None: the adapter's


@dataclass(config=SCHEMA)
class TrainConfig:
    iterations: Annotated[Count, limited("iterations")] = 100
    prompts_per_iteration: Annotated[Count, limited("prompts_per_iteration")] = 1  # per process; a whole group each
    learning_rate: Annotated[Positive, at_most(1, "above, AdamW overflows")] = 1e-4
    lr_schedule: Literal["constant", "cosine"] = "constant"  # cosine: from learning_rate to 0 over the iterations
    betas: Annotated[list[Annotated[Float, rule(lambda b: 0 <= b < 1, "must be in [0, 1)")]],
                     rule(lambda v: len(v) == 2, "two values (Adam's beta1 and beta2)")] = field(
        default_factory=lambda: [0.9, 0.999])
    weight_decay: Annotated[Float, at_least(0), at_most(1, "AdamW shrinks the weights by learning_rate x "
                                                           "weight_decay each step")] = 1e-4
    max_grad_norm: Annotated[Positive, at_most(FLOAT32_SAFE, "it divides float32 gradients")] = 1.0
    optimizer_step: Literal["per_step", "per_iteration"] = "per_step"  # one per trained step k | per iteration
    micro_batch: Annotated[Count, limited("micro_batch")] = 64  # most samples per model call; bounds memory, not the result
    mixed_precision: Literal["no", "bf16", "fp16"] = "no"
    seed: Seed = 0
    checkpoint_every: Count = 10
    sample_every: Count = 10
    eval_every: Annotated[Int, at_least(0, "must be >= 0 (0: no evaluation)")] = 0  # score eval_prompts this often; base first
    # G²RPO and E-GRPO: keep every member's images at every (prompt, k, λ) this often, from iteration 0,
    # for the Monitor's branch explorer (engine/training/branches.py; bytes per iteration in docs/scale.md); 0: never
    branch_every: Annotated[Int, at_least(0, "must be >= 0 (0: branches not stored)")] = 10
    # Rows of the fixed probe batch on which every iteration records how far the policy moved
    # (relative change of the velocity against the base model); 0 records nothing.
    movement_probe: Annotated[Int, at_least(0, "must be >= 0 (0: not recorded)"), limited("movement_probe")] = 8
    # Experiment trackers fed every record through accelerate (engine/training/tracking.py): tensorboard, wandb,
    # trackio, several as a list; "none" or [] logs only to the records (and the database)
    log_with: Annotated[list[Annotated[Name, one_of(TRACKERS, "tracker")]], BeforeValidator(_tracker_list),
                        rule(lambda v: len(set(v)) == len(v), "a tracker is named twice")] = field(default_factory=list)
    tracker_project: Annotated[Name, rule(lambda v: re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}", v) is not None,
                                          "letters, digits, '.', '_' and '-' (at most 100, a letter or digit first)")
                               ] = "g2rpo"  # the W&B and Trackio project, TensorBoard's folder
    # torch.compile the transformer: faster model calls after a first-call compilation (47 s for the
    # built-in model on a CPU), for long runs and GPUs; `python -m engine.tools.bench` measures both
    compile: Bool = False


@dataclass(config=SCHEMA)
class RewardConfig:
    name: Name
    weight: Annotated[Positive, at_most(1000, "a weight of the reward's advantage")] = 1.0
    model: Source | None = None  # real reward models: hub id or local path (None: the published weights)


Prompts = Annotated[list[Prompt], items("prompts"), non_empty("at least one prompt is needed (or leave it out)")]


@dataclass(config=SCHEMA)
class Config:
    model: ModelConfig = field(default_factory=ModelConfig)
    sampling: SamplingConfig = field(default_factory=SamplingConfig)
    algorithm: AlgorithmConfig = field(default_factory=AlgorithmConfig)
    lora: LoraConfig = field(default_factory=LoraConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    rewards: Annotated[list[RewardConfig], items("rewards"), non_empty("at least one reward model is needed")] = field(
        default_factory=lambda: [RewardConfig("preference")])
    prompts: Prompts | None = None  # None: prompts_file, else the shapes world's training prompts
    prompts_file: Source | None = None  # training prompts, one per line (e.g. HPDv2's train prompts)
    sample_prompts: Annotated[list[Prompt], items("sample_prompts"), non_empty("at least one prompt is needed")] = field(
        default_factory=lambda: list(DEFAULT_SAMPLE_PROMPTS))
    eval_prompts: Prompts | None = None  # None: eval_prompts_file, else the shapes world's held-out prompts
    eval_prompts_file: Source | None = None  # held-out prompts, one per line (e.g. HPDv2's 400 test prompts)
    eval_rewards: Annotated[list[Name], items("rewards")] = field(default_factory=list)  # scored besides the training rewards

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


# Two training prompts and two held-out ones, sampled from fixed noise as the run goes.
DEFAULT_SAMPLE_PROMPTS = (
    "two red circles on a black background",
    "a large blue square on a white background",
    "a red triangle on a gray background",
    "three blue circles on a black background",
)


# ---------------------------------------------------------------- parsing


def apply_override(data: dict, assignment: str) -> None:
    """Apply `a.b.c=value` (value parsed as YAML) to a nested dict in place."""
    if "=" not in assignment:
        raise ConfigError(f"override {excerpt(assignment)} is not key=value")
    key, raw = assignment.split("=", 1)
    parts = key.strip().split(".")
    node = data
    for part in parts[:-1]:
        node = node.setdefault(part, {})
        if not isinstance(node, dict):
            raise ConfigError(f"override {excerpt(key)}: {excerpt(part)} is not a section")
    node[parts[-1]] = _yaml(raw, f"override {excerpt(key)}")


def _yaml(text: str, what: str):
    """Parsed YAML (within engine/config/safe_yaml.py's bounds), or a ConfigError that says where and
    what, never quoting the text itself."""
    try:
        return safe_yaml.load(text)
    except safe_yaml.YamlRefused as err:
        raise ConfigError(f"{what}: {err}") from None
    except yaml.MarkedYAMLError as err:
        mark = err.problem_mark
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise ConfigError(f"{what}: not valid YAML{where}: {err.problem or err.context}") from None
    except (yaml.YAMLError, ValueError) as err:  # ValueError: e.g. an integer of more than 4,300 digits
        raise ConfigError(f"{what}: not valid YAML ({str(err)[:100]})") from None


def read_yaml(path: str | Path) -> dict:
    try:
        text = safe_yaml.read_bounded(path).decode("utf-8")
    except safe_yaml.YamlRefused as err:
        raise ConfigError(f"config {excerpt(str(path))}: {err}") from None
    except UnicodeDecodeError as err:
        raise ConfigError(f"cannot read config {excerpt(str(path))}: not UTF-8 text "
                          f"(byte {err.object[err.start]:#04x} at position {err.start:,})") from None
    except OSError as err:
        raise ConfigError(f"cannot read config {excerpt(str(path))}: {err.strerror or type(err).__name__}") from None
    return _yaml(text, f"config {excerpt(str(path))}") or {}


def load_config(path: str | Path | dict | None = None, overrides: list[str] = (),
                read_from: list[Path] | None = None) -> Config:
    """Read YAML (or a dict, or defaults), apply overrides, type-check, resolve defaults and validate.
    `read_from`: the only folders files named in the config may come from (None: anywhere)."""
    if isinstance(path, dict):
        data = copy.deepcopy(path)
    elif path is None or isinstance(path, (str, Path)):
        data = {} if path is None else read_yaml(path)
    else:
        raise ConfigError(f"config: expected a YAML file's path or a mapping, got {excerpt(path)}")
    if not isinstance(data, dict):
        raise ConfigError(f"config: expected a mapping of settings, got a {type(data).__name__}")
    for assignment in overrides:
        apply_override(data, assignment)
    return validate(parse_config(data), read_from)


def config_from_dict(data: dict, read_from: list[Path] | None = None) -> Config:
    return validate(parse_config(data), read_from)


def parse_config(data: dict) -> Config:
    """Typed and bounded, defaults resolved, but not validated: for showing a config (a preset
    whose model is not downloaded yet still fills the form; submitting it validates)."""
    try:
        return resolve(TypeAdapter(Config).validate_python(copy.deepcopy(data)))
    except ValidationError as err:
        raise ConfigError.listing(problems_of(err, _known_keys)) from None
    except ValueError as err:  # a limit's environment variable that is not a number
        raise ConfigError(str(err)) from None


def _known_keys(loc: tuple) -> list[str]:
    """The keys the section at `loc` ("algorithm", ("rewards", 0)) takes."""
    cls = Config
    for part in loc:
        if isinstance(part, str):
            cls = _dataclass_in(typing.get_type_hints(cls)[part])
    return sorted(f.name for f in dataclasses.fields(cls))


def _dataclass_in(hint):
    """The dataclass a field's type holds: X, X | None, list[X]."""
    if dataclasses.is_dataclass(hint):
        return hint
    return next((found for arg in typing.get_args(hint) if (found := _dataclass_in(arg))), None)


def resolve(cfg: Config) -> Config:
    """Fill the algorithm-dependent defaults (left as None) so the saved config is explicit."""
    defaults = ALGORITHM_DEFAULTS.get(cfg.algorithm.name, {})
    for key, value in defaults.items():
        if getattr(cfg.algorithm, key) is None:
            setattr(cfg.algorithm, key, value)
    return cfg


# ---------------------------------------------------------------- validation: stages 2 and 3


def validate(cfg: Config, read_from: list[Path] | None = None) -> Config:
    """What types and bounds cannot say: the settings that depend on each other (stage 2,
    engine/config/checks.py), then what the config names outside itself (stage 3,
    engine/config/resources.py); every problem of both in one ConfigError. `read_from` as in
    load_config; with it, a model or reward source is a hub id or a path by its text alone
    (engine.training.hub.sources_by_text)."""
    from engine.config.checks import cross_field_problems
    from engine.config.resources import resource_problems

    with sources_by_text() if read_from is not None else contextlib.nullcontext():
        errors = cross_field_problems(cfg, BRANCHING) + resource_problems(cfg, read_from, MAX_CACHED_PROMPTS)
    if errors:
        raise ConfigError.listing(errors)
    return cfg
