"""What a handler's user may cause or fix (bad input, an unknown run, a full queue, storage that
cannot be used) reaches the page and the HTTP API as a gr.Error with its one-line message, never as
Gradio's generic "an upstream app raised an exception" or a traceback.

Such a message may name this machine's folders (a refused prompts file lists the folders configs may
read from, an unusable data folder names itself): it is redacted by the rule every page follows
(app/redact.py). A gr.Error's message is HTML in the page's toast, so it is escaped for HTML; the
page's message lines are Markdown, so there it is escaped for Markdown (app/escape.py).
"""
from __future__ import annotations

import functools
import html
import logging

import gradio as gr

from app import escape
from app.redact import redact

log = logging.getLogger("app")


def _refusals():
    from jobs import api

    return api.ConfigError, api.JobError, api.QueueError, api.StorageError


def user_errors(fn):
    @functools.wraps(fn)  # keeps the signature and type hints Gradio reads (gr.Request, OAuthProfile)
    def handler(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except _refusals() as err:
            raise page_error(page_text(err)) from None
    return handler


def one_line(err: Exception) -> str:
    """A ConfigError lists its problems on lines of their own: one line, problems joined by '; '."""
    head, *problems = str(err).split("\n  - ")
    return f"{head} {'; '.join(problems)}".strip() if problems else head.strip()


def page_text(err: Exception) -> str:
    """A refusal as a page may show it: one line, redacted (plain text). Storage that cannot be
    used is the operator's to fix: logged in full too."""
    from jobs import api

    if isinstance(err, api.StorageError):
        log.error("%s", err)
    return redact(one_line(err))


def page_error(text: str) -> gr.Error:
    """A gr.Error showing plain `text` (its toast renders HTML)."""
    return gr.Error(escape.html_text(text))


def in_message_line(fn, outputs: int, clear: bool | list = False):
    """For the page's own buttons: fn's outputs plus a message line that says what went wrong
    (the same one-line message the HTTP API raises), instead of a toast beside the line's old
    message and red "Error" badges on outputs that tell nothing. `outputs`: how many fn returns;
    on a problem they are left as they were (emptied with clear); 0: fn returns the message line itself. The API keeps
    the raising handler (`user_errors`). The line is Markdown: the problem is escaped for it."""
    @functools.wraps(fn)
    def handler(*args, **kwargs):
        try:
            result = fn(*args, **kwargs)
        except _refusals() as err:
            problem = page_text(err)
        except gr.Error as err:  # raised by fn itself: plain text, or HTML-escaped by page_error
            problem = html.unescape(str(getattr(err, "message", None) or err))
        else:
            if outputs == 0:
                return result
            return (list(result) if outputs > 1 else [result]) + [""]
        line = f"⚠️ {escape.markdown(problem)}"
        # clear: a failed request empties the old result (a list: each output's empty value; HTML's is "")
        fills = [gr.update(value=v) for v in clear] if isinstance(clear, list) else (
            [gr.update(value=None) if clear else gr.skip()] * outputs)
        return fills + [line] if outputs else line
    return handler
