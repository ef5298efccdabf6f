"""The reward interface: a batch of images and their prompts in, one score per image out.

Every reward model (pixel statistics, exact verifiers, learned scorers, HPS, CLIP...) implements
`Reward.score`. Rewards are registered by name so configs can ask for them as strings.
"""
from __future__ import annotations

from abc import ABC, abstractmethod
import importlib
from typing import TYPE_CHECKING, Callable

from engine.rewards.sources import MODEL_REWARDS

if TYPE_CHECKING:
    import torch


class Reward(ABC):
    """Scores images. `images` is float [B, 3, H, W] in [0, 1]; returns float32 [B] on the CPU.

    `held_out` marks rewards that are for evaluation only (the paper's out-of-domain columns);
    a training config may still use one, but the UI and evaluation tables label it as such.
    """

    name: str = "reward"
    held_out: bool = False

    @abstractmethod
    def score(self, images: torch.Tensor, prompts: list[str]) -> torch.Tensor: ...

    def __call__(self, images: torch.Tensor, prompts: list[str]) -> torch.Tensor:
        if images.ndim != 4 or images.shape[1] != 3:
            raise ValueError(f"{self.name}: expected images [B, 3, H, W], got {tuple(images.shape)}")
        if len(prompts) != images.shape[0]:
            raise ValueError(f"{self.name}: {images.shape[0]} images but {len(prompts)} prompts")
        scores = self.score(images.detach().float().clamp(0, 1).cpu(), list(prompts))
        return scores.detach().float().cpu().reshape(images.shape[0])


_REGISTRY: dict[str, Callable[..., Reward]] = {}


def register_reward(name: str):
    """Class decorator: make a Reward constructible by name from configs."""

    def wrap(cls):
        cls.name = name
        _REGISTRY[name] = cls
        return cls

    return wrap


# The rewards that ship with the engine: the module that registers each, and whether it is held out.
# Listed here so configs are validated, and the UI labels held-out rewards, without importing torch.
# They need no weights from outside; the rewards that do (HPS, CLIP, ...) are in sources.MODEL_REWARDS.
BUILTIN_REWARDS: dict[str, tuple[str, bool]] = {
    **{name: ("engine.rewards.image_stats", False)
       for name in ("jpeg_compressibility", "jpeg_incompressibility", "brightness", "saturation")},
    "preference": ("engine.rewards.learned", False),
    "adherence": ("engine.rewards.verifiers", False),
    **{name: ("engine.rewards.verifiers", True) for name in ("background", "colour", "shape", "count")},
}


# The rewards that read a prompt as a shapes-world scene (engine.world.parse_prompt): their prompts
# must be the world's, whatever model draws them.
WORLD_REWARDS = frozenset({"preference", "adherence", "background", "colour", "shape", "count"})


def can_score(name: str, prompts: list[str]) -> bool:
    """Whether reward `name` can score images of `prompts`: a shapes-world reward only if every
    prompt is a scene it can read (any other reward reads any prompt)."""
    if name not in WORLD_REWARDS:
        return True
    from engine.world.scenes import parse_prompt

    try:
        for prompt in prompts:
            parse_prompt(prompt)
    except ValueError:
        return False
    return True


def reward_names() -> list[str]:
    return sorted(set(BUILTIN_REWARDS) | set(MODEL_REWARDS) | set(_REGISTRY))


def held_out_rewards() -> list[str]:
    """Rewards for evaluation only (the paper's out-of-domain columns)."""
    catalog = {**{name: held_out for name, (_, held_out) in BUILTIN_REWARDS.items()},
               **{name: spec.held_out for name, spec in MODEL_REWARDS.items()}}
    return sorted(name for name, held_out in catalog.items() if held_out)


def reward_problems(name: str, model: str | None = None) -> list[str]:
    """What stops reward `name` (weights from `model`) from loading, without importing torch or
    loading weights: an unknown name, a missing optional package, unreachable weights."""
    if name in MODEL_REWARDS:
        return MODEL_REWARDS[name].problems(model)
    if name not in BUILTIN_REWARDS and name not in _REGISTRY:
        return [f"unknown reward {name!r}; known: {', '.join(reward_names())}"]
    if model is not None:
        return [f"{name} is built in and takes no model path (got {model!r})"]
    return []


def build_reward(name: str, model: str | None = None) -> Reward:
    """The reward `name`; a model reward loads its weights from `model` (None: the published ones)."""
    module = MODEL_REWARDS[name].module if name in MODEL_REWARDS else BUILTIN_REWARDS.get(name, (None,))[0]
    if name not in _REGISTRY and module is not None:
        importlib.import_module(module)  # runs its @register_reward decorators
    if name not in _REGISTRY:
        raise KeyError(f"unknown reward {name!r}; known: {', '.join(reward_names())}")
    if name in MODEL_REWARDS:
        return _REGISTRY[name](model)
    if model is not None:
        raise ValueError(f"{name} is built in and takes no model path (got {model!r})")
    return _REGISTRY[name]()
