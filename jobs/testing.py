"""Helpers the tests and the benchmark share: small configs, throwaway PostgreSQL databases, Redis
reachability, and a worker running as a real subprocess."""
from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
# PostgreSQL to create throwaway databases on (trust auth on localhost by default).
POSTGRES_ADMIN_URL = os.environ.get("G2RPO_TEST_POSTGRES", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
REDIS_URL = os.environ.get("G2RPO_TEST_REDIS", "redis://127.0.0.1:6379/0")

# A G²RPO config that trains in ~0.1-0.3 s per iteration on a CPU (with the random model).
SMALL = ["model.name=tiny-flux", "rewards=[{name: brightness}]", 'prompts=["a red circle on a black background"]',
         "algorithm.group_size=3", "algorithm.branch_steps=[0,1]", "algorithm.granularities=[1,2]", "sampling.steps=6",
         "train.eval_every=1", 'eval_prompts=["a blue square on a white background"]', "eval_rewards=[saturation]",
         "train.prompts_per_iteration=1"]


def wait_for(predicate, timeout: float, interval: float = 0.1, message: str = "condition"):
    """Poll until predicate() is truthy; returns its value or raises TimeoutError."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout} s waiting for {message}")
        time.sleep(interval)


@contextlib.contextmanager
def throwaway_postgres(admin_url: str = POSTGRES_ADMIN_URL):
    """Yield the URL of a new empty database (dropped afterwards), or None if PostgreSQL is not reachable."""
    from sqlalchemy import create_engine, text

    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT", connect_args={"connect_timeout": 3})
    name = f"g2rpo_test_{uuid.uuid4().hex[:12]}"
    try:
        with admin.connect() as c:
            c.execute(text(f"CREATE DATABASE {name}"))
    except Exception:
        admin.dispose()
        yield None
        return
    try:
        yield admin.url.set(database=name).render_as_string(hide_password=False)
    finally:
        from jobs import db

        db.dispose_all()
        with admin.connect() as c:
            c.execute(text(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
        admin.dispose()


def redis_reachable(url: str = REDIS_URL) -> bool:
    try:
        import redis

        return bool(redis.Redis.from_url(url, socket_connect_timeout=2).ping())
    except Exception:
        return False


class WorkerProcess:
    """`python -m jobs.worker` as a subprocess with the given environment (its log in log_path)."""

    def __init__(self, env: dict, log_path: Path):
        self.env, self.log_path, self.proc = env, Path(log_path), None

    def start(self, timeout: float = 60) -> "WorkerProcess":
        """Start it and wait until it consumes (stopping it earlier would kill it mid-import)."""
        env = {**os.environ, **self.env, "OMP_NUM_THREADS": "1"}  # 1 thread: steady on a busy small CPU
        ready = self.log().count("worker ready") + 1
        with open(self.log_path, "a") as log:
            self.proc = subprocess.Popen([sys.executable, "-m", "jobs.worker"], cwd=REPO, env=env, stdout=log,
                                         stderr=subprocess.STDOUT)
        wait_for(lambda: self.proc.poll() is not None or self.log().count("worker ready") >= ready, timeout,
                 message="the worker to start")
        if self.proc.poll() is not None:
            raise RuntimeError(f"the worker exited with code {self.proc.returncode}:\n{self.log()[-3000:]}")
        return self

    def kill(self) -> None:
        """SIGKILL, as the OOM killer or a power cut would (reaped, so its pid is really gone)."""
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()

    def stop(self, timeout: float = 20) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.kill()
        return self.proc.returncode

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


def fake_record(iteration: int, prompts: int = 1, k: int = 8, lambdas: int = 3, group: int = 12, models: int = 1,
                rng=None, checkpoint: bool = False) -> dict:
    """A G²RPO record shaped like the engine's (default sizes: the paper's K=8, Λ=3, G=12), its
    member arrays float32 values as the engine's tensors give them."""
    import random

    import numpy as np

    rng = rng or random.Random(iteration)
    arrays = np.random.default_rng(rng.getrandbits(64))

    def nest(*shape):
        return arrays.uniform(-2, 2, shape).astype(np.float32).astype(np.float64).tolist()

    record = {
        "iteration": iteration, "prompts": ["a red circle on a black background"] * prompts,
        "g2rpo": {"branch_steps": list(range(k)), "granularities": list(range(1, lambdas + 1)),
                  "rewards": nest(models, prompts, k, lambdas, group),
                  "advantages": nest(models, prompts, k, lambdas, group),
                  "mixed_advantage": nest(prompts, k, group)},
        "loss": rng.gauss(0, 1e-6), "ratio_mean": 1.0, "clip_fraction": 0.0, "approx_kl": rng.random() * 1e-12,
        "ratio_min": 1 - rng.random() * 1e-6, "ratio_max": 1 + rng.random() * 1e-6, "onpolicy_ratio_error": 0.0,
        "grad_norm": rng.random(), "grad_norm_max": rng.random(),
        "reward": {f"reward{m}": {"mean": rng.random(), "std": rng.random()} for m in range(models)},
        "trained_steps": list(range(k)), "model_evaluations": {"rollout": 1820 * prompts, "train": k * prompts},
        "time": {"rollout": 0.4, "reward": 0.01, "train": 0.1, "model_calls": 0.45, "rollout_model_calls": 0.4,
                 "total": 0.5 + rng.random() * 0.01},
    }
    if checkpoint:
        record["checkpoint"] = f"checkpoints/iter_{iteration + 1:06d}"
    return record


def fake_config(models: int = 1, iterations: int = 100) -> dict:
    """A run config for fake records (not validated: nothing is trained with it)."""
    from engine.config import Config, RewardConfig, TrainConfig

    return Config(rewards=[RewardConfig(f"reward{m}") for m in range(models)],
                  train=TrainConfig(iterations=iterations)).to_dict()


@contextlib.contextmanager
def one_torch_thread():
    """Train in this process with one torch thread (as the test workers do): on a small CPU that
    another job keeps busy, torch's spinning threads can make an iteration 20x slower."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)
