import pytest

from engine.config import load_config


@pytest.fixture
def small_config():
    """A config small enough for a CPU test: few branch steps, a small group, two prompts."""

    def make(*overrides: str):
        base = ["algorithm.group_size=4", "algorithm.branch_steps=[0,1,2,3]", "algorithm.granularities=[1,2]",
                "sampling.steps=8", "train.iterations=2", "train.prompts_per_iteration=2",
                "train.checkpoint_every=1000", "train.sample_every=1000"]
        return load_config("configs/g2rpo.yaml", base + list(overrides))

    return make
