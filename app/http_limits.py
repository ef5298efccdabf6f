"""Size bounds on every HTTP request, enforced before anything parses the body.

A public Space is reachable by anyone, and Gradio reads a request body whole before a handler can
check it: without a bound, one 100 MB POST to a handler the page calls without login costs the app
half a gigabyte of memory, and an upload is stored and served back. So, in front of the app:

- a request body longer than G2RPO_MAX_BODY_MB (default 2 MB) is answered 413, whether it says its
  length (Content-Length) or streams it (counted as it arrives; nothing past the bound is read);
- the upload route accepts G2RPO_MAX_UPLOAD_MB (default 0: this app has no upload component, so
  every upload is refused and nothing is stored).

The largest body the page itself sends is the launch form with its prompts, a few hundred kB at
the prompt limits the web form allows (docs/security.md).
"""
from __future__ import annotations

import json
import os

from starlette.exceptions import HTTPException

MAX_BODY_ENV = "G2RPO_MAX_BODY_MB"
MAX_UPLOAD_ENV = "G2RPO_MAX_UPLOAD_MB"
DEFAULT_MAX_BODY_MB = 2.0
DEFAULT_MAX_UPLOAD_MB = 0.0
UPLOAD_SUFFIX = "/gradio_api/upload"


def _megabytes(env: str, default: float) -> int:
    """An operator's bound in bytes; a value that is not a finite, non-negative number stops the app
    at start (a typo must not silently remove the bound)."""
    raw = os.environ.get(env, "").strip()
    try:
        value = float(raw) if raw else default
    except ValueError:
        raise SystemExit(f"error: {env}={raw!r} is not a number of megabytes") from None
    if not 0 <= value < 1e6:
        raise SystemExit(f"error: {env}={raw!r} must be between 0 and 1e6 megabytes")
    return int(value * 1_000_000)


def max_body_bytes() -> int:
    return _megabytes(MAX_BODY_ENV, DEFAULT_MAX_BODY_MB)


def max_upload_bytes() -> int:
    return _megabytes(MAX_UPLOAD_ENV, DEFAULT_MAX_UPLOAD_MB)


class _TooLarge(HTTPException):
    """Raised from the body stream: an HTTPException, so that a framework that catches what the stream
    raises while it parses (FastAPI answers 400 for other errors) still answers 413."""

    def __init__(self, reason: str):
        super().__init__(413, reason)


class BodyLimit:
    """ASGI middleware: 413 for a body over its route's bound (an upload's, or any other request's)."""

    def __init__(self, app, max_body: int | None = None, max_upload: int | None = None):
        self.app = app
        self.max_body = max_body_bytes() if max_body is None else max_body
        self.max_upload = max_upload_bytes() if max_upload is None else max_upload

    def limit_for(self, path: str) -> tuple[int, str]:
        if path.rstrip("/").endswith(UPLOAD_SUFFIX):
            if self.max_upload == 0:
                return 0, "This app accepts no uploads."
            return self.max_upload, f"Uploads are limited to {self.max_upload / 1e6:g} MB ({MAX_UPLOAD_ENV})."
        return self.max_body, f"Request bodies are limited to {self.max_body / 1e6:g} MB ({MAX_BODY_ENV})."

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        limit, reason = self.limit_for(scope.get("path", ""))
        declared = dict(scope.get("headers") or []).get(b"content-length")
        is_upload = scope.get("path", "").rstrip("/").endswith(UPLOAD_SUFFIX)
        try:
            too_long = declared is not None and int(declared) > limit
        except ValueError:
            return await _refuse(send, 400, "Content-Length is not a number.")
        if too_long or (is_upload and limit == 0 and scope.get("method") == "POST"):
            return await _refuse(send, 413, reason)

        received, started = 0, False

        async def counted_receive():
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise _TooLarge(reason)
            return message

        async def tracked_send(message):
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, counted_receive, tracked_send)
        except _TooLarge:
            if not started:
                await _refuse(send, 413, reason)


async def _refuse(send, status: int, reason: str) -> None:
    body = json.dumps({"error": reason}).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                            (b"connection", b"close")]})
    await send({"type": "http.response.body", "body": body})
