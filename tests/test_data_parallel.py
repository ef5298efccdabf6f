"""Data parallel: N processes with P prompts each give the result of one process with N x P prompts.

The global batch is drawn from (seed, iteration) alone, each group's noise from its own generator
keyed by its global index, and whatever spans groups is gathered; so the process layout changes
only the order of float reductions.
"""
import json
import os
import socket
import subprocess
import sys

import pytest
import torch
from safetensors.torch import load_file

from engine.algorithms import build_algorithm
from engine.models import build_model
from engine.models.base import VelocityRunner
from engine.method.rollout import RolloutNoise


def by_prompt(images: torch.Tensor, groups: tuple[int, ...]) -> torch.Tensor:
    """A rollout's images [prod(groups), ...] as [P, ..., G, ...]: prompt first, whatever the algorithm."""
    return images.reshape(*groups, *images.shape[1:]).movedim(len(groups) - 2, 0)


@pytest.mark.parametrize("name", ["g2rpo", "egrpo", "dancegrpo", "flowgrpo", "diffusionnft"])
def test_rollout_noise_does_not_depend_on_the_process_layout(small_config, name):
    """Two prompts in one rollout, or one each in two rollouts (two processes): the same samples."""
    cfg = small_config(f"algorithm.name={name}", *(["algorithm.merge_steps=[1,2,1,3]"] if name == "egrpo" else []))
    model, algorithm = build_model(cfg.model), build_algorithm(cfg)
    runner = VelocityRunner(model, 512)
    prompts = cfg.training_prompts()[:2]

    def rollout(first: int, count: int):
        cond = model.encode_prompts(prompts[first:first + count])
        return algorithm.rollout(runner, cond, RolloutNoise.seeded(0, 5, first, count), 5)

    whole, parts = rollout(0, 2), [rollout(0, 1), rollout(1, 1)]
    assert torch.allclose(by_prompt(whole.images, whole.groups),
                          torch.cat([by_prompt(p.images, p.groups) for p in parts]), atol=1e-5)
    assert whole.info == parts[0].info == parts[1].info  # DanceGRPO trains the same random steps
    for i, t in enumerate(whole.transitions):
        assert [p.transitions[i].step for p in parts] == [t.step] * 2
        assert torch.allclose(t.x_next, torch.cat([p.transitions[i].x_next for p in parts]), atol=1e-5)
        assert torch.allclose(t.logp_old, torch.cat([p.transitions[i].logp_old for p in parts]), atol=1e-5)
    if whole.forward is not None:  # DiffusionNFT: where each clean sample is noised again
        for key in ("time_idx", "eps"):
            assert torch.equal(getattr(whole.forward, key), torch.cat([getattr(p.forward, key) for p in parts]))
    other = algorithm.rollout(runner, model.encode_prompts(prompts[1:]), RolloutNoise.seeded(0, 5, 0, 1), 5)
    assert not torch.allclose(other.images, parts[1].images, atol=1e-3)  # the noise follows the global index


