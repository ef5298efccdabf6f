"""The trainer: exact on-policy ratios, exact resume, LoRA export, and a reward that rises."""
import pytest
import torch

from engine.training.checkpoint import LORA_WEIGHTS, latest_checkpoint
from engine.models import build_model
from engine.training.records import read_records
from engine.rewards import build_reward
from engine.training.trainer import Trainer

METRICS = ("loss", "ratio_mean", "ratio_min", "ratio_max", "clip_fraction", "approx_kl", "grad_norm")


@pytest.mark.parametrize("name", ["g2rpo", "dancegrpo", "flowgrpo", "mixgrpo"])
def test_first_ratio_is_exactly_one_on_policy(small_config, tmp_path, name):
    # micro_batch 3 splits every batch into uneven chunks: rollout and training must agree anyway
    cfg = small_config(f"algorithm.name={name}", "train.micro_batch=3", "train.iterations=1",
                       "train.optimizer_step=per_step")
    record = Trainer(cfg, tmp_path).iteration(0)
    assert record["onpolicy_ratio_error"] == 0.0


def test_one_step_per_iteration_keeps_every_ratio_at_one(small_config, tmp_path):
    cfg = small_config("train.optimizer_step=per_iteration", "train.iterations=1")
    record = Trainer(cfg, tmp_path).iteration(0)
    assert record["ratio_min"] == record["ratio_max"] == 1.0


def test_records_hold_what_the_ui_draws(small_config, tmp_path):
    cfg = small_config("train.sample_every=2", "train.checkpoint_every=2")
    Trainer(cfg, tmp_path).run(progress=False)
    first, second = read_records(tmp_path / "records.jsonl")
    g = first["g2rpo"]
    assert g["branch_steps"] == [0, 1, 2, 3] and g["granularities"] == [1, 2]
    assert torch.tensor(g["rewards"]).shape == (1, 2, 4, 2, 4)  # [M, P, K, L, G]
    assert torch.tensor(g["advantages"]).shape == (1, 2, 4, 2, 4)
    assert torch.tensor(g["mixed_advantage"]).shape == (2, 4, 4)  # [P, K, G]
    assert set(first["reward"]["brightness"]) == {"mean", "std"}
    for key in METRICS + ("model_evaluations", "time", "prompts"):
        assert key in first
    assert first["model_evaluations"]["train"] == 2 * 4  # one forward per (prompt, k)
    assert (tmp_path / first["base_samples"][0]).exists() and (tmp_path / second["samples"][0]).exists()
    for scores, paths in ((first["base_sample_scores"], first["base_samples"]), (second["sample_scores"], second["samples"])):
        assert list(scores) == ["brightness"] and len(scores["brightness"]) == len(paths)  # each image's score
        assert all(0 <= v <= 1 for v in scores["brightness"])
    assert (tmp_path / second["checkpoint"] / LORA_WEIGHTS).exists()


def test_held_out_evaluation_scores_the_base_then_the_policy(small_config, tmp_path):
    """Base samples and scores come from the untrained model; later ones from the trained policy."""
    prompts = '["a red circle on a black background", "two blue squares on a white background"]'
    cfg = small_config("train.eval_every=2", "train.iterations=3", "train.sample_every=1000",
                       f"eval_prompts={prompts}", "eval_rewards=[saturation, brightness]", "train.learning_rate=0.05")
    trainer = Trainer(cfg, tmp_path)
    base_images = trainer.sample(cfg.eval_prompts, seed_key=1)
    first, second, third = [trainer.iteration(it) for it in range(3)]
    expected = {name: build_reward(name)(base_images, cfg.eval_prompts).mean().item()
                for name in ("brightness", "saturation")}
    assert first["base_evaluation"] == {"trained": 0, "prompts": "eval", "seeds": 1, "scores": expected}
    assert "evaluation" not in first and second["evaluation"]["trained"] == 2 and third["evaluation"]["trained"] == 3
    assert list(second["evaluation"]["scores"]) == ["brightness", "saturation"]  # training reward first, once
    assert second["evaluation"]["scores"]["brightness"] != expected["brightness"]  # the policy moved
    assert "base_evaluation" not in second


