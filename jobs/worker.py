"""The GPU worker: `python -m jobs.worker` (one training job at a time per GPU; jobs wait in order).

    python -m jobs.worker                 # one job at a time on the visible device(s)
    python -m jobs.worker --gpus 0,1,2,3  # four jobs at a time, one per GPU

Start as many as you like, on as many machines as share the database and (Redis) queue. On start
it marks runs that claim to be running but whose worker is gone as interrupted (resumable).
Ctrl-C (SIGINT) or SIGTERM stops it; a run in progress is stopped and marked interrupted.
A database that vanishes or is replaced while it runs stops it too (exit code 1, the reason logged).
"""
from __future__ import annotations

import argparse
import logging
import os
import queue as stdqueue
import signal
import sys
import threading
import time

from jobs import db, heartbeat, queue, runs, settings, supervise

DATABASE_CHECK_S = 1.0


def watch_database(log: logging.Logger) -> threading.Event:
    """A thread that stops this worker (as Ctrl-C does) once its database vanished or was replaced."""
    gone = threading.Event()

    def watch():
        while True:
            time.sleep(DATABASE_CHECK_S)
            try:
                db.get_engine()  # checks that the database is still the one this worker opened
            except settings.StorageError as err:
                log.error("stopping: %s", err)
                gone.set()
                os.kill(os.getpid(), signal.SIGINT)
                return

    threading.Thread(target=watch, name="database-watch", daemon=True).start()
    return gone


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m jobs.worker", description=__doc__.split("\n\n")[0])
    parser.add_argument("--gpus", help="comma-separated GPU ids, one job at a time on each (default: one job "
                                       "at a time on whatever CUDA_VISIBLE_DEVICES shows)")
    parser.add_argument("--log-level", default="INFO")
    args = parser.parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(name)s %(levelname)s %(message)s")
    log = logging.getLogger("jobs.worker")
    settings.use_space_storage()  # before the fork server imports huggingface_hub (HF_HOME)

    gpus = [g.strip() for g in args.gpus.split(",") if g.strip()] if args.gpus else [None]
    supervise.free_gpus = stdqueue.SimpleQueue()
    for gpu in gpus:
        supervise.free_gpus.put(gpu)

    try:
        db.get_engine()  # migrates the schema if needed
    except settings.StorageError as err:
        log.error("%s", err)
        return 2
    interrupted = runs.mark_interrupted(starting_worker=True)
    if interrupted:
        log.warning("marked interrupted (their worker is gone): runs %s; `python -m jobs resume ID` continues one",
                    ", ".join(map(str, interrupted)))
    supervise.warm_up()
    huey, _task = queue.get()
    consumer = huey.create_consumer(workers=len(gpus), worker_type="thread", periodic=False,
                                    initial_delay=0.1, backoff=1.15, max_delay=1.0)
    supervise.stop_flag = consumer.stop_flag  # a running job stops its child when the worker stops
    gone = watch_database(log)
    stopped = threading.Event()
    worker_id = heartbeat.start(len(gpus), stopped)  # the app shows whether a worker is alive
    log.info("worker ready: %d slot(s), data in %s, queue %s", len(gpus), settings.data_dir(),
             settings.queue_url() or "sqlite")
    try:
        consumer.run()
        supervise.wait_idle(supervise.GRACE_S + 2)  # SIGTERM does not wait for the workers: we do
    finally:
        stopped.set()
        try:
            heartbeat.forget(worker_id)
        except Exception as err:  # the database is gone: the row goes stale on its own
            log.warning("heartbeat not removed: %s", err)
    return 1 if gone.is_set() else 0


if __name__ == "__main__":
    sys.exit(main())