SMALL = ["model.name=tiny-flux", "rewards=[{name: brightness}]", "algorithm.group_size=3", "sampling.steps=6",
         "algorithm.branch_steps=[0,1]", "algorithm.granularities=[1,2]", "train.iterations=2",
         "train.checkpoint_every=1", "train.sample_every=1000", "train.eval_every=0", "train.micro_batch=4",
         "train.optimizer_step=per_step", "train.max_grad_norm=3e-4"]  # small enough that clipping acts


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def train(out, processes: int, prompts_per_process: int, overrides: list[str], resume: bool = False) -> list[dict]:
    """`python -m engine.train` in one process, or under `accelerate launch` in two CPU processes (gloo)."""
    args = ["-m", "engine.train", "--config", "configs/g2rpo.yaml", "--out", str(out), "--no-progress"]
    args += ["--resume"] if resume else []
    for item in [*SMALL, f"train.prompts_per_iteration={prompts_per_process}", *overrides]:
        args += ["--set", item]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    if processes > 1:  # see configs/accelerate/cpu-2proc.yaml for why ACCELERATE_USE_CPU is needed
        env["ACCELERATE_USE_CPU"] = "true"
        args = ["-m", "accelerate.commands.launch", "--config_file", "configs/accelerate/cpu-2proc.yaml",
                "--num_processes", str(processes), "--main_process_port", str(free_port()), *args]
    done = subprocess.run([sys.executable, *args], capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    return [json.loads(line) for line in (out / "records.jsonl").read_text().splitlines()]


# Two processes cost about 10 s a case: the global-std and E-GRPO cases run with `make test-slow`.
@pytest.mark.parametrize("algorithm, interrupted", [
    (["algorithm.name=g2rpo"], True),
    pytest.param(["algorithm.name=flowgrpo", "algorithm.global_std=true"], False, marks=pytest.mark.slow),
    (["algorithm.name=diffusionnft"], False),
    pytest.param(["algorithm.name=egrpo", "algorithm.merge_steps=[1,2]"], False, marks=pytest.mark.slow),
], ids=["g2rpo-resumed", "flowgrpo-global-std", "diffusionnft", "egrpo-merged"])
def test_two_processes_train_like_one_with_the_global_batch(tmp_path, algorithm, interrupted):
    one = train(tmp_path / "one", 1, 2, algorithm)
    if interrupted:  # the two-process run stops after its first checkpoint and resumes from it
        train(tmp_path / "two", 2, 1, [*algorithm, "train.iterations=1"])
    two = train(tmp_path / "two", 2, 1, algorithm, resume=interrupted)

    for a, b in zip(one, two, strict=True):
        assert len(b["prompts"]) == 2 and b["prompts"] == a["prompts"]  # two processes, one prompt each
        assert b["trained_steps"] == a["trained_steps"]
        assert b["model_evaluations"] == a["model_evaluations"]  # summed over processes
        on_policy = "old_deviation_first" if "old_deviation_first" in a else "onpolicy_ratio_error"
        assert a[on_policy] == b[on_policy] == 0.0
        for key in ("grad_norm", "grad_norm_max", "ratio_min", "ratio_max", "old_deviation"):
            if key in a:
                assert b[key] == pytest.approx(a[key], rel=1e-4), key
        for name, stats in a["reward"].items():  # gathered: over both processes' groups
            assert b["reward"][name]["mean"] == pytest.approx(stats["mean"], rel=1e-5)
            assert b["reward"][name]["std"] == pytest.approx(stats["std"], rel=1e-4)
        if "g2rpo" in a:  # per prompt of the global batch, as the UI draws it
            assert torch.allclose(torch.tensor(b["g2rpo"]["rewards"]), torch.tensor(a["g2rpo"]["rewards"]), atol=1e-5)

    # Float reductions differ (batched vs per-process calls, DDP's all-reduce), at ~1e-7 relative;
    # AdamW moves each weight by about the learning rate per step, so anything that really differs
    # (other prompts, noise, advantages, gradient scale after clipping) shows at a sizeable share
    # of an update. The tolerance is a hundredth of the last iteration's update: Adam's first step
    # divides by |g| + eps, so a weight whose gradient is near eps amplifies the float noise (seen
    # at 1.05e-3 of an update for DiffusionNFT with one thread).
    def weights(out, it):
        return load_file(out / "checkpoints" / f"iter_{it:06d}" / "trainable.safetensors")

    first, last = weights(tmp_path / "one", 1), weights(tmp_path / "one", 2)
    update = max((last[k] - first[k]).abs().max().item() for k in last)
    assert update > 1e-5  # the weights moved, so the comparison below can fail
    for it, expected in ((1, first), (2, last)):
        got = weights(tmp_path / "two", it)
        for k, v in expected.items():
            assert torch.allclose(got[k], v, rtol=0, atol=1e-2 * update), (it, k, (got[k] - v).abs().max().item())
