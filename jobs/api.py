"""The Python API the UI and the CLI use. Nothing here trains: it stores, queues and reads.

    run_id = api.submit("configs/g2rpo.yaml", ["train.iterations=20"])   # validated, stored, queued
    api.get_run(run_id)["status"]           # queued | running | completed | failed | cancelled | interrupted
    api.curves(run_id)                      # the curves, at most 1,000 rows however long the run
    api.latest_metrics(run_id, since_iteration=n)   # every metrics row after n (the full table)
    api.heatmap(run_id)                     # G²RPO attribution of the latest iteration
    api.cancel(run_id); api.resume(run_id); api.export(run_id); api.push(run_id, "user/name")
    api.train_longer(run_id, 20)            # a completed run goes on for 20 more iterations
    api.save_preset("mine", config); api.get_preset("mine")   # presets of one's own

Invalid input raises `ConfigError` (a bad config, or one this machine cannot take) or `JobError`
(an unknown run, a run in the wrong state); nothing is stored or queued then. `QueueError`: the
queue server is unreachable. `StorageError`: the data folder or the database cannot be used.
`HubError`: the Hugging Face Hub refused a push or could not be reached.
"""
from __future__ import annotations

import re
import shutil
import time
from pathlib import Path

from sqlalchemy import delete as sql_delete, func, select

from jobs import db, heartbeat, queries, runs, settings
from jobs.hub import HubError  # noqa: F401  (re-exported for callers)
from jobs.models import ACTIVE, RESUMABLE, Checkpoint, Evaluation, Run
from jobs.settings import StorageError  # noqa: F401  (re-exported for callers)

from engine.config import ConfigError  # noqa: F401  (light: re-exported for callers)
from engine.config.limits import excerpt

MAX_ID = 2**63 - 1  # the database's integer

# What the UI polls, re-exported from queries.
curves = queries.curves
latest_metrics = queries.latest_metrics
run_summaries = queries.run_summaries
heatmap = queries.heatmap
attribution_window = queries.attribution_window
attribution_history = queries.attribution_history
records = queries.records
checkpoints = queries.checkpoints
evaluations = queries.evaluations


class JobError(ValueError):
    """A request that cannot be done: unknown run, or a run in the wrong state for it."""


class QueueError(RuntimeError):
    """The queue (Redis) cannot be reached; the run is stored as failed and can be resumed later."""


def check_config(config: str | Path | dict | None, overrides=()) -> dict:
    """Validate as the CLI does (types, bounds, prompts the model can encode), with the files the
    config names read only from settings.config_file_dirs(), and the run's estimated memory and
    time checked against this machine. Returns the resolved config."""
    from engine.config import load_config
    from engine.config.estimate import budget_problems

    cfg = load_config(config, list(overrides), read_from=settings.config_file_dirs())
    problems = budget_problems(cfg)
    if problems:
        raise ConfigError.listing(problems)
    return cfg.to_dict()


def submit(config: str | Path | dict | None, overrides=(), name: str = "") -> int:
    """Validate a config (a YAML path, a dict, or None for the defaults), store the run, queue it.
    Returns the run id."""
    from engine.config import parse_config
    from jobs.forecast import forecast

    resolved = check_config(config, overrides)
    _room_in_queue()
    run_id = runs.create(resolved, name or (Path(config).stem if isinstance(config, (str, Path)) else ""),
                         estimate=forecast(parse_config(resolved)))
    _enqueue(run_id)
    return run_id


def _room_in_queue() -> None:
    """JobError when as many runs wait as G2RPO_MAX_QUEUED_RUNS allows (a flood of small runs)."""
    from engine.config.limits import too_large

    with db.session() as s:
        waiting = s.scalar(select(func.count()).where(Run.status == "queued"))
    try:
        message = too_large("queued_runs", waiting + 1)
    except ValueError as err:  # the variable is not a number
        raise JobError(str(err)) from None
    if message:
        raise JobError(f"the queue is full: {message}; wait for runs to finish or cancel some")


