"""What a handler's user may cause or fix (bad input, an unknown run, a full queue, storage that
cannot be used) reaches the page and the HTTP API as a gr.Error with its one-line message, never as
Gradio's generic "an upstream app raised an exception" or a traceback."""
from __future__ import annotations

import functools
import logging

import gradio as gr

log = logging.getLogger("app")


def user_errors(fn):
    @functools.wraps(fn)  # keeps the signature and type hints Gradio reads (gr.Request, OAuthProfile)
    def handler(*args, **kwargs):
        from jobs import api

        try:
            return fn(*args, **kwargs)
        except (api.ConfigError, api.JobError, api.QueueError, api.StorageError) as err:
            if isinstance(err, api.StorageError):
                log.error("%s", err)
            raise gr.Error(one_line(err)) from None
    return handler


def one_line(err: Exception) -> str:
    """A ConfigError lists its problems on lines of their own: one line, problems joined by '; '."""
    head, *problems = str(err).split("\n  - ")
    return f"{head} {'; '.join(problems)}".strip() if problems else head.strip()
