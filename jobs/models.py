"""The tables: runs, per-iteration metrics, G²RPO attribution, curve buckets, samples, checkpoints,
evaluations, workers' heartbeats, the users' saved presets, and the blind A/B tests with their votes.

Everything the UI shows is read from here. Images and checkpoints stay files in the run folder
(`settings.run_dir(id)`); the tables hold their paths relative to it, so moving the data folder
moves nothing in the database. Timestamps are naive UTC.
"""
from __future__ import annotations

from datetime import datetime, timezone

from sqlalchemy import JSON, BigInteger, Column, DateTime, Float, Index, LargeBinary, String, Text, UniqueConstraint
from sqlmodel import Field, SQLModel

STATUSES = ("queued", "running", "completed", "failed", "cancelled", "interrupted")
ACTIVE = ("queued", "running")  # a worker owns (or will own) the run
RESUMABLE = ("interrupted", "cancelled", "failed", "completed")


def utcnow() -> datetime:
    return datetime.now(timezone.utc).replace(tzinfo=None)


def timestamp(now: bool = False):
    """Naive UTC on every backend (SQLModel's default is timestamptz on PostgreSQL, naive on SQLite)."""
    if now:
        return Field(default_factory=utcnow, sa_column=Column(DateTime(), nullable=False, default=utcnow))
    return Field(default=None, sa_column=Column(DateTime(), nullable=True))


def run_fk():
    return Field(foreign_key="runs.id", primary_key=True, ondelete="CASCADE")


class Run(SQLModel, table=True):
    __tablename__ = "runs"
    __table_args__ = {"sqlite_autoincrement": True}  # never reuse a deleted run's id (or its folder)
    id: int | None = Field(default=None, primary_key=True)
    name: str = ""
    notes: str = Field(default="", sa_column=Column(Text, nullable=False, server_default=""))  # the user's, free text
    tags: list = Field(default_factory=list, sa_column=Column(JSON, nullable=False, server_default="[]"))
    status: str = Field(default="queued", index=True)
    algorithm: str
    model: str
    config: dict = Field(sa_column=Column(JSON, nullable=False))  # resolved, validated
    iterations: int  # planned (train.iterations)
    last_iteration: int | None = None  # the latest stored iteration: progress at a glance
    last_checkpoint: str | None = None  # relative to the run folder
    error: str | None = Field(default=None, sa_column=Column(Text))
    cancel_requested: bool = False  # set by cancel(); the supervising worker stops the child
    attempts: int = 0  # times a worker started it (1 + resumes)
    worker_host: str | None = None  # who runs it: interrupted-run detection
    worker_pid: int | None = None
    child_pid: int | None = None
    created_at: datetime = timestamp(now=True)
    started_at: datetime | None = timestamp()  # the first start: kept by resumes and "train longer"
    finished_at: datetime | None = timestamp()
    resumed_at: datetime | None = timestamp()  # the latest start by a worker
    # Seconds workers spent on it over its starts before resumed_at (its duration; the idle time
    # between a finish and a resume is not in it)
    active_seconds: float = Field(default=0.0, sa_column=Column(Float, nullable=False, server_default="0"))
    heartbeat_at: datetime | None = timestamp()  # refreshed by the supervising worker every few seconds
    estimate: dict | None = Field(default=None, sa_column=Column(JSON, nullable=True))  # jobs/forecast.py, at submit


class Metric(SQLModel, table=True):
    """One row per iteration: scalar columns, the iteration's curve values, the rest of the record as JSON."""
    __tablename__ = "metrics"
    run_id: int = run_fk()
    iteration: int = Field(primary_key=True)  # (run_id, iteration) is the index the UI reads by
    created_at: datetime = timestamp(now=True)
    # Scalars the UI plots; None where the engine produced NaN or inf (SQLite stores NaN as NULL anyway).
    reward: float | None  # sum over reward models of weight * mean
    loss: float | None
    ratio_mean: float | None
    ratio_min: float | None
    ratio_max: float | None
    clip_fraction: float | None
    approx_kl: float | None
    grad_norm: float | None
    seconds: float  # wall time of the iteration
    model_evaluations: int  # rollout + train
    rewards: dict = Field(sa_column=Column(JSON, nullable=False))  # {name: {mean, std}}: the record's "reward"
    # The rest of the record: minus g2rpo's arrays, "reward" and the scalars stored as columns above.
    record: dict = Field(sa_column=Column(JSON, nullable=False))
    # Every value the curves draw, float32 in the order of the run's CurveLayout (jobs/rollup.py):
    # the curves of a short run, and what the buckets are folded from.
    curve_values: bytes | None = Field(default=None, sa_column=Column(LargeBinary))


class Attribution(SQLModel, table=True):
    """G²RPO's per-member arrays of one iteration (jobs/attribution.py): rewards and advantages
    [reward model][prompt][k][λ][member], then mixed_advantage [prompt][k][member], as
    little-endian float32 in C order, zlib-compressed into one blob, with their shape in columns. The labels (branch_steps,
    granularities, prompts) stay in Metric.record. Read only for the iteration a user opens.
    """
    __tablename__ = "attributions"
    run_id: int = run_fk()
    iteration: int = Field(primary_key=True)
    models: int
    prompts: int
    steps: int  # branch steps K
    granularities: int  # Λ
    members: int  # G
    arrays: bytes = Field(sa_column=Column(LargeBinary, nullable=False))


class CurveLayout(SQLModel, table=True):
    """What a run's curve values are: one path into a curve row per value (["loss"],
    ["rewards", name, "mean"], ["attribution", "abs_advantage", k], ...), appended to, never reordered."""
    __tablename__ = "curve_layouts"
    run_id: int = run_fk()
    names: list = Field(sa_column=Column(JSON, nullable=False))