def _enqueue(run_id: int) -> None:
    from jobs import queue

    try:
        queue.enqueue(run_id)
    except Exception as err:  # e.g. Redis unreachable: say so on the run and to the caller
        runs.finish(run_id, "failed", f"could not queue it: {err}", expected=("queued",))
        raise QueueError(f"run {run_id} is stored but could not be queued ({err}); once the queue is "
                         f"back: python -m jobs resume {run_id}") from err


def _id(run_id) -> int:
    """A run id as the database takes it, or JobError (an id of 10**24 is no run, not an overflow)."""
    if isinstance(run_id, bool) or not isinstance(run_id, int) or not 1 <= run_id <= MAX_ID:
        raise JobError(f"no run {excerpt(run_id, 30)}")
    return run_id


def _run(run_id: int) -> Run:
    run = runs.get(_id(run_id))
    if run is None:
        raise JobError(f"no run {run_id}")
    return run


def get_run(run_id: int, checkpoints: bool = True) -> dict:
    """The run's row as a dict, plus `folder` (absolute) and `checkpoints` (relative paths; left
    out with checkpoints=False: a list as long as the run, which a Monitor's poll does not need)."""
    runs.mark_interrupted()  # the UI never shows 'running' for a run whose worker died long ago
    run = _run(run_id).model_dump()
    run["folder"] = str(settings.run_dir(run_id))
    if checkpoints:
        with db.session() as s:
            run["checkpoints"] = list(s.scalars(select(Checkpoint.path).where(Checkpoint.run_id == run_id)
                                                .order_by(Checkpoint.iteration)))
    return run


def list_runs(status: str | None = None, limit: int = 200, tag: str | None = None) -> list[dict]:
    """Newest first, without the config (see get_run); with `tag`, only the runs tagged so."""
    runs.mark_interrupted()
    query = select(Run).order_by(Run.id.desc())
    if status is not None:
        query = query.where(Run.status == status)
    with db.session() as s:
        found = [run.model_dump(exclude={"config"}) for run in s.scalars(query if tag else query.limit(limit))]
    return [r for r in found if tag in r["tags"]][:limit] if tag else found


MAX_NOTES_CHARS, MAX_TAGS, MAX_TAG_CHARS = 4000, 12, 40
TAG = re.compile(r"[\w.+-]+(?: [\w.+-]+)*")  # words, digits, . + - and single spaces


def annotate(run_id: int, notes: str | None = None, tags: list[str] | None = None) -> dict:
    """Set a run's notes (free text) and tags (short labels, e.g. "baseline", "lr-sweep"); None
    keeps what is there. Returns {"notes", "tags"}. Too long or malformed: JobError, nothing stored."""
    if notes is not None:
        if not isinstance(notes, str):
            raise JobError("notes: text is needed")
        if len(notes) > MAX_NOTES_CHARS:
            raise JobError(f"notes: {len(notes):,} characters; at most {MAX_NOTES_CHARS:,}")
    if tags is not None:
        if not isinstance(tags, list) or not all(isinstance(t, str) for t in tags):
            raise JobError("tags: a list of words is needed")
        tags = list(dict.fromkeys(t.strip() for t in tags if t.strip()))
        if len(tags) > MAX_TAGS:
            raise JobError(f"tags: {len(tags)} tags; at most {MAX_TAGS}")
        bad = [t for t in tags if len(t) > MAX_TAG_CHARS or not TAG.fullmatch(t)]
        if bad:
            raise JobError(f"tags: {excerpt(bad[0], 50)} is not a tag (at most {MAX_TAG_CHARS} letters, digits, "
                           "spaces and . + - _)")
    with db.session() as s:
        run = s.get(Run, _id(run_id))
        if run is None:
            raise JobError(f"no run {run_id}")
        if notes is not None:
            run.notes = notes
        if tags is not None:
            run.tags = tags
        s.add(run)
        s.commit()
        return {"notes": run.notes, "tags": list(run.tags)}


