"""The training process of one run: the engine's trainer with a sink into the database.

Started by a worker (jobs/supervise.py), or by hand for debugging: `python -m jobs.child RUN_ID`.
It resumes from the run folder's last checkpoint whenever there is one, so a first start, a
resume after a cancel and a resume after a crash are the same code path.
"""
from __future__ import annotations

import os
import shutil
import signal
import sys
import threading

import yaml
from sqlalchemy import select
from tqdm import tqdm

# Imported here so the fork server loads them once for every job.
import engine.models.tiny_flux  # noqa: F401
import engine.training.trainer  # noqa: F401
import peft  # noqa: F401
from engine.training.checkpoint import checkpoints
from engine.config import ConfigError, config_from_dict
from engine.training.errors import TrainingError
from engine.training.stopping import StopRequest
from jobs import db, progress_log, settings
from jobs.models import Checkpoint, Run
from jobs.sink import GUARD, RunSink
from jobs.exits import ERROR_MARK, TRAINING_ERROR_EXIT

STOP = StopRequest()  # SIGUSR1 (the worker's cancel) sets it: stop, keeping the last completed iteration


def hold_lifeline(lifeline) -> None:
    """Die with the worker: its end of the pipe closes when it exits, however it exits."""
    def wait():
        try:
            lifeline.recv_bytes()
        except (EOFError, OSError):
            pass
        os.killpg(0, signal.SIGKILL)  # the whole group: this process and anything it started

    threading.Thread(target=wait, name="lifeline", daemon=True).start()


def drop_unrecorded_checkpoints(run_id: int) -> None:
    """A kill between saving a checkpoint and storing its iteration's record would make a resume
    skip that iteration: forget such a checkpoint, so the iteration is redone instead."""
    with db.session() as s:
        recorded = set(s.scalars(select(Checkpoint.trained).where(Checkpoint.run_id == run_id)))
    for folder in checkpoints(settings.run_dir(run_id)):
        if int(folder.name.removeprefix("iter_")) not in recorded:
            shutil.rmtree(folder, ignore_errors=True)


def train(run_id: int) -> None:
    from engine.training.trainer import Trainer

    folder = settings.run_dir(run_id)
    folder.mkdir(parents=True, exist_ok=True)
    with db.session() as s:
        run = s.get(Run, run_id)
    if run is None:
        raise TrainingError(f"run {run_id} is not in the database (deleted, or the database was replaced)")
    cfg = config_from_dict(run.config)
    # The engine's CLI can continue this folder too: python -m engine.train --out FOLDER --resume
    (folder / "config.yaml").write_text(yaml.safe_dump(cfg.to_dict(), sort_keys=False))
    drop_unrecorded_checkpoints(run_id)
    sink = RunSink(run_id, log=lambda line: print(line, flush=True))
    trainer = Trainer(cfg, folder, sink=sink, resume=True, run_name=f"run-{run_id}", stop=STOP)
    sink.begin(trainer.start_iteration)
    device = f"{trainer.accelerator.device} (CUDA_VISIBLE_DEVICES={os.environ.get('CUDA_VISIBLE_DEVICES', 'unset')})"
    print(progress_log.start_line(run_id, trainer.start_iteration, cfg.train.iterations, device), flush=True)
    records = trainer.run(progress=False)
    if STOP.requested:
        done = trainer.start_iteration + len(records)
        print(f"run {run_id}: cancelled after {done} iterations; checkpoint after {trainer.saved_through}", flush=True)
    else:
        print(f"run {run_id}: done", flush=True)


def main(run_id: int, gpu: str | None = None, lifeline=None) -> None:
    os.setsid()  # its own process group, which the worker kills on cancel
    signal.signal(signal.SIGUSR1, STOP.request)  # first: SIGUSR1's default would kill the process
    GUARD.install()
    progress_log.one_line_warnings()
    if lifeline is not None:
        hold_lifeline(lifeline)
    if gpu is not None:  # before anything touches CUDA
        os.environ["CUDA_VISIBLE_DEVICES"] = gpu
    folder = settings.run_dir(run_id)
    folder.mkdir(parents=True, exist_ok=True)
    log = open(folder / "log.txt", "a", buffering=1)
    os.dup2(log.fileno(), 1)  # prints, warnings and the traceback of a failure go to the run's log
    os.dup2(log.fileno(), 2)
    db.dispose_all()  # never reuse a connection inherited through fork
    tqdm.set_lock(threading.RLock())  # not tqdm's default multiprocessing lock, which a kill would leak
    try:
        train(run_id)
    except (TrainingError, ConfigError, settings.StorageError) as err:  # a message for the user: the worker stores this line
        print(f"{ERROR_MARK}{' '.join(str(err).split())}", flush=True)
        sys.exit(TRAINING_ERROR_EXIT)


if __name__ == "__main__":
    if len(sys.argv) != 2 or not sys.argv[1].isdigit():
        sys.exit("usage: python -m jobs.child RUN_ID   (normally started by python -m jobs.worker)")
    train(int(sys.argv[1]))
