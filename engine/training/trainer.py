"""The training loop: rollout, reward, advantages, policy update, records, checkpoints.

Runs on `accelerate` (device, mixed precision, multi-process data parallel where each process
owns whole groups, experiment trackers: engine/training/tracking.py), with LoRA through `peft` or full
fine-tuning, AdamW and grad-norm clipping. A LoRA checkpoint carries its model card (engine/training/model_card.py).

Data parallel gives the result of one process with the whole global batch: the batch's prompts are
drawn from (seed, iteration) alone and each process takes a contiguous slice; every group's noise
comes from its own generator keyed by its global index; whatever spans groups (Flow-GRPO's global
std, the records) is gathered; each process backprops the mean over its members and DDP averages
the gradients, which is the global mean since every process holds the same number of members.
"""
from __future__ import annotations

import contextlib
import math
import os
import shutil
import time
import warnings
from pathlib import Path

import numpy as np
import torch
from accelerate import Accelerator
from accelerate.utils import DistributedType
from tqdm.auto import tqdm

from engine.training import tracking
from engine.algorithms import build_algorithm
from engine.attribution import member_components
from engine.training.branches import BranchWriter
from engine.training.checkpoint import (checkpoint_dir, load_training_state, load_weights, optimizer_state, resume_checkpoint,
                               save_checkpoint)
from engine.config import Config, ConfigError
from engine.training.errors import NonFiniteError
from engine.training.model_card import CardFacts, lora_card
from engine.models import build_model
from engine.models.base import VelocityRunner
from engine.method.old_policy import OldPolicy
from engine.training.records import JsonlSink, RecordSink, non_finite, save_images
from engine.rewards import build_reward
from engine.rewards.base import can_score
from engine.method.rollout import PROMPT_STREAM, RolloutNoise, normal_tensors, ode_images, seeded_generator
from engine.method.sampling import ode_step
from engine.training.stopping import StopRequest, Stopped
from engine.method.update import forward_loss_backward, policy_loss_backward