class CurveBucket(SQLModel, table=True):
    """The curve values of BASE**level consecutive iterations from `start` (jobs/rollup.py), folded
    when they are stored: per value its count of finite values, min, max (float32) and sum (float64)."""
    __tablename__ = "curve_buckets"
    run_id: int = run_fk()
    level: int = Field(primary_key=True)
    start: int = Field(primary_key=True)  # a multiple of the bucket's size
    last: int  # the latest iteration folded in
    iterations: int  # how many were
    stats: bytes = Field(sa_column=Column(LargeBinary, nullable=False))


class Sample(SQLModel, table=True):
    __tablename__ = "samples"
    __table_args__ = (Index("ix_samples_run_iteration", "run_id", "iteration"),)
    id: int | None = Field(default=None, primary_key=True)
    run_id: int = Field(foreign_key="runs.id", ondelete="CASCADE")
    iteration: int  # the record that wrote it
    trained: int  # iterations trained when it was drawn (0: the base model)
    position: int  # index in the config's sample_prompts
    prompt: str
    path: str  # relative to the run folder


class Checkpoint(SQLModel, table=True):
    __tablename__ = "checkpoints"
    run_id: int = run_fk()
    iteration: int = Field(primary_key=True)  # the record that wrote it
    trained: int  # iterations trained (the folder's iter_NNNNNN)
    path: str  # relative to the run folder
    created_at: datetime = timestamp(now=True)


class Evaluation(SQLModel, table=True):
    """Scores on held-out prompts: written by the trainer every train.eval_every iterations
    (iteration = the record that wrote it, trained = iterations trained; 0 is the base model), or
    added later for a checkpoint (iteration None)."""
    __tablename__ = "evaluations"
    __table_args__ = (Index("ix_evaluations_run_iteration", "run_id", "iteration"),)
    id: int | None = Field(default=None, primary_key=True)
    run_id: int = Field(foreign_key="runs.id", ondelete="CASCADE", index=True)
    iteration: int | None = None
    trained: int | None = None
    checkpoint: str | None = None  # relative path; None: the base model
    prompts: str = "eval"
    seeds: int = 0
    scores: dict = Field(sa_column=Column(JSON, nullable=False))  # {reward name: mean}
    created_at: datetime = timestamp(now=True)


class WorkerBeat(SQLModel, table=True):
    """A worker's heartbeat: the app shows whether any worker is alive, and says so when a run is
    submitted while none is (an external worker on another machine reports here too)."""
    __tablename__ = "workers"
    id: str = Field(primary_key=True)  # "<host>:<pid>:<random>", unique per worker start
    slots: int = 1
    device: str = "cpu"  # "cpu", or the GPUs' names (jobs/devices.py)
    gpu_memory: int | None = Field(default=None, sa_column=Column(BigInteger, nullable=True))  # bytes, the smallest GPU's
    started_at: datetime = timestamp(now=True)
    seen_at: datetime = Field(default_factory=utcnow, sa_column=Column(DateTime(), nullable=False, index=True))


class VoteTest(SQLModel, table=True):
    """A blind A/B test (app/ab_tab.py): two models (references as app/model_choice.py reads them),
    a prompt set and seeds per prompt. Its items are prompts × seeds; a visitor votes each at most once."""
    __tablename__ = "ab_tests"
    id: int | None = Field(default=None, primary_key=True)
    model_a: str  # "run:3:checkpoints/iter_000020", "base", a LoRA folder, a Hub id
    model_b: str
    label_a: str
    label_b: str
    run_a: int | None = Field(default=None, index=True)  # the run a side's checkpoint comes from (its export)
    run_b: int | None = Field(default=None, index=True)
    settings: dict = Field(sa_column=Column(JSON, nullable=False))  # model, sampling, rewards: both drawn alike
    prompt_set: str  # "held-out", "sample" or "own"
    prompts: list = Field(sa_column=Column(JSON, nullable=False))
    seeds: int  # per prompt: seeds 0 .. seeds - 1
    created_by: str | None = None  # who started it, when logged in
    created_at: datetime = timestamp(now=True)


class VotePair(SQLModel, table=True):
    """One pair drawn for one visitor: its prompt and seed, the order shown (model A on the left or
    not), both images' scores, and the vote once cast. Drawn ahead of time, it can be voted on only
    after it was shown to that visitor, and only once."""
    __tablename__ = "ab_pairs"
    __table_args__ = (UniqueConstraint("test_id", "visitor", "item", name="uq_ab_pairs_test_visitor_item"),)
    id: int | None = Field(default=None, primary_key=True)
    test_id: int = Field(foreign_key="ab_tests.id", ondelete="CASCADE")
    visitor: str  # the browser's random token, or "hf:<user>" when signed in with Hugging Face
    item: int  # prompt index * seeds + seed
    prompt: str
    seed: int
    a_left: bool  # the order shown: model A on the left
    scores: dict | None = Field(default=None, sa_column=Column(JSON, nullable=True))  # {reward: [A's, B's]}
    created_at: datetime = timestamp(now=True)  # drawn
    shown_at: datetime | None = timestamp()
    choice: str | None = None  # as cast: "left", "right" or "same"
    voter: str | None = None  # who voted, when logged in: "hf:<user>" or "password"
    voted_at: datetime | None = timestamp()
class Preset(SQLModel, table=True):
    """A Launch form saved by a user under a name: a whole config (validated when saved), offered
    beside the built-in presets."""
    __tablename__ = "presets"
    name: str = Field(sa_column=Column(String, primary_key=True))
    config: dict = Field(sa_column=Column(JSON, nullable=False))
    saved_at: datetime = timestamp(now=True)
