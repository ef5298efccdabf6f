"""Stopping a run on request with its last completed iteration kept: a cancel that checkpoints.

The request comes from outside the training loop (jobs/child.py makes `StopRequest.request` the
SIGUSR1 handler; the worker sends SIGUSR1 on a cancel), so `request` only sets a flag. The trainer
acts on it at two kinds of safe points, never in the middle of an optimizer step:

- at every model call of an iteration that has not yet stepped the optimizer (its rollout, the
  base samples): the weights and the optimizer state are still those of the last completed
  iteration, so `check` raises `Stopped`, the iteration is abandoned (nothing of it was recorded)
  and that state is what the checkpoint keeps;
- after each iteration is recorded: a request that came during the update lets the iteration
  finish first (the worker waits a bounded time for it, then kills the process as before).

Either way `Trainer.keep_on_stop` then saves a checkpoint unless the newest one already holds
every completed iteration, so a resume redoes nothing.
"""
from __future__ import annotations


class Stopped(Exception):
    """Raised at a model call when a stop was requested before the iteration changed any weight."""


class StopRequest:
    def __init__(self):
        self.requested = False
        self.untouched = False  # True while the current iteration has not stepped the optimizer

    def request(self, *_signal) -> None:
        """Ask the run to stop (takes a signal handler's (signum, frame))."""
        self.requested = True

    def check(self) -> None:
        """At a model call: abandon the iteration if asked to stop before it changed anything."""
        if self.requested and self.untouched:
            raise Stopped("stop requested")
