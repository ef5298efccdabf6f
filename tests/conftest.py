import pytest

from engine.config import load_config


PROMPTS = ["a red circle on a black background", "two blue squares on a white background",
           "three yellow triangles on a gray background"]


@pytest.fixture
def small_config():
    """A config small enough for a CPU test: the random 16x16 model, few branch steps, a small
    group, two prompts per iteration, a brightness reward a LoRA moves quickly."""

    def make(*overrides: str):
        base = ["model.name=tiny-flux", "rewards=[{name: brightness}]", f"prompts={PROMPTS}",
                "algorithm.group_size=4", "algorithm.branch_steps=[0,1,2,3]", "algorithm.granularities=[1,2]",
                "sampling.steps=8", "train.iterations=2", "train.prompts_per_iteration=2",
                "train.checkpoint_every=1000", "train.sample_every=1000", "train.eval_every=0"]
        return load_config("configs/g2rpo.yaml", base + list(overrides))

    return make
