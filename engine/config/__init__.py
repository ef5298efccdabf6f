"""Typed run configuration: YAML plus `key=value` overrides, validated before any work starts.

Every field is a typed attribute of a (pydantic) dataclass that declares its type and bounds:
an unknown key, a wrong type, a value out of bounds or above a limit (engine/config/limits.py), a float
that is not finite: each is one line of a `ConfigError` listing every problem, raised before a
model is built or a file written. `validate` then checks what spans fields or needs the model,
rewards and prompt files. Nothing here imports torch (the UI validates with it).

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
from engine.config.files import local_source_refused, read_prompts, refused
from engine.training.hub import sources_by_text
from engine.config.limits import excerpt, limit, too_large
from engine.training.tracking import TRACKERS, problems as tracker_problems

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


# ---------------------------------------------------------------- validation: what spans fields


def validate(cfg: Config, read_from: list[Path] | None = None) -> Config:
    """What types and bounds cannot say: settings that depend on each other, on the model, the
    rewards and the prompt files. `read_from` as in load_config; with it, a model or reward source
    is a hub id or a path by its text alone (engine.training.hub.sources_by_text)."""
    with sources_by_text() if read_from is not None else contextlib.nullcontext():
        return _validate(cfg, read_from)


def _validate(cfg: Config, read_from: list[Path] | None) -> Config:
    from engine.models import model_problems

    errors: list[str] = []

    def need(ok: bool, message: str):
        if not ok:
            errors.append(message)

    a, t, s = cfg.algorithm, cfg.train, cfg.sampling
    model_refused = cfg.model.path and local_source_refused("model.path", cfg.model.path, read_from)
    errors.extend([model_refused] if model_refused else model_problems(cfg.model))
    need(a.kl_beta == 0 or cfg.lora.enabled,
         "algorithm.kl_beta: the KL reference is the adapter-disabled model, so it needs lora.enabled")
    if a.name in BRANCHING:
        _check_g2rpo(a, s.steps, need)
    need(a.name != "diffusionnft" or not a.shared_noise,
         "algorithm.shared_noise: DiffusionNFT samples by ODE, so members sharing one noise would be copies")
    need(a.nft_old_decay == 0 or a.name == "diffusionnft", "algorithm.nft_old_decay: only DiffusionNFT keeps an old policy")
    need(a.nft_noise == "fresh" or a.name == "diffusionnft", "algorithm.nft_noise: only DiffusionNFT noises its samples again")
    need(a.nft_noise == "fresh" or not a.nft_group_noise,
         "algorithm.nft_noise: 'rollout' gives each member its own initial noise, so it cannot share a group's noise")
    need(a.name != "mixgrpo" or 1 <= a.window_size <= s.steps - 1,
         f"algorithm.window_size: must be in 1..{s.steps - 1}, got {a.window_size}")
    errors.extend(_reward_problems(cfg, read_from))
    errors.extend(tracker_problems(t.log_with))
    need(cfg.prompts is None or cfg.prompts_file is None, "prompts_file: give prompts or prompts_file, not both")
    need(cfg.eval_prompts is None or cfg.eval_prompts_file is None,
         "eval_prompts_file: give eval_prompts or eval_prompts_file, not both")
    file_prompts = _read_prompt_files(cfg, read_from, errors)
    model_refusals = _prompt_problems(cfg, file_prompts)
    errors.extend(model_refusals or _world_prompt_problems(cfg, file_prompts))  # one reason per prompt
    if cfg.model.free_text_encoders and not errors:
        count = len(cfg.training_prompts())
        need(count <= MAX_CACHED_PROMPTS, f"model.free_text_encoders: {count:,} training prompts would be cached "
             f"(up to 4 MB each with T5 at 512 tokens); at most {MAX_CACHED_PROMPTS:,}, or keep the encoders")
    if errors:
        raise ConfigError.listing(errors)
    return cfg


def _check_g2rpo(a: AlgorithmConfig, steps: int, need) -> None:
    need(len(a.branch_steps) > 0, "algorithm.branch_steps: K must not be empty")
    need(len(set(a.branch_steps)) == len(a.branch_steps), f"algorithm.branch_steps: repeated steps in {excerpt(a.branch_steps)}")
    bad = [k for k in a.branch_steps if k >= steps]
    need(not bad, f"algorithm.branch_steps: {excerpt(bad)} beyond the grid; steps are 0..{steps - 1} with sampling.steps={steps}")
    if a.merge_steps:
        need(a.name == "egrpo" or all(m == 1 for m in a.merge_steps),
             "algorithm.merge_steps: G²RPO branches over single grid steps; merged steps are E-GRPO (algorithm.name: egrpo)")
        need(len(a.merge_steps) == len(a.branch_steps), f"algorithm.merge_steps: one span per branch step, got "
             f"{len(a.merge_steps)} for {len(a.branch_steps)} branch steps")
        past = [(k, m) for k, m in zip(a.branch_steps, a.merge_steps) if k + m > steps]
        need(not past, f"algorithm.merge_steps: (k, span) = {excerpt(past)} would step past s = 0 (grid steps 0..{steps - 1})")
    need(len(a.granularities) > 0, "algorithm.granularities: Lambda must not be empty")
    need(len(set(a.granularities)) == len(a.granularities), f"algorithm.granularities: repeated values in {excerpt(a.granularities)}")
    coarse = [g for g in a.granularities if g > steps]
    need(not coarse, f"algorithm.granularities: strides beyond the {steps} steps: {excerpt(coarse)}")
    if a.completion == "authors":
        from engine.method.schedule import completion_schedule

        lands = {k: k + m - 1 for k, m in a.spans().items()} if len(a.merge_steps) in (0, len(a.branch_steps)) else {}
        lost = [(k, g) for k, j in lands.items() for g in a.granularities
                if j < steps - 2 and j + 2 not in completion_schedule(j, g, steps, "authors")]
        need(not lost, f"algorithm.completion: with 'authors', (k, lambda) = {excerpt(lost)} would skip the fine step "
             f"k+1 -> k+2 that every granularity shares; use 'append_zero' or smaller k or lambda")


def _reward_problems(cfg: Config, read_from: list[Path] | None) -> list[str]:
    from engine.rewards.base import reward_problems

    errors = []
    for i, r in enumerate(cfg.rewards):
        refusal = r.model and local_source_refused(f"rewards[{i}].model", r.model, read_from)
        errors.extend([refusal] if refusal else [f"rewards[{i}].name: {p}" for p in reward_problems(r.name, r.model)])
    trained = {r.name for r in cfg.rewards}  # evaluation reuses these, with their own weights
    for i, name in enumerate(cfg.eval_rewards):
        if name not in trained:
            errors.extend(f"eval_rewards[{i}]: {problem}" for problem in reward_problems(name))
    return errors


def _read_prompt_files(cfg: Config, read_from: list[Path] | None, errors: list[str]) -> dict[str, list[str]]:
    """Prompts read from files, checked by the model below like inline ones."""
    file_prompts = {}
    for key in ("prompts_file", "eval_prompts_file"):
        path = getattr(cfg, key)
        if path is None:
            continue
        refusal = refused(key, path, read_from)
        if refusal:
            errors.append(refusal)
            continue
        try:
            prompts = read_prompts(path)
        except ValueError as err:
            errors.append(f"{key}: cannot read {excerpt(path)}: {err}")
            continue
        message = too_large("prompts", len(prompts))
        if not prompts or message:
            errors.append(f"{key}: {excerpt(path)} holds {message or 'no prompt'}")
        else:
            file_prompts[key] = prompts
    return file_prompts


def _world_prompt_problems(cfg: Config, file_prompts: dict[str, list[str]]) -> list[str]:
    """The shapes world's rewards (preference, the verifiers) read each prompt as a scene: the
    prompts they score must parse, whatever model draws them (else the run would fail mid-way)."""
    from engine.rewards.base import WORLD_REWARDS
    from engine.world.scenes import parse_prompt

    scored = {"prompts": {r.name for r in cfg.rewards}, "eval_prompts": set(cfg.evaluation_rewards())}
    errors = []
    for key, rewards in scored.items():
        world = sorted(rewards & WORLD_REWARDS)
        prompts = getattr(cfg, key) if getattr(cfg, key) is not None else file_prompts.get(key.replace("prompts", "prompts_file"))
        for i, prompt in enumerate(prompts or [] if world else []):
            try:
                parse_prompt(prompt)
            except ValueError:
                errors.append(f"{key}[{i}]: reward {world[0]!r} scores shapes-world scenes only "
                              "('COUNT [SIZE] COLOUR SHAPE on a BACKGROUND background'), not this prompt")
                break  # one is enough to say what is wrong
    return errors


def _prompt_problems(cfg: Config, file_prompts: dict[str, list[str]]) -> list[str]:
    """Prompts the model cannot encode (an unknown word for the built-in model), from the config or
    its files: a few inline ones are listed, a file's first only (its unknown words, not the line)."""
    from engine.models import check_model_prompts, model_names

    if cfg.model.name not in model_names():
        return []
    errors = []
    sources = {key: getattr(cfg, key) for key in ("prompts", "sample_prompts", "eval_prompts")}
    for key, prompts in {**sources, **file_prompts}.items():
        from_file = key in file_prompts
        bad, shown = 0, 1 if from_file else 3
        for i, prompt in enumerate(prompts or []):
            if from_file and len(prompt) > limit("prompt_chars"):
                message = f"a prompt of {len(prompt):,} characters; at most {limit('prompt_chars'):,}"
            else:
                try:
                    check_model_prompts(cfg.model, [prompt], quote=not from_file)
                    continue
                except ValueError as err:
                    message = str(err)
            bad += 1
            if bad <= shown:
                errors.append(f"{key}: line {i + 1}: {message}" if from_file else f"{key}[{i}]: {message}")
        if bad > shown:
            errors.append(f"{key}: ... and {bad - shown:,} more {'lines' if from_file else 'prompts'} "
                          "the model cannot take")
    return errors
