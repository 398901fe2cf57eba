"""AgentAPI safe by default: each test is one finding of the hardening probe, replayed against a real server."""

from __future__ import annotations

import json
import socket
import time
from pathlib import Path

import httpx
import pytest

from tests.agentapi.conftest import agent_argv, agentapi_server, wait_stable, wait_until

SHELL = ["bash", "--norc", "--noprofile", "-i"]


def test_cross_site_text_plain_message_is_refused_and_types_nothing(tmp_path: Path) -> None:
    target = tmp_path / "pwned"
    attack = json.dumps({"content": f"touch {target}\r", "type": "raw"})
    with agentapi_server(SHELL, agent_type="custom") as url, httpx.Client(base_url=url, timeout=30) as http:
        # A browser page's "simple request": text/plain, its own Origin, no preflight.
        page = {"Content-Type": "text/plain", "Origin": "http://evil.example"}
        cross_site = http.post("/message", content=attack, headers=page)
        assert cross_site.status_code == 403
        assert "evil.example" in cross_site.json()["detail"]
        # Without an Origin (a script on the machine) text/plain is still no JSON body.
        plain = http.post("/message", content=attack, headers={"Content-Type": "text/plain"})
        assert plain.status_code == 415
        assert "application/json" in plain.json()["detail"]
        form = http.post("/message", content=attack, headers={"Content-Type": "application/x-www-form-urlencoded"})
        assert form.status_code == 415
        time.sleep(0.5)
        assert not target.exists()
        # The same keys as JSON from an allowed origin do reach the shell: the refusals above were the guard.
        ok = http.post("/message", content=attack, headers={"Content-Type": "application/json", "Origin": url})
        assert ok.status_code == 200
        wait_until(target.exists, timeout=10)


def test_foreign_origin_cannot_start_or_end_sessions() -> None:
    with agentapi_server(multi=True) as url, httpx.Client(base_url=url, timeout=30) as http:
        evil = {"Origin": "http://evil.example"}
        created = http.post("/sessions", json={"command": ["true"]}, headers=evil)
        assert created.status_code == 403
        assert http.delete("/sessions/x", headers=evil).status_code == 403
        assert http.get("/sessions").json()["sessions"] == []
        # Reading is not state-changing: CORS keeps the page from seeing the answer.
        listed = http.get("/sessions", headers=evil)
        assert listed.status_code == 200
        assert "access-control-allow-origin" not in listed.headers


def test_50_mb_message_is_refused_with_413_before_it_is_read() -> None:
    with agentapi_server(agent_argv()) as url, httpx.Client(base_url=url, timeout=60) as http:
        wait_stable(http)
        big = http.post("/message", json={"content": "x" * (50 << 20), "type": "user"})
        assert big.status_code == 413
        assert "limit of 1048576 bytes" in big.json()["detail"]
        assert [m["role"] for m in http.get("/messages").json()["messages"]] == ["agent"]


def test_oversized_chunked_message_without_length_is_refused_with_413() -> None:
    def chunks() -> bytes:
        return b'{"type": "user", "content": "' + b"y" * (2 << 20) + b'"}'

    with agentapi_server(agent_argv(), max_body_bytes=4096) as url, httpx.Client(base_url=url, timeout=60) as http:
        wait_stable(http)
        body = chunks()
        streamed = http.post(
            "/message",
            content=(body[i : i + 65536] for i in range(0, len(body), 65536)),
            headers={"Content-Type": "application/json"},
        )
        assert streamed.status_code == 413
        assert "limit of 4096 bytes" in streamed.json()["detail"]


def test_refused_send_while_the_agent_is_busy_is_409_not_500() -> None:
    with agentapi_server(agent_argv()) as url, httpx.Client(base_url=url, timeout=30) as http:
        wait_stable(http)
        assert http.post("/message", json={"content": "slow 2", "type": "user"}).status_code == 200
        busy = http.post("/message", json={"content": "too early", "type": "user"})
        assert busy.status_code == 409
        assert "waiting for user input" in busy.json()["detail"]


def test_upload_named_dot_dot_or_300_characters_is_422_not_500() -> None:
    with agentapi_server(agent_argv()) as url, httpx.Client(base_url=url, timeout=30) as http:
        for name in ("..", "a" * 300, "."):
            refused = http.post("/upload", files={"file": (name, b"data", "application/octet-stream")})
            assert refused.status_code == 422, (name, refused.text)
            assert refused.json()["errors"][0]["location"] == "body.file.filename"
        nested = http.post("/upload", files={"file": ("../../etc/passwd", b"data", "text/plain")})
        assert nested.status_code == 200
        stored = Path(nested.json()["filePath"])
        assert stored.name == "passwd"
        assert stored.read_bytes() == b"data"
        assert ".." not in stored.parts


def test_upload_must_be_multipart_and_deep_json_is_400() -> None:
    with agentapi_server(agent_argv()) as url, httpx.Client(base_url=url, timeout=30) as http:
        as_json = http.post("/upload", json={"file": "x"})
        assert as_json.status_code == 415
        deep = http.post("/message", content=b"[" * 100_000, headers={"Content-Type": "application/json"})
        assert deep.status_code == 400
        bad_length = _raw_request(url, b"POST /message HTTP/1.1\r\nHost: localhost\r\nContent-Length: 1x\r\n\r\n")
        assert bad_length.startswith(b"HTTP/1.1 400")


def test_without_a_token_only_loopback_clients_are_served() -> None:
    from taskmaster.agents.agentapi.guards import RequestGuard

    seen: list[int] = []

    async def app(scope: object, receive: object, send: object) -> None:
        seen.append(1)

    async def run(client: tuple[str, int]) -> int:
        sent: list[dict[str, object]] = []

        async def send(message: dict[str, object]) -> None:
            sent.append(message)

        async def receive() -> dict[str, object]:
            return {"type": "http.request", "body": b""}

        scope = {"type": "http", "method": "GET", "path": "/status", "headers": [], "client": client}
        await RequestGuard(app, token=None, allowed_origins=[])(scope, receive, send)  # type: ignore[arg-type]
        return int(sent[0]["status"]) if sent else 200

    import asyncio

    assert asyncio.run(run(("10.1.2.3", 5000))) == 403
    assert asyncio.run(run(("127.0.0.1", 5000))) == 200
    assert asyncio.run(run(("::1", 5000))) == 200
    assert asyncio.run(run(("::ffff:127.0.0.1", 5000))) == 200
    assert asyncio.run(run(("::ffff:10.0.0.1", 5000))) == 403
    assert seen == [1, 1, 1]


def _raw_request(url: str, request: bytes) -> bytes:
    host, port = url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(request)
        return sock.recv(4096)


async def test_client_sends_the_token_saved_by_serve_or_given_in_settings(tmp_path: Path) -> None:
    from taskmaster.agents.agentapi.client import AgentApiClient, AgentApiError
    from tests.conftest import make_settings

    with agentapi_server(agent_argv(), auth_token="saved-token") as url:
        settings = make_settings(tmp_path, AGENTAPI_URL=url)
        async with AgentApiClient(settings=settings) as anonymous:
            with pytest.raises(AgentApiError) as refused:
                await anonymous.status()
            assert refused.value.status == 401
        settings.agentapi_token_file.write_text("saved-token\n")
        async with AgentApiClient(settings=settings) as api:
            assert (await api.wait_stable()).stable
        from_env = make_settings(tmp_path / "other", AGENTAPI_URL=url, AGENTAPI_TOKEN="saved-token")
        async with AgentApiClient(settings=from_env) as api:
            assert (await api.status()).agent_type == "claude"
