"""Optional login: set G2RPO_PASSWORD and launching, resuming, cancelling and deleting runs need it.

Watching runs and comparing images stay open to every visitor (a public Space can show its runs
without letting strangers spend its GPU). The check runs inside each guarded handler, so the HTTP
API is guarded exactly like the buttons.
"""
from __future__ import annotations

import hmac
import os

import gradio as gr

PASSWORD_ENV = "G2RPO_PASSWORD"


def required() -> bool:
    return bool(os.environ.get(PASSWORD_ENV))


def log_in(password: str) -> tuple[bool, str]:
    """(authorized, message) for the session that typed `password`."""
    expected = os.environ.get(PASSWORD_ENV, "")
    if hmac.compare_digest((password or "").encode(), expected.encode()):
        return True, "Logged in: you can launch, cancel and delete runs."
    return False, "Wrong password."


def guard(authorized: bool) -> None:
    if required() and not authorized:
        raise gr.Error(f"Log in first (this app sets {PASSWORD_ENV}): launching, cancelling and deleting "
                       "runs need the password.")


def login_row(authorized: gr.State) -> None:
    """A password box shown only when a password is set."""
    with gr.Accordion("Log in to launch, cancel or delete runs", open=False, visible=required()):
        with gr.Row():
            password = gr.Textbox(label="Password", type="password", scale=3)
            button = gr.Button("Log in", scale=1)
        message = gr.Markdown()
    button.click(log_in, password, [authorized, message], api_name="login")  # API clients log in too
    password.submit(log_in, password, [authorized, message], api_visibility="private")