def test_resume_continues_exactly(small_config, tmp_path):
    cfg = small_config("train.iterations=4", "train.checkpoint_every=2")
    straight = Trainer(cfg, tmp_path / "straight").run(progress=False)

    interrupted = Trainer(cfg, tmp_path / "resumed")
    interrupted.iteration(0)
    interrupted.iteration(1)  # checkpoint after 2 iterations
    interrupted.iteration(2)  # done, but lost: the process "dies" before the next checkpoint
    resumed = Trainer(cfg, tmp_path / "resumed", resume=True)
    assert resumed.start_iteration == 2
    again = resumed.run(progress=False)
    for a, b in zip(straight[2:], again, strict=True):
        for key in METRICS:
            assert a[key] == b[key], key
        assert a["reward"] == b["reward"]
    iterations = [r["iteration"] for r in read_records(tmp_path / "resumed" / "records.jsonl")]
    assert iterations == [0, 1, 2, 3]  # the lost iteration 2 is not recorded twice


def test_lora_export_loads_in_diffusers_and_reproduces_the_tuned_model(small_config, tmp_path):
    cfg = small_config("train.iterations=2", "train.learning_rate=1e-2")
    trainer = Trainer(cfg, tmp_path)
    trainer.run(progress=False)
    folder = latest_checkpoint(tmp_path)
    fresh = build_model(cfg.model)
    base = build_model(cfg.model)
    fresh.transformer.load_lora_adapter(str(folder), prefix="transformer", weight_name=LORA_WEIGHTS)
    x = torch.randn(3, *fresh.latent_shape)
    s = torch.tensor([0.9, 0.5, 0.2])
    cond = fresh.encode_prompts(cfg.training_prompts()[:3])
    with torch.no_grad():
        tuned = trainer.model.velocity(x, s, cond)
        loaded = fresh.velocity(x, s, cond)
        original = base.velocity(x, s, cond)
    assert torch.allclose(loaded, tuned, atol=1e-5)
    assert not torch.allclose(loaded, original, atol=1e-4)


def test_kl_to_the_adapter_disabled_reference(small_config, tmp_path):
    cfg = small_config("algorithm.name=flowgrpo", "algorithm.kl_beta=0.1", "train.learning_rate=1e-2",
                       "train.optimizer_step=per_iteration")
    records = Trainer(cfg, tmp_path).run(progress=False)
    assert records[0]["kl"] == 0.0  # LoRA starts as the identity: policy == reference
    assert records[1]["kl"] > 0.0


def test_full_fine_tuning_saves_a_diffusers_model_and_resumes_exactly(small_config, tmp_path):
    from diffusers import FluxTransformer2DModel

    cfg = small_config("lora.enabled=false", "train.iterations=2", "train.checkpoint_every=1",
                       "train.learning_rate=1e-4")
    trainer = Trainer(cfg, tmp_path / "straight")
    before = [p.detach().clone() for p in trainer.model.transformer.parameters()]
    trainer.run(progress=False)
    trained = trainer.model.transformer.state_dict()
    assert any(not torch.equal(a, b) for a, b in zip(before, trained.values()))
    folder = latest_checkpoint(tmp_path / "straight") / "transformer"
    loaded = FluxTransformer2DModel.from_pretrained(folder).state_dict()  # stock diffusers loads it
    assert all(torch.equal(loaded[k], v) for k, v in trained.items())

    Trainer(cfg, tmp_path / "resumed").iteration(0)  # checkpoint after 1 iteration, then "dies"
    resumed = Trainer(cfg, tmp_path / "resumed", resume=True)
    assert resumed.start_iteration == 1
    resumed.run(progress=False)
    assert all(torch.equal(resumed.model.transformer.state_dict()[k], v) for k, v in trained.items())


def test_g2rpo_raises_a_reward_a_lora_can_move(tmp_path, small_config):
    cfg = small_config("train.learning_rate=1e-2", "train.iterations=8", "sampling.steps=16", "algorithm.group_size=6",
                       "train.optimizer_step=per_step")
    trainer = Trainer(cfg, tmp_path)
    prompts = cfg.training_prompts() * 4
    before = trainer.sample(prompts, seed_key=99).mean().item()
    records = trainer.run(progress=False)
    after = trainer.sample(prompts, seed_key=99).mean().item()
    assert after > before + 0.05, (before, after)
    assert records[-1]["reward"]["brightness"]["mean"] > records[0]["reward"]["brightness"]["mean"]


def test_policy_movement_starts_at_zero_grows_with_updates_and_survives_resume(small_config, tmp_path):
    """The LoRA starts as the identity, so the probe sees no movement before the first update; each
    record then says how far the velocity has moved from the base, and a resumed run measures
    against the same probe (the base's velocity is kept in the run folder)."""
    cfg = small_config("train.iterations=3", "train.checkpoint_every=2", "train.learning_rate=0.01")
    trainer = Trainer(cfg, tmp_path)
    assert trainer.policy_movement() == 0.0
    records = trainer.run(progress=False)
    moved = [r["policy_movement"] for r in records]
    assert 0 < moved[0] < moved[2]
    resumed = Trainer(cfg, tmp_path, resume=True)  # from the final checkpoint
    assert resumed.policy_movement() == pytest.approx(moved[2], rel=1e-5)
    frozen = Trainer(small_config("train.iterations=1", "train.learning_rate=1e-12"), tmp_path / "frozen")
    assert frozen.run(progress=False)[0]["policy_movement"] < 1e-6 * moved[0]


