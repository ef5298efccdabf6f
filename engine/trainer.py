"""The training loop: rollout, reward, advantages, policy update, records, checkpoints.

Runs on `accelerate` (device, mixed precision, multi-process data parallel where each process
owns whole groups), with LoRA through `peft` or full fine-tuning, AdamW and grad-norm clipping.
"""
from __future__ import annotations

import contextlib
import time
from pathlib import Path

import numpy as np
import torch
from accelerate import Accelerator
from tqdm.auto import tqdm

from engine.algorithms import build_algorithm
from engine.checkpoint import latest_checkpoint, load_checkpoint, save_checkpoint
from engine.config import Config
from engine.models import build_model
from engine.models.base import VelocityRunner
from engine.records import JsonlSink, RecordSink, save_images
from engine.rewards import build_reward
from engine.rollout import integrate_ode
from engine.update import policy_loss_backward


def seeded_generator(*keys: int) -> torch.Generator:
    """A CPU generator determined by (seed, iteration, process, ...): resuming at iteration n
    draws exactly the noise the uninterrupted run drew there, with no RNG state to carry."""
    return torch.Generator().manual_seed(int(np.random.SeedSequence(list(keys)).generate_state(1)[0]))


class Trainer:
    def __init__(self, cfg: Config, out_dir: str | Path, sink: RecordSink | None = None, resume: bool = False,
                 accelerator: Accelerator | None = None):
        self.cfg, self.out_dir = cfg, Path(out_dir)
        self.accelerator = accelerator or Accelerator(mixed_precision=cfg.train.mixed_precision)
        device = self.accelerator.device
        torch.manual_seed(cfg.train.seed)  # LoRA initialisation

        self.model = build_model(cfg.model).to(device)
        transformer = self.model.transformer
        if cfg.lora.enabled:
            from peft import LoraConfig

            transformer.requires_grad_(False)
            transformer.add_adapter(LoraConfig(r=cfg.lora.rank, lora_alpha=cfg.lora.alpha, init_lora_weights=True,
                                               target_modules=cfg.lora.target_modules or self.model.lora_target_modules))
        else:
            transformer.requires_grad_(True)
        self.params = [p for p in transformer.parameters() if p.requires_grad]
        t = cfg.train
        optimizer = torch.optim.AdamW(self.params, lr=t.learning_rate, betas=tuple(t.betas), weight_decay=t.weight_decay)
        wrapped, self.optimizer = self.accelerator.prepare(transformer, optimizer)
        self.model.use_wrapped_transformer(wrapped)

        self.algorithm = build_algorithm(cfg)
        self.rewards = [build_reward(r.name) for r in cfg.rewards]
        self.reward_weights = torch.tensor([r.weight for r in cfg.rewards])
        self.prompt_pool = cfg.training_prompts()
        if t.eval_every:
            self.eval_prompts = cfg.evaluation_prompts()
            self.eval_rewards = [next((r for r in self.rewards if r.name == name), None) or build_reward(name)
                                 for name in cfg.evaluation_rewards()]
        self.runner = VelocityRunner(self.model, t.micro_batch, self.accelerator.autocast)

        self.start_iteration = 0
        if resume and (folder := latest_checkpoint(self.out_dir)) is not None:
            self.start_iteration = load_checkpoint(folder, self.model, self.optimizer)
        self.is_main = self.accelerator.is_main_process
        if sink is None and self.is_main:
            sink = JsonlSink(self.out_dir / "records.jsonl", self.start_iteration)
        self.sink = sink

    # ------------------------------------------------------------------ helpers

    @contextlib.contextmanager
    def reference(self):
        """The KL reference: the same network with its LoRA disabled."""
        self.model.transformer.disable_adapters()
        try:
            yield
        finally:
            self.model.transformer.enable_adapters()

    @torch.no_grad()
    def sample(self, prompts: list[str], seed_key: int = 0) -> torch.Tensor:
        """Deterministic ODE samples of the current policy, the same noise every call."""
        cond = self.model.encode_prompts(prompts)
        rows = torch.arange(len(prompts), device=self.accelerator.device)
        noise = torch.randn((len(prompts), *self.model.latent_shape), generator=seeded_generator(self.cfg.train.seed, seed_key, 7))
        steps = self.cfg.sampling.steps
        x = integrate_ode(self.runner, noise.to(self.accelerator.device), cond, rows, self.algorithm.grid,
                          [list(range(steps + 1))] * len(prompts))
        return self.model.decode(x)

    def evaluate(self, trained: int) -> dict:
        """Every evaluation reward's mean on the eval prompts, one fixed noise per prompt."""
        images = self.sample(self.eval_prompts, seed_key=1)
        scores = {r.name: r(images, self.eval_prompts).mean().item() for r in self.eval_rewards}
        return {"trained": trained, "prompts": "eval", "seeds": 1, "scores": scores}

    def save_samples(self, done: int) -> list[str]:
        images = self.sample(self.cfg.sample_prompts)
        names = [f"{i:02d}.png" for i in range(len(images))]
        paths = save_images(images, self.out_dir / "samples" / f"iter_{done:06d}", names)
        return [str(p.relative_to(self.out_dir)) for p in paths]

    # ------------------------------------------------------------------ one iteration

    def iteration(self, it: int) -> dict:
        cfg, acc, runner = self.cfg, self.accelerator, self.runner
        base = {}  # the base model's samples and scores, before the first update changes it
        if self.is_main and it == 0 and self.start_iteration == 0:
            base["base_samples"] = self.save_samples(0)
            if cfg.train.eval_every:
                base["base_evaluation"] = self.evaluate(0)
        start = time.perf_counter()
        runner.reset_counters()
        generator = seeded_generator(cfg.train.seed, it, acc.process_index)
        P, pool = cfg.train.prompts_per_iteration, self.prompt_pool
        prompts = [pool[i] for i in torch.randint(len(pool), (P,), generator=generator).tolist()]
        cond = {k: v.to(acc.device) for k, v in self.model.encode_prompts(prompts).items()}

        with torch.no_grad():
            rollout = self.algorithm.rollout(runner, cond, P, generator, it)
        rollout_evals, rollout_model_s = runner.evaluations, runner.seconds
        t_rollout = time.perf_counter()

        image_prompts = [prompts[i] for i in rollout.prompt_idx.tolist()]
        rewards = torch.stack([reward(rollout.images, image_prompts) for reward in self.rewards])
        t_reward = time.perf_counter()

        record = {"iteration": it, "prompts": prompts, **base}
        record.update(self.algorithm.advantages(rollout, rewards, self.reward_weights))
        record.update(self.update(rollout.transitions, cond))
        t_train = time.perf_counter()

        # Reward statistics on the finest granularity (the only one for the baselines).
        finest = rewards.reshape(len(rewards), rollout.groups[0], -1)[:, 0]
        finest = acc.gather(finest.T.contiguous().to(acc.device)).T.cpu()
        record["reward"] = {r.name: {"mean": finest[m].mean().item(), "std": finest[m].std().item()}
                            for m, r in enumerate(self.rewards)}
        record["trained_steps"] = [t.step for t in rollout.transitions]
        record["model_evaluations"] = {"rollout": rollout_evals, "train": runner.evaluations - rollout_evals}
        done = it + 1
        if self.is_main and (done % cfg.train.sample_every == 0 or done == cfg.train.iterations):
            record["samples"] = self.save_samples(done)
        if self.is_main and cfg.train.eval_every and (done % cfg.train.eval_every == 0 or done == cfg.train.iterations):
            record["evaluation"] = self.evaluate(done)
        if done % cfg.train.checkpoint_every == 0 or done == cfg.train.iterations:
            acc.wait_for_everyone()
            if self.is_main:
                folder = save_checkpoint(self.out_dir, done, self.model, cfg.lora.enabled, self.optimizer, cfg.to_dict())
                record["checkpoint"] = str(folder.relative_to(self.out_dir))
        end = time.perf_counter()
        record["time"] = {"rollout": t_rollout - start, "reward": t_reward - t_rollout, "train": t_train - t_reward,
                          "model_calls": runner.seconds, "rollout_model_calls": rollout_model_s, "total": end - start}
        if self.sink is not None:
            self.sink.write(record)
        return record

    def update(self, transitions, cond) -> dict:
        """One optimizer step per trained step ("per_step") or one for the iteration."""
        cfg, acc = self.cfg, self.accelerator
        per_step = cfg.train.optimizer_step == "per_step"
        scale = 1.0 if per_step else 1.0 / len(transitions)
        stats, grad_norms = [], []
        self.optimizer.zero_grad()
        for i, t in enumerate(transitions):
            stats.append(policy_loss_backward(
                self.runner, t, cond, self.algorithm.grid, self.algorithm.sigmas, cfg.algorithm.clip_range,
                cfg.algorithm.kl_beta, scale, acc.backward, self.reference))
            if per_step or i == len(transitions) - 1:
                grad_norms.append(float(acc.clip_grad_norm_(self.params, cfg.train.max_grad_norm)))
                self.optimizer.step()
                self.optimizer.zero_grad()
        out = {key: float(np.mean([s[key] for s in stats])) for key in stats[0] if key not in ("ratio_min", "ratio_max")}
        out["ratio_min"] = min(s["ratio_min"] for s in stats)
        out["ratio_max"] = max(s["ratio_max"] for s in stats)
        # Before any optimizer step the policy is the rollout policy: this must be exactly 0.
        out["onpolicy_ratio_error"] = max(abs(stats[0]["ratio_min"] - 1), abs(stats[0]["ratio_max"] - 1))
        out["grad_norm"] = float(np.mean(grad_norms))
        out["grad_norm_max"] = float(np.max(grad_norms))
        return out

    # ------------------------------------------------------------------ the run

    def run(self, progress: bool = True) -> list[dict]:
        records = []
        bar = tqdm(range(self.start_iteration, self.cfg.train.iterations), initial=self.start_iteration,
                   total=self.cfg.train.iterations, disable=not (progress and self.is_main), desc=self.cfg.algorithm.name)
        for it in bar:
            record = self.iteration(it)
            records.append(record)
            bar.set_postfix({name: f"{v['mean']:.4f}" for name, v in record["reward"].items()})
        return records