def queue_position(run_id: int) -> dict:
    """Where a queued run stands: {"ahead": queued runs before it, "running": runs in progress}.
    Jobs start in submission order, so a run starts once those ahead of it have."""
    with db.session() as s:
        ahead = s.scalar(select(func.count()).where(Run.status == "queued", Run.id < run_id))
        running = s.scalar(select(func.count()).where(Run.status == "running"))
    return {"ahead": ahead, "running": running}


def live_workers() -> list[dict]:
    """The workers whose heartbeat is recent: [{"slots", "device", "gpu_memory"}] (no host names)."""
    return [{"slots": w.slots, "device": w.device, "gpu_memory": w.gpu_memory} for w in heartbeat.alive()]


def workers_alive() -> int:
    """Job slots of the workers whose heartbeat is recent (0: queued runs wait for a worker to start)."""
    return heartbeat.alive_slots()


def cancel(run_id: int) -> str:
    """Stop a run: a queued one never starts; a running one stops within about a second (or once
    the iteration it is updating on finishes) and keeps its metrics, samples and checkpoints, plus a
    checkpoint of its last completed iteration (engine/training/stopping.py), so a resume redoes nothing.
    Returns 'cancelled' or 'cancelling' (a worker confirms)."""
    state = runs.cancel(_id(run_id))
    if state is None:
        raise JobError(f"run {run_id} is {_run(run_id).status}; nothing to cancel")
    return state


def resume(run_id: int, overrides=()) -> None:
    """Queue a stopped run again; it continues from its last checkpoint (iterations after it are
    redone, never duplicated). Overrides (e.g. train.iterations=200) change its stored config.
    A completed run resumes only with more iterations than it trained (see train_longer)."""
    run = _run(run_id)
    if run.status not in RESUMABLE:
        raise JobError(f"run {run_id} is {run.status}; only {', '.join(RESUMABLE)} runs can be resumed")
    config = check_config(run.config, overrides) if overrides else None
    done = 0 if run.last_iteration is None else run.last_iteration + 1
    if run.status == "completed" and (config or run.config)["train"]["iterations"] <= done:
        raise JobError(f"run {run_id} is completed ({done} of {run.iterations} iterations); to go on, train it "
                       f"longer: more iterations (Train longer in the Runs tab, api.train_longer({run_id}, N), or "
                       f"python -m jobs resume {run_id} --set train.iterations=M with M > {done})")
    _room_in_queue()
    if not runs.requeue(run_id, config):
        raise JobError(f"run {run_id} changed state meanwhile ({_run(run_id).status}); try again")
    _enqueue(run_id)


def train_longer(run_id: int, more: int) -> int:
    """Go on with a stopped or completed run for `more` iterations beyond its plan: it continues
    from its last checkpoint at the next iteration, keeping its records, checkpoints, samples and
    first start. Returns the new planned iterations."""
    if isinstance(more, bool) or not isinstance(more, int) or more < 1:
        raise JobError(f"train longer by a whole number of iterations >= 1, not {excerpt(more, 30)}")
    run = _run(run_id)
    if run.status not in RESUMABLE:
        raise JobError(f"run {run_id} is {run.status}; only {', '.join(RESUMABLE)} runs can be trained longer")
    total = run.iterations + more
    resume(run_id, [f"train.iterations={total}"])
    return total


def resume_point(run_id: int) -> dict:
    """What a resume would redo: {"done": iterations recorded, "start": iterations its newest intact
    checkpoint holds (where training restarts, as the trainer picks it: a newer one whose files
    differ from their checksums is skipped; 0 without one), "redo": done - start}."""
    from engine.training.checksums import mismatch

    run = _run(run_id)
    done = 0 if run.last_iteration is None else run.last_iteration + 1
    with db.session() as s:
        saved = s.execute(select(Checkpoint.trained, Checkpoint.path).where(Checkpoint.run_id == run_id)
                          .order_by(Checkpoint.trained.desc())).all()
    folder = settings.run_dir(run_id)
    start = next((trained for trained, path in saved if (folder / path).is_dir() and mismatch(folder / path) is None), 0)
    start = min(start, done)
    return {"done": done, "start": start, "redo": done - start}


