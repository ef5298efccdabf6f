"""Optional login: launching, resuming, cancelling, deleting, downloading and pushing runs need it.

Two ways in, either enough:
- a password (G2RPO_PASSWORD), typed in the page or sent to the API's /login. Failed attempts are
  rate limited per client: after LOGIN_FREE_ATTEMPTS failures in a row, each further attempt must
  wait twice as long as the one before (G2RPO_LOGIN_DELAY_S, doubling, at most 10 minutes), and an
  attempt made too early is refused without looking at the password.
- on a Hugging Face Space with `hf_oauth: true`, "Sign in with Hugging Face" for the accounts in
  G2RPO_HF_USERS or members of the organisations in G2RPO_HF_ORGS (comma-separated).

Watching runs and comparing images stay open to every visitor (a public Space can show its runs
without letting strangers spend its GPU). The check runs inside each guarded handler, so the HTTP
API is guarded exactly like the buttons. See docs/security.md.
"""
from __future__ import annotations

import hmac
import math
import os
import threading
import time
from collections import OrderedDict

import gradio as gr

PASSWORD_ENV = "G2RPO_PASSWORD"
LOGIN_FREE_ATTEMPTS = 3
MAX_DELAY_S = 600.0
MAX_CLIENTS = 10_000  # failure records kept (oldest forgotten first)

_failures: OrderedDict[str, tuple[int, float]] = OrderedDict()  # client -> (failures in a row, last one)
_lock = threading.Lock()


def _names(env: str) -> set[str]:
    return {n.strip().lower() for n in os.environ.get(env, "").split(",") if n.strip()}


def oauth_offered() -> bool:
    """On a Space (SYSTEM=spaces, as Gradio checks) with hf_oauth (Hugging Face then sets
    OAUTH_CLIENT_ID), and an allow-list to check."""
    on_space = os.environ.get("SYSTEM") == "spaces" and bool(os.environ.get("OAUTH_CLIENT_ID"))
    return on_space and bool(_names("G2RPO_HF_USERS") | _names("G2RPO_HF_ORGS"))


def required() -> bool:
    return bool(os.environ.get(PASSWORD_ENV)) or oauth_offered()


def allowed(profile: gr.OAuthProfile | None) -> bool:
    """A signed-in Hugging Face account on the allow-list (by user name, or an organisation's)."""
    if profile is None or not oauth_offered():
        return False
    orgs = {str(o.get("preferred_username") or o.get("name") or "").lower() for o in profile.get("orgs") or []}
    return profile.username.lower() in _names("G2RPO_HF_USERS") or bool(orgs & _names("G2RPO_HF_ORGS"))


def client(request: gr.Request | None) -> str:
    """Who is logging in, for the rate limit: the connecting address, or behind N trusted proxies
    (G2RPO_TRUSTED_PROXIES; 1 by default on a Space) the N-th X-Forwarded-For entry from the end,
    the address the outermost trusted proxy saw (entries before it come from the client)."""
    if request is None:
        return "unknown"
    proxies = int(os.environ.get("G2RPO_TRUSTED_PROXIES", 1 if os.environ.get("SPACE_ID") else 0))
    forwarded = [a.strip() for a in request.headers.get("x-forwarded-for", "").split(",") if a.strip()]
    if proxies and forwarded:
        return forwarded[-min(proxies, len(forwarded))]
    return getattr(request.client, "host", None) or "unknown"


def wait_s(failures: int) -> float:
    """How long a client must wait after `failures` failed attempts in a row."""
    if failures < LOGIN_FREE_ATTEMPTS:
        return 0.0
    base = float(os.environ.get("G2RPO_LOGIN_DELAY_S", 1.0))
    return min(MAX_DELAY_S, base * 2 ** (failures - LOGIN_FREE_ATTEMPTS))


def log_in(password: str, request: gr.Request = None) -> tuple[bool, str]:
    """(authorized, message) for the session that typed `password`."""
    who, now = client(request), time.monotonic()
    with _lock:
        failures, last = _failures.get(who, (0, 0.0))
        early = last + wait_s(failures) - now
        if early > 0:
            return False, f"Too many wrong passwords: wait {math.ceil(early)} s before the next attempt."
        expected = os.environ.get(PASSWORD_ENV, "")
        if expected and hmac.compare_digest((password or "").encode(), expected.encode()):
            _failures.pop(who, None)
            return True, "Logged in: you can launch, cancel and delete runs."
        _failures[who] = (failures + 1, now)
        _failures.move_to_end(who)
        while len(_failures) > MAX_CLIENTS:
            _failures.popitem(last=False)
    delay = wait_s(failures + 1)
    return False, "Wrong password." + (f" Next attempt in {math.ceil(delay)} s." if delay else "")


def guard(authorized: bool, profile: gr.OAuthProfile | None = None) -> None:
    if required() and not authorized and not allowed(profile):
        ways = " or sign in with Hugging Face" if oauth_offered() else ""
        raise gr.Error(f"Log in first (this app sets {PASSWORD_ENV}{ways}): launching, cancelling, deleting, "
                       "downloading and pushing runs need it.")


def login_row(authorized: gr.State) -> None:
    """A password box (shown when a password is set) and, on a Space with OAuth, the HF button."""
    if oauth_offered():
        gr.LoginButton()
    with gr.Accordion("Log in to launch, cancel or delete runs", open=False, visible=bool(os.environ.get(PASSWORD_ENV))):
        with gr.Row():
            password = gr.Textbox(label="Password", type="password", scale=3)
            button = gr.Button("Log in", scale=1)
        message = gr.Markdown()
    button.click(log_in, password, [authorized, message], api_name="login")  # API clients log in too
    password.submit(log_in, password, [authorized, message], api_visibility="private")