def test_a_cosine_schedule_decays_the_learning_rate_to_zero_and_resumes_on_it(small_config, tmp_path):
    cfg = small_config("train.lr_schedule=cosine", "train.learning_rate=1e-3", "train.iterations=4",
                       "train.checkpoint_every=2", "train.movement_probe=0")
    trainer = Trainer(cfg, tmp_path)
    assert [trainer.learning_rate(it) for it in range(4)] == pytest.approx([1e-3, 8.5355e-4, 5e-4, 1.4645e-4], rel=1e-4)
    records = trainer.run(progress=False)
    assert [r["learning_rate"] for r in records] == [trainer.learning_rate(it) for it in range(4)]
    assert trainer.optimizer.param_groups[0]["lr"] == trainer.learning_rate(3)  # what the last step used
    resumed = Trainer(cfg, tmp_path, resume=True)
    assert resumed.start_iteration == 4
    constant = Trainer(small_config("train.learning_rate=1e-3"), tmp_path / "constant")
    assert constant.learning_rate(0) == constant.learning_rate(1) == 1e-3


@pytest.mark.slow  # torch.compile's first calls on a CPU take tens of seconds
def test_compiled_training_agrees_with_eager(small_config, tmp_path):
    """train.compile compiles the transformer in place: the same parameter names (checkpoints and
    the LoRA export unchanged) and the same iteration up to float rounding (compiled kernels fuse
    and order sums differently from eager ones; rollout and update both run compiled, and the
    on-policy ratio measured 1 exactly on this CPU, but no more than rounding is promised)."""
    eager_trainer = Trainer(small_config("train.iterations=1"), tmp_path / "eager")
    eager = eager_trainer.iteration(0)
    trainer = Trainer(small_config("train.iterations=1", "train.compile=true"), tmp_path / "compiled")
    compiled = trainer.iteration(0)
    assert trainer.model.transformer._compiled_call_impl is not None  # it did compile
    assert [n for n, _ in trainer.model.transformer.named_parameters()] == \
        [n for n, _ in eager_trainer.model.transformer.named_parameters()]
    assert compiled["reward"]["brightness"]["mean"] == pytest.approx(eager["reward"]["brightness"]["mean"], abs=1e-5)
    assert compiled["onpolicy_ratio_error"] < 1e-6
    assert compiled["grad_norm"] == pytest.approx(eager["grad_norm"], rel=1e-3)


@pytest.mark.parametrize("when", ["rollout", "update"])
def test_a_stop_request_keeps_the_last_completed_iteration_and_resumes_exactly(small_config, tmp_path, when):
    """A cancel (engine/training/stopping.py): asked during iteration 2's rollout, the iteration is abandoned
    and the checkpoint holds 2 iterations; asked during its update, the iteration finishes and the
    checkpoint holds 3. Either way a resume from it continues exactly as a run never stopped."""
    from engine.training.stopping import StopRequest

    cfg = small_config("train.iterations=4", "train.checkpoint_every=1000")
    straight = Trainer(cfg, tmp_path / "straight").run(progress=False)
    stop = StopRequest()
    stopped = Trainer(cfg, tmp_path / "stopped", stop=stop)
    owner, name = (stopped.algorithm, "rollout") if when == "rollout" else (stopped, "update")
    original = getattr(owner, name)

    def asked(*args, **kwargs):  # rollout(runner, cond, noise, it), update(transitions, cond, it)
        if args[-1] == 2:
            stop.request()
        return original(*args, **kwargs)

    setattr(owner, name, asked)
    kept = 2 if when == "rollout" else 3
    assert [r["iteration"] for r in stopped.run(progress=False)] == list(range(kept))
    assert latest_checkpoint(tmp_path / "stopped").name == f"iter_{kept:06d}"
    resumed = Trainer(cfg, tmp_path / "stopped", resume=True)
    assert resumed.start_iteration == kept
    for a, b in zip(straight[kept:], resumed.run(progress=False), strict=True):
        assert [a[key] for key in METRICS] == [b[key] for key in METRICS] and a["reward"] == b["reward"]
    assert [r["iteration"] for r in read_records(tmp_path / "stopped" / "records.jsonl")] == [0, 1, 2, 3]
