"""What a stranger's oversized request costs the app: bodies and uploads over their bound are refused
with 413 before they are read (unit, on a bare ASGI app; and on the served app), nothing is stored,
Gradio's traffic dashboard is not served, and a spoofed X-Forwarded-For from loopback does not give
a client a fresh login count."""
import asyncio
import os
from pathlib import Path

import httpx
import pytest
from gradio_client import Client

from app import auth
from app.http_limits import BodyLimit

MB = 1_000_000


async def _echo(scope, receive, send):
    """A bare app that reads the whole body and answers its length."""
    size, more = 0, True
    while more:
        message = await receive()
        size += len(message.get("body", b""))
        more = message.get("more_body", False)
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": str(size).encode()})


def _post(app, path: str, body: bytes, declare_length: bool = True, chunk: int = 65536) -> tuple[int, bytes, int]:
    """Drive one POST through the ASGI app; returns (status, body, bytes the app was handed)."""
    chunks = [body[i:i + chunk] for i in range(0, len(body), chunk)] or [b""]
    handed, sent = 0, []
    headers = [(b"content-length", str(len(body)).encode())] if declare_length else []

    async def receive():
        nonlocal handed
        piece = chunks.pop(0)
        handed += len(piece)
        return {"type": "http.request", "body": piece, "more_body": bool(chunks)}

    async def send(message):
        sent.append(message)

    scope = {"type": "http", "method": "POST", "path": path, "headers": headers}
    asyncio.run(app(scope, receive, send))
    status = next(m["status"] for m in sent if m["type"] == "http.response.start")
    return status, b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body"), handed


def test_a_declared_or_streamed_body_over_the_bound_is_refused_before_it_is_read():
    app = BodyLimit(_echo, max_body=1 * MB, max_upload=0)
    assert _post(app, "/gradio_api/queue/join", b"x" * 1000)[:2] == (200, b"1000")
    status, body, handed = _post(app, "/gradio_api/queue/join", b"x" * (3 * MB))
    assert status == 413 and b"limited to 1 MB" in body and handed == 0  # Content-Length: nothing read
    status, body, handed = _post(app, "/gradio_api/queue/join", b"x" * (3 * MB), declare_length=False)
    assert status == 413 and handed <= 1 * MB + 65536  # streamed: reading stops at the bound
    assert _post(app, "/gradio_api/queue/join", b"x" * MB, declare_length=False)[0] == 200  # exactly the bound


def test_uploads_are_refused_unless_the_operator_allows_them(monkeypatch):
    status, body, handed = _post(BodyLimit(_echo, max_body=MB, max_upload=0), "/gradio_api/upload", b"x" * 10)
    assert status == 413 and b"accepts no uploads" in body and handed == 0
    monkeypatch.setenv("G2RPO_MAX_UPLOAD_MB", "0.5")
    app = BodyLimit(_echo, max_body=10 * MB)
    assert _post(app, "/gradio_api/upload", b"x" * 1000)[0] == 200
    assert _post(app, "/gradio_api/upload", b"x" * MB, declare_length=False)[0] == 413
    monkeypatch.setenv("G2RPO_MAX_UPLOAD_MB", "lots")
    with pytest.raises(SystemExit, match="G2RPO_MAX_UPLOAD_MB='lots' is not a number"):
        BodyLimit(_echo)


def _gradio_uploads() -> set[Path]:
    root = Path(os.environ.get("GRADIO_TEMP_DIR") or Path(os.environ.get("TMPDIR", "/tmp")) / "gradio")
    return set(root.rglob("*")) if root.exists() else set()


def test_the_served_app_refuses_a_30_mb_upload_and_a_20_mb_body_and_stores_nothing(app_server):
    before = _gradio_uploads()
    upload = httpx.post(f"{app_server['url']}gradio_api/upload", files={"files": ("big.bin", b"\0" * (30 * MB))},
                        timeout=60)
    assert upload.status_code == 413 and "accepts no uploads" in upload.json()["error"]
    body = httpx.post(f"{app_server['url']}gradio_api/call/submit", timeout=60,
                      content=b'{"data": ["' + b"a red circle\\n" * (20 * MB // 14) + b'"]}',
                      headers={"content-type": "application/json"})
    assert body.status_code == 413 and "limited to 2 MB" in body.json()["error"]
    assert _gradio_uploads() == before
    assert httpx.get(f"{app_server['url']}monitoring/summary", timeout=30).status_code != 200


def test_a_spoofed_forwarded_address_from_loopback_does_not_reset_the_login_delay(app_server, monkeypatch):
    monkeypatch.setenv("G2RPO_PASSWORD", "s3cret")
    monkeypatch.setenv("G2RPO_LOGIN_DELAY_S", "30")
    monkeypatch.setenv("G2RPO_TRUSTED_PROXIES", "0")
    auth._failures.clear()
    messages = []
    for n in range(auth.LOGIN_FREE_ATTEMPTS + 2):  # each attempt claims a new address
        client = Client(app_server["url"], verbose=False, headers={"X-Forwarded-For": f"203.0.113.{n}"})
        messages.append(client.predict("wrong", api_name="/login"))
        client.close()
    # one count, the connecting peer's, whatever address each attempt claimed
    assert messages[auth.LOGIN_FREE_ATTEMPTS - 1] == "Wrong password. Next attempt in 30 s.", messages
    assert all(m.startswith("Too many wrong passwords") for m in messages[auth.LOGIN_FREE_ATTEMPTS:]), messages
    monkeypatch.setenv("G2RPO_TRUSTED_PROXIES", "1")  # declared: the proxy's entry is the client
    auth._failures.clear()
    for n in range(auth.LOGIN_FREE_ATTEMPTS + 2):
        client = Client(app_server["url"], verbose=False, headers={"X-Forwarded-For": f"203.0.113.{n}"})
        assert client.predict("wrong", api_name="/login") == "Wrong password."
        client.close()
    auth._failures.clear()
