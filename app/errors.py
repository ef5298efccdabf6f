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


def in_message_line(fn, outputs: int, clear: bool = False):
    """For the page's own buttons: fn's outputs plus a message line that says what went wrong
    (the same one-line message the HTTP API raises), instead of a toast beside the line's old
    message and red "Error" badges on outputs that tell nothing. `outputs`: how many fn returns;
    on a problem they are left as they were; 0: fn returns the message line itself. The API keeps
    the raising handler (`user_errors`)."""
    checked = user_errors(fn)

    @functools.wraps(fn)
    def handler(*args, **kwargs):
        try:
            result = checked(*args, **kwargs)
        except gr.Error as err:
            problem = f"⚠️ {getattr(err, 'message', None) or err}"
            if not outputs:
                return problem
            return [gr.update(value=None) if clear else gr.skip() for _ in range(outputs)] + [problem]
        if outputs == 0:
            return result
        return (list(result) if outputs > 1 else [result]) + [""]
    return handler