class Trainer:
    def __init__(self, cfg: Config, out_dir: str | Path, sink: RecordSink | None = None, resume: bool = False,
                 accelerator: Accelerator | None = None, run_name: str | None = None, stop: StopRequest | None = None):
        """`run_name`: the run's name at the experiment trackers (default: the run folder's name).
        `stop`: a request to stop early with a checkpoint of the last completed iteration (engine/training/stopping.py)."""
        self.cfg, self.out_dir = cfg, Path(out_dir)
        self.accelerator = accelerator or Accelerator(
            mixed_precision=cfg.train.mixed_precision, log_with=cfg.train.log_with or None,
            project_dir=self.out_dir / tracking.FOLDER)
        device = self.accelerator.device
        launched = os.environ.get("ACCELERATE_MIXED_PRECISION")  # `accelerate launch` sets it
        if launched and launched != self.accelerator.mixed_precision and self.accelerator.is_main_process:
            warnings.warn(f"the launcher asked for mixed precision {launched!r}, the config's train.mixed_precision "
                          f"{self.accelerator.mixed_precision!r} is used: set it with --set train.mixed_precision=...")
        self.sharded = self.accelerator.distributed_type == DistributedType.FSDP
        if self.sharded and cfg.lora.enabled:
            raise ValueError("FSDP is for full fine-tuning (lora.enabled=false); train a LoRA with DDP")
        torch.manual_seed(cfg.train.seed)  # LoRA initialisation

        self.model = build_model(cfg.model, full_finetune=not cfg.lora.enabled).to(device)
        transformer = self.model.transformer
        if cfg.lora.enabled:
            from diffusers.training_utils import cast_training_params
            from peft import LoraConfig

            transformer.requires_grad_(False)
            transformer.add_adapter(LoraConfig(r=cfg.lora.rank, lora_alpha=cfg.lora.alpha, init_lora_weights=True,
                                               target_modules=cfg.lora.target_modules or self.model.lora_target_modules))
            cast_training_params(transformer, torch.float32)  # LoRA weights train in float32 over a bf16 base
        else:
            transformer.requires_grad_(True)
        quiet = not self.accelerator.is_main_process
        folder = resume_checkpoint(self.out_dir, cfg.lora.enabled, say=(lambda _: None) if quiet else print) if resume else None
        self.good_checkpoints = [folder] if folder else []  # saved with finite values: named if the run goes non-finite
        if folder is not None:  # into the plain module, before a wrapper (FSDP) shards it
            load_weights(folder, transformer, cfg.lora.enabled)
        # Full checkpoints are diffusers model folders; FSDP renames the class, so keep its config now.
        self.transformer_config = None if cfg.lora.enabled else transformer.to_json_string()
        t = cfg.train
        optimizer = torch.optim.AdamW([p for p in transformer.parameters() if p.requires_grad], lr=t.learning_rate,
                                      betas=tuple(t.betas), weight_decay=t.weight_decay)
        self.wrapped, self.optimizer = self.accelerator.prepare(transformer, optimizer)
        self.model.use_wrapped_transformer(self.wrapped)
        if t.compile:  # in place: parameter names, the adapter and checkpoints stay as they are
            if self.sharded:
                raise ConfigError("train.compile: not supported under FSDP; leave it off")
            transformer.compile()
        # Taken after prepare: FSDP replaces the parameters, and clips only the wrapper's own.
        self.params = [p for p in self.wrapped.parameters() if p.requires_grad]

        self.algorithm = build_algorithm(cfg)
        self.rewards = [build_reward(r.name, r.model) for r in cfg.rewards]
        self.reward_weights = torch.tensor([r.weight for r in cfg.rewards])
        self.prompt_pool = cfg.training_prompts()
        if t.eval_every:
            self.eval_prompts = cfg.evaluation_prompts()
            self.eval_rewards = [next((r for r in self.rewards if r.name == name), None) or build_reward(name)
                                 for name in cfg.evaluation_rewards()]
        if cfg.model.free_text_encoders:  # every prompt the run needs, encoded once; then the encoders go
            self.model.free_text_encoders([*self.prompt_pool, *cfg.sample_prompts, *getattr(self, "eval_prompts", [])])
        self.runner = VelocityRunner(self.model, t.micro_batch, self.accelerator.autocast)
        # its own runner, so the probe's calls are not counted as the iteration's model evaluations
        self.probe_runner = VelocityRunner(self.model, t.micro_batch, self.accelerator.autocast)
        self.stop = stop or StopRequest()
        self.runner.before_call = self.stop.check

        # DiffusionNFT's EMA old policy (nft_old_decay > 0): rollouts sample with it, the loss contrasts against it
        self.old_policy = OldPolicy(self.params, cfg.algorithm.nft_old_decay) if cfg.algorithm.nft_old_decay else None
        if self.old_policy and self.sharded:  # each process would keep only its shard's copy
            raise ConfigError("algorithm.nft_old_decay: the EMA old policy is not supported under FSDP; use 0")
        self.start_iteration = 0
        if folder is not None:
            self.start_iteration = load_training_state(folder, self.wrapped, self.optimizer, self.sharded, self.old_policy)
        self.saved_through = self.start_iteration  # the iterations the newest checkpoint holds
        self.is_main = self.accelerator.is_main_process
        self.probe = self.movement_probe() if t.movement_probe else None
        if sink is None and self.is_main:
            sink = JsonlSink(self.out_dir / "records.jsonl", self.start_iteration)
        self.sink = sink
        # G²RPO's branches, every train.branch_every iterations, for the Monitor's branch explorer
        self.branches = BranchWriter(self.out_dir, t.branch_every, [r.name for r in self.rewards], self.is_main,
                                     self.start_iteration)
        self.tracking = tracking.Tracking(self.accelerator, cfg.to_dict(), self.out_dir, run_name or self.out_dir.name)
        # What the LoRA's model card says the run measured (engine/training/model_card.py), from the records kept so far
        self.card_facts = (CardFacts.from_jsonl(self.out_dir / "records.jsonl", self.start_iteration)
                           if self.is_main and cfg.lora.enabled else None)

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
        noise = torch.randn((len(prompts), *self.model.latent_shape), generator=seeded_generator(self.cfg.train.seed, seed_key, 7))
        return ode_images(self.runner, prompts, noise, self.algorithm.grid)

    def evaluate(self, trained: int) -> dict:
        """Every evaluation reward's mean on the eval prompts, one fixed noise per prompt.

        Like `save_samples`, every process runs it (a sharded model's forward is collective)."""
        images = self.sample(self.eval_prompts, seed_key=1)
        scores = {r.name: r(images, self.eval_prompts).mean().item() for r in self.eval_rewards}
        return {"trained": trained, "prompts": "eval", "seeds": 1, "scores": scores}

    @torch.no_grad()
    def movement_probe(self) -> dict:
        """A fixed batch of states (x, s, prompt) on the base model's own ODE trajectories, with the
        base model's velocity there: `policy_movement` compares the current velocity against it.

        Made once at the start of a run and kept in the run folder, so a resumed run (a full
        fine-tune included, whose base weights are gone by then) measures against the same base."""
        path = self.out_dir / "movement_probe.pt"
        if path.exists():
            device = self.accelerator.device  # "cpu:0" under accelerate on CPUs, which torch.load cannot map to
            return torch.load(path, map_location="cpu" if device.type == "cpu" else device)
        n, prompts, grid = self.cfg.train.movement_probe, self.cfg.sample_prompts, self.algorithm.grid
        rows = [prompts[i % len(prompts)] for i in range(n)]
        at = torch.linspace(0, self.cfg.sampling.steps - 1, n).round().long().to(self.accelerator.device)  # a grid point per row
        x = torch.randn((n, *self.model.latent_shape), generator=seeded_generator(self.cfg.train.seed, 0, 8))
        cond = {k: v.to(self.accelerator.device) for k, v in self.model.encode_prompts(rows).items()}
        x, idx = x.to(self.accelerator.device), torch.arange(n, device=self.accelerator.device)
        with self.reference() if self.cfg.lora.enabled else contextlib.nullcontext():
            states = torch.empty_like(x)
            for j in range(int(at.max()) + 1):  # the base model's ODE, keeping each row's state at its point
                states[at == j] = x[at == j]
                x = ode_step(x, self.probe_runner(x, grid[j].to(x), cond, idx), grid[j], grid[j + 1])
            s = grid[at].to(x)
            probe = {"x": states, "s": s, "cond": cond, "v_base": self.probe_runner(states, s, cond, idx)}
        if self.is_main:
            self.out_dir.mkdir(parents=True, exist_ok=True)
            torch.save(probe, path)
        return probe

    @torch.no_grad()
    def policy_movement(self) -> float:
        """||v_theta - v_base|| / ||v_base|| on the probe batch: how far the policy has moved, so a run
        that did not move is told apart from one that moved without gain."""
        p = self.probe
        v = self.probe_runner(p["x"], p["s"], p["cond"], torch.arange(len(p["x"]), device=p["x"].device))
        return (torch.linalg.vector_norm(v.float() - p["v_base"].float())
                / torch.linalg.vector_norm(p["v_base"].float())).item()

    def save_samples(self, done: int) -> tuple[list[str], dict[str, list]]:
        """Every process samples; the main one writes the images. Returns their paths and each
        training (and evaluation) reward's score of each image (None where not finite), which the
        UI writes under the samples."""
        images = self.sample(self.cfg.sample_prompts)
        folder = Path("samples") / f"iter_{done:06d}"
        names = [f"{i:02d}.png" for i in range(len(images))]
        if self.is_main:
            save_images(images, self.out_dir / folder, names)
        scores = {r.name: [v if math.isfinite(v) else None for v in r(images, self.cfg.sample_prompts).tolist()]
                  for r in self.sample_scorers()}
        return [str(folder / name) for name in names], scores

    def sample_scorers(self) -> list:
        """The rewards that score the samples: the training and evaluation ones that can read the
        sample prompts (the config checks the world's rewards against the training and eval prompts only)."""
        rewards = {r.name: r for r in [*self.rewards, *getattr(self, "eval_rewards", [])]}
        return [r for name, r in rewards.items() if can_score(name, self.cfg.sample_prompts)]

    def gather(self, t: torch.Tensor) -> torch.Tensor:
        """t of every process concatenated along dim 0 in process order: the global batch's."""
        if self.accelerator.num_processes == 1:
            return t
        return self.accelerator.gather(t.contiguous().to(self.accelerator.device)).to(t.device)

    def acting(self):
        """The policy rollouts sample with: the old policy where one is kept, else the trained one."""
        return self.old_policy.active() if self.old_policy else contextlib.nullcontext()

    def save_checkpoint(self, done: int, record: dict | None = None) -> Path:
        """Every process takes part (under FSDP gathering the full weights and optimizer state is
        collective), the main process writes, and nobody goes on before the checkpoint is complete."""
        acc = self.accelerator
        if self.cfg.lora.enabled:  # only the adapter: no need to gather the whole model
            named = acc.unwrap_model(self.wrapped).named_parameters()
            weights = {n: p.detach().cpu() for n, p in named if p.requires_grad}
        else:
            weights = acc.get_state_dict(self.wrapped)  # full (unsharded) on the main process
        optimizer = optimizer_state(self.wrapped, self.optimizer, self.sharded)
        if self.is_main:
            # the LoRA's card says what the run measured up to this iteration
            card = self.card_facts and str(lora_card(self.cfg.to_dict(), self.card_facts.with_record(record), done))
            save_checkpoint(self.out_dir, done, self.model, weights, optimizer, self.cfg.to_dict(),
                            self.transformer_config, self.old_policy.state() if self.old_policy else None, card)
        acc.wait_for_everyone()
        self.good_checkpoints.append(checkpoint_dir(self.out_dir, done))
        self.saved_through = done
        return self.good_checkpoints[-1]

    def keep_on_stop(self, done: int) -> Path | None:
        """After a stop request: a checkpoint of the `done` completed iterations, unless the newest
        checkpoint already holds them (or nothing was done); the sink is told of it if it can be."""
        self.stop.untouched = False  # a second request must not interrupt the save
        if done <= max(self.saved_through, 0):
            return None
        folder = self.save_checkpoint(done)
        if self.is_main and hasattr(self.sink, "checkpoint"):
            self.sink.checkpoint(done, str(folder.relative_to(self.out_dir)))
        return folder

    def require_finite(self, ok: bool, it: int, what: str) -> None:
        """Stop the run at iteration `it` if `what` is NaN or infinite, naming the last good checkpoint;
        nothing of the iteration is recorded. (Every process reaches the same verdict.)"""
        if ok:
            return
        last = self.good_checkpoints[-1] if self.good_checkpoints else None
        where = (f"the last good checkpoint (all finite) is {last.relative_to(self.out_dir)}: resume from it with a "
                 "smaller train.learning_rate (or another reward)" if last else "no checkpoint was saved before it")
        raise NonFiniteError(f"iteration {it}: {what} is not finite (NaN or inf); the run stopped and nothing of "
                             f"this iteration was stored; {where}")

    def require_finite_record(self, record: dict, it: int) -> None:
        """The last check before an iteration is recorded: any NaN or inf in it (a diagnostic too)
        stops the run, and the checkpoint this iteration saved is dropped (it is not good)."""
        bad = non_finite(record)
        if not bad:
            return
        if record.get("checkpoint"):
            self.good_checkpoints.pop()
            if self.is_main:
                shutil.rmtree(self.out_dir / record["checkpoint"], ignore_errors=True)
        more = f" (and {len(bad) - 1} more values)" if len(bad) > 1 else ""
        self.require_finite(False, it, f"{bad[0]}{more}")

    # ------------------------------------------------------------------ one iteration

    def learning_rate(self, it: int) -> float:
        """The learning rate of iteration `it`: a function of the iteration alone, so a resumed run
        has no scheduler state to restore."""
        t = self.cfg.train
        if t.lr_schedule == "cosine":
            return t.learning_rate * 0.5 * (1 + math.cos(math.pi * it / t.iterations))
        return t.learning_rate

    def iteration(self, it: int) -> dict:
        cfg, acc, runner = self.cfg, self.accelerator, self.runner
        self.stop.untouched = True  # until the first optimizer step, a stop request abandons the iteration
        for group in self.optimizer.param_groups:
            group["lr"] = self.learning_rate(it)
        base = {}  # the base model's samples and scores, before the first update changes it
        if it == 0 and self.start_iteration == 0:
            base["base_samples"], base["base_sample_scores"] = self.save_samples(0)
            if cfg.train.eval_every:
                base["base_evaluation"] = self.evaluate(0)
        start = time.perf_counter()
        runner.reset_counters()
        # The global batch, drawn alike on every process; this process owns prompts first .. first + P - 1.
        P, pool, seed = cfg.train.prompts_per_iteration, self.prompt_pool, cfg.train.seed
        batch = [pool[i] for i in torch.randint(len(pool), (P * acc.num_processes,),
                                                generator=seeded_generator(seed, it, PROMPT_STREAM)).tolist()]
        first = P * acc.process_index
        prompts = batch[first:first + P]
        cond = {k: v.to(acc.device) for k, v in self.model.encode_prompts(prompts).items()}

        with torch.inference_mode(), self.acting():
            rollout = self.algorithm.rollout(runner, cond, RolloutNoise.seeded(seed, it, first, P), it)
        rollout = normal_tensors(rollout)  # the update trains through its states
        rollout_evals, rollout_model_s = runner.evaluations, runner.seconds
        t_rollout = time.perf_counter()

        image_prompts = [prompts[i] for i in rollout.prompt_idx.tolist()]
        rewards = torch.stack([reward(rollout.images, image_prompts) for reward in self.rewards])
        finite = torch.isfinite(rewards).all(1).float()[None]  # [1, M]: each reward finite on this process
        for m, ok in enumerate(self.gather(finite).min(0).values.tolist()):
            self.require_finite(ok == 1, it, f"reward {self.rewards[m].name!r}")
        t_reward = time.perf_counter()

        # The record describes the global batch: its prompts, and statistics over every process.
        record = {"iteration": it, "prompts": batch, **base}
        record.update(self.algorithm.advantages(rollout, rewards, self.reward_weights, self.gather))
        if "g2rpo" in record:  # each verifier's member scores: where each step's variance goes, per property
            record["g2rpo"].update(member_components(rollout, image_prompts, self.gather))
        if rollout.forward is not None:
            record.update(self.update_forward(rollout, cond, it))
        else:
            record.update(self.update(rollout.transitions, cond, it))
        self.require_finite(np.isfinite(record["loss"]), it, "the loss")
        weights_ok = torch.stack([torch.isfinite(p).all() for p in self.params]).all().float().reshape(1, 1)
        self.require_finite(bool(self.gather(weights_ok).min()), it, "a trained weight")
        t_train = time.perf_counter()

        # Reward statistics on the finest granularity (the only one for the baselines).
        lambdas = rollout.info.get("granularities", [1])
        finest = rewards.reshape(len(rewards), len(lambdas), -1)[:, lambdas.index(min(lambdas))]
        finest = self.gather(finest.T).T
        record["reward"] = {r.name: {"mean": finest[m].mean().item(), "std": finest[m].std().item()}
                            for m, r in enumerate(self.rewards)}
        record["trained_steps"] = [t.step for t in rollout.transitions]
        record["learning_rate"] = self.learning_rate(it)
        evals = self.gather(torch.tensor([[rollout_evals, runner.evaluations - rollout_evals]])).sum(0).tolist()
        record["model_evaluations"] = {"rollout": evals[0], "train": evals[1]}
        if self.probe is not None:
            record["policy_movement"] = self.policy_movement()
        done = it + 1
        if done % cfg.train.sample_every == 0 or done == cfg.train.iterations:
            record["samples"], record["sample_scores"] = self.save_samples(done)
        if cfg.train.eval_every and (done % cfg.train.eval_every == 0 or done == cfg.train.iterations):
            record["evaluation"] = self.evaluate(done)
        if done % cfg.train.checkpoint_every == 0 or done == cfg.train.iterations:
            record["checkpoint"] = str(self.save_checkpoint(done, record).relative_to(self.out_dir))
        end = time.perf_counter()
        record["time"] = {"rollout": t_rollout - start, "reward": t_reward - t_rollout, "train": t_train - t_reward,
                          "model_calls": runner.seconds, "rollout_model_calls": rollout_model_s, "total": end - start}
        self.require_finite_record(record, it)
        if "g2rpo" in record and self.branches.due(it):
            self.branches.write(it, rollout.images, rollout.groups, first, batch, record["g2rpo"])
        if self.sink is not None:
            self.sink.write(record)
        self.tracking.log(record)
        if self.card_facts is not None:
            self.card_facts.add(record)
        return record

    def optimizer_step(self, it: int) -> float:
        """Clip, check and take one optimizer step; returns the gradient norm before clipping. A
        non-finite norm stops the run before the step could spoil the weights."""
        norm = float(self.accelerator.clip_grad_norm_(self.params, self.cfg.train.max_grad_norm))
        self.require_finite(np.isfinite(norm), it, "the gradient norm")
        self.stop.untouched = False  # from here the weights are no longer the last iteration's
        self.optimizer.step()
        self.optimizer.zero_grad()
        return norm

    def update(self, transitions, cond, it: int = 0) -> dict:
        """One optimizer step per trained step ("per_step") or one for the iteration; a non-finite
        gradient stops the run before the step could spoil the weights."""
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
                grad_norms.append(self.optimizer_step(it))
        out = {key: float(np.mean([s[key] for s in stats])) for key in stats[0] if key not in ("ratio_min", "ratio_max")}
        out["ratio_min"] = min(s["ratio_min"] for s in stats)
        out["ratio_max"] = max(s["ratio_max"] for s in stats)
        # Before any optimizer step the policy is the rollout policy: this must be exactly 0.
        out["onpolicy_ratio_error"] = max(abs(stats[0]["ratio_min"] - 1), abs(stats[0]["ratio_max"] - 1))
        out["grad_norm"] = float(np.mean(grad_norms))  # of the averaged gradient: alike on every process
        out["grad_norm_max"] = float(np.max(grad_norms))
        return self.reduce_stats(out)

    def update_forward(self, rollout, cond, it: int = 0) -> dict:
        """A forward-process update (DiffusionNFT): one optimizer step per drawn time ("per_step")
        or one for the iteration, with the same non-finite gradient check."""
        cfg, a = self.cfg, self.cfg.algorithm
        grad_norms = []

        def step():
            grad_norms.append(self.optimizer_step(it))

        self.optimizer.zero_grad()
        per_step = cfg.train.optimizer_step == "per_step"
        out = forward_loss_backward(self.runner, rollout.forward, rollout.prompt_idx, cond, self.algorithm.grid,
                                    a.nft_beta, a.adv_clamp, a.kl_beta, self.accelerator.backward, self.reference,
                                    step=step if per_step else None, old=self.acting)
        if not per_step:
            step()
        if self.old_policy:
            self.old_policy.update()
        out["grad_norm"], out["grad_norm_max"] = float(np.mean(grad_norms)), float(np.max(grad_norms))
        return self.reduce_stats(out)

    def reduce_stats(self, out: dict) -> dict:
        """Per-process statistics over the global batch: extremes of the extremes, means of the means
        (every process holds the same number of members, so that is the global mean)."""
        if self.accelerator.num_processes == 1:
            return out
        keys = list(out)
        values = self.gather(torch.tensor([[out[k] for k in keys]], dtype=torch.float64))  # [processes, keys]
        reduce = {"ratio_min": torch.min, "ratio_max": torch.max, "onpolicy_ratio_error": torch.max,
                  "grad_norm_max": torch.max, "old_deviation_first": torch.max}
        return {k: float(reduce.get(k, torch.mean)(values[:, i])) for i, k in enumerate(keys)}

    # ------------------------------------------------------------------ the run

    def run(self, progress: bool = True) -> list[dict]:
        records = []
        bar = tqdm(range(self.start_iteration, self.cfg.train.iterations), initial=self.start_iteration,
                   total=self.cfg.train.iterations, disable=not (progress and self.is_main), desc=self.cfg.algorithm.name)
        completed = False
        try:
            for it in bar:
                try:
                    record = self.iteration(it)
                except Stopped:  # asked to stop before the iteration changed a weight: keep the last one
                    self.keep_on_stop(it)
                    break
                records.append(record)
                bar.set_postfix({name: f"{v['mean']:.4f}" for name, v in record["reward"].items()})
                if self.stop.requested:  # asked during the update: this iteration finished, keep it
                    self.keep_on_stop(it + 1)
                    break
            else:
                completed = True
        finally:
            self.tracking.finish(completed)
        return records