def save_preset(name: str, config: dict) -> str:
    """Save a config under `name` as a preset of one's own (validated first, as submit does;
    replaces a preset of that name). Returns the name as stored. JobError for a bad name, ConfigError
    for a bad config; nothing is stored then."""
    from jobs import presets

    try:
        name = presets.check_name(name)
        return presets.save(name, check_config(config))
    except presets.PresetError as err:
        raise JobError(str(err)) from None


def list_presets() -> list[str]:
    """The saved presets' names, in alphabetical order."""
    from jobs import presets

    return presets.names()


def get_preset(name: str) -> dict:
    """A saved preset's config; JobError if there is none of that name."""
    from jobs import presets

    try:
        return presets.get(name)
    except presets.PresetError as err:
        raise JobError(str(err)) from None


def delete_preset(name: str) -> None:
    from jobs import presets

    try:
        presets.remove(name)
    except presets.PresetError as err:
        raise JobError(str(err)) from None


def delete(run_id: int) -> None:
    """Delete a finished run: its rows and its folder."""
    run = _run(run_id)
    if run.status in ACTIVE:
        raise JobError(f"run {run_id} is {run.status}; cancel it first")
    with db.session() as s:
        s.execute(sql_delete(Run).where(Run.id == run_id))  # the other tables cascade
        s.commit()
    shutil.rmtree(settings.run_dir(run_id), ignore_errors=True)


def wait(run_id: int, timeout: float | None = None, poll_s: float = 1.0) -> str:
    """Block until the run is no longer queued or running; returns its status."""
    deadline = None if timeout is None else time.monotonic() + timeout
    while (status := get_run(run_id)["status"]) in ACTIVE:
        if deadline is not None and time.monotonic() > deadline:
            break
        time.sleep(poll_s)
    return status


def samples(run_id: int, newest: int | None = None) -> list[dict]:
    """Sample images of a run with absolute `file` paths (the base model's have trained == 0);
    `newest`: only the newest that many."""
    folder = settings.run_dir(_id(run_id))
    return [{**row, "file": str(folder / row["path"])} for row in queries.samples(run_id, newest)]


def add_evaluation(run_id: int, scores: dict, checkpoint: str | None = None, prompts: str = "eval",
                   seeds: int = 0) -> int:
    """Store an evaluation (e.g. engine.evaluate's scores) of a run's checkpoint or base model."""
    _run(run_id)
    row = Evaluation(run_id=run_id, checkpoint=checkpoint, prompts=prompts, seeds=seeds, scores=scores)
    with db.session() as s:
        s.add(row)
        s.commit()
        return row.id


def push(run_id: int, repo_id: str, private: bool = False) -> str:
    """Push the run's latest LoRA (with its model card and samples) to the Hub model repository
    `repo_id` as one commit (jobs/hub.py); returns the commit URL. JobError without a token (then
    nothing is contacted) or a LoRA; HubError when the Hub refuses or is unreachable."""
    from jobs import hub

    _run(run_id)
    try:
        return hub.push(run_id, repo_id, private)
    except hub.PushError as err:
        raise JobError(str(err)) from None


def export(run_id: int, out: str | Path | None = None) -> Path:
    """Write the run's export to `out` (a new .zip path, or a new or empty folder; default
    DATA_DIR/exports/run-ID.zip, replaced each time)."""
    from jobs.export import export_run

    _run(run_id)
    if out is not None:
        out = Path(out)
        if out.exists() and not (out.is_dir() and not any(out.iterdir())):
            raise JobError(f"{excerpt(str(out))} already exists; export to a new path (or an empty folder)")
    try:
        return export_run(run_id, out)
    except OSError as err:
        raise JobError(f"cannot write the export to {excerpt(str(out or 'the exports folder'))}: "
                       f"{err.strerror or type(err).__name__}") from None
