"""Errors that stop a run with a message meant for its user (a jobs worker stores the message as
the run's error, without the traceback; the CLI prints it and exits with code 1)."""


class TrainingError(RuntimeError):
    """A run cannot go on; the message says why and what to do."""


class NonFiniteError(TrainingError):
    """A loss, reward, gradient or weight became NaN or infinite."""


class CheckpointError(TrainingError):
    """No checkpoint of the run can be resumed from."""
