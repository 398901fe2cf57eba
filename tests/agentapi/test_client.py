"""The async client against our server (real agent, real HTTP), and against a server shaped like the reference."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import pytest
from fastapi import FastAPI
from fastapi.responses import JSONResponse, Response

from taskmaster.agents.agentapi.client import AgentApiClient, AgentApiError, AgentExited, Transcript, parse_time
from tests.agentapi.conftest import agent_argv, agentapi_server
from tests.support import TcpProxy, live_server


async def test_status_messages_send_and_wait_raw_and_upload(server: str) -> None:
    async with AgentApiClient(server) as api:
        status = await api.wait_stable()
        assert (status.status, status.agent_type, status.transport) == ("stable", "claude", "pty")
        reply = await api.send_and_wait("lines 120", timeout=30)
        assert reply.content.split("\n") == [f"line {i:04d} of 120" for i in range(1, 121)]
        messages = await api.messages()
        assert [m.role for m in messages] == ["agent", "user", "agent"]
        assert messages[1].content == "lines 120"
        assert messages[2].time.tzinfo is not None
        with pytest.raises(AgentApiError) as empty:
            await api.send("   ")
        assert empty.value.status == 422
        assert "must not be empty" in empty.value.detail
        await api.send("permission")
        waiting = await api.wait_stable(timeout=20)
        assert waiting.waiting_for is not None
        assert waiting.waiting_for["question"] == "Allow the agent to edit files?"
        assert [c["key"] for c in waiting.waiting_for["choices"]] == ["1", "2"]
        await api.send_raw("2")
        await api.wait_stable(timeout=20)
        assert (await api.messages())[-1].content.endswith("Permission denied")
        path = await api.upload("data.bin", b"\x00\x01payload")
        with open(path, "rb") as f:
            assert f.read() == b"\x00\x01payload"


async def test_send_and_wait_raises_when_the_agent_crashes(server: str) -> None:
    async with AgentApiClient(server) as api:
        with pytest.raises(AgentExited, match="exited with code 3"):
            await api.send_and_wait("crash", timeout=30)


async def test_events_reconnect_after_a_cut_and_merge_by_id() -> None:
    with agentapi_server(agent_argv()) as url:
        port = int(url.rsplit(":", 1)[1])
        proxy = TcpProxy("127.0.0.1", port)
        proxy.start()
        try:
            async with AgentApiClient(f"http://127.0.0.1:{proxy.port}") as api:
                await api.wait_stable()
                transcript = Transcript()
                seen_ids: list[int] = []

                async def follow() -> None:
                    async for event in api.events(max_delay=0.2):
                        transcript.apply(event)
                        if event.type == "message_update":
                            seen_ids.append(int(event.data["id"]))

                task = asyncio.create_task(follow())
                await _until(lambda: transcript.status == "stable")
                proxy.stop()  # the connection drops mid-stream
                proxy = TcpProxy("127.0.0.1", port)
                proxy.port = int(api._http.base_url.port or 0)
                proxy.start()
                await _until(lambda: seen_ids.count(0) >= 2, timeout=10)  # reconnected: state replayed
                async with AgentApiClient(url) as direct:
                    await direct.send_and_wait("through the proxy", timeout=30)
                await _until(lambda: any(m.content == "Reply to: through the proxy" for m in transcript.ordered()))
                task.cancel()
                assert [m.id for m in transcript.ordered()] == [0, 1, 2]
                assert transcript.ordered()[1].content == "through the proxy"
        finally:
            proxy.stop()


async def _until(check: object, timeout: float = 20.0) -> None:
    async with asyncio.timeout(timeout):
        while not check():  # type: ignore[operator]
            await asyncio.sleep(0.02)


def _reference_like_app() -> FastAPI:
    """Payloads exactly as coder/agentapi writes them: `$schema`, nanoseconds, local offsets, fields missing."""
    app = FastAPI()

    @app.get("/status")
    async def status() -> Response:
        return JSONResponse({"$schema": "http://localhost:3284/schemas/StatusResponseBody.json", "status": "stable"})

    @app.get("/messages")
    async def messages() -> Response:
        return JSONResponse(
            {
                "$schema": "http://localhost:3284/schemas/MessagesResponseBody.json",
                "messages": [
                    {"id": 0, "role": "agent", "content": "Welcome", "time": "2025-06-01T10:00:00.123456789+02:00"},
                    {"id": 1, "role": "user", "content": "hi", "time": "2025-06-01T08:00:01Z"},
                ],
            }
        )

    @app.post("/message")
    async def message() -> Response:
        body = {
            "$schema": "http://localhost:3284/schemas/ErrorModel.json",
            "title": "Internal Server Error",
            "status": 500,
            "detail": "failed to send message: message can only be sent when the agent is waiting for user input",
        }
        return JSONResponse(body, status_code=500, media_type="application/problem+json")

    return app


async def test_client_tolerates_reference_quirks() -> None:
    with live_server(_reference_like_app()) as url:
        async with AgentApiClient(url) as api:
            status = await api.status()
            assert (status.status, status.agent_type, status.transport) == ("stable", None, None)
            first, second = await api.messages()
            assert first.time == datetime(2025, 6, 1, 8, 0, 0, 123456, tzinfo=UTC)
            assert second.time == datetime(2025, 6, 1, 8, 0, 1, tzinfo=UTC)
            with pytest.raises(AgentApiError, match="waiting for user input"):
                await api.send("hello")


def test_parse_time_accepts_go_and_python_forms() -> None:
    assert parse_time("2025-01-02T03:04:05.999999999Z") == datetime(2025, 1, 2, 3, 4, 5, 999999, tzinfo=UTC)
    assert parse_time("2025-01-02T03:04:05Z") == datetime(2025, 1, 2, 3, 4, 5, tzinfo=UTC)
    assert parse_time("2025-01-02T03:04:05.5-01:00") == datetime(2025, 1, 2, 4, 4, 5, 500000, tzinfo=UTC)


def test_default_base_url_comes_from_settings(tmp_path: object) -> None:
    from tests.conftest import make_settings

    settings = make_settings(tmp_path, AGENTAPI_URL="http://agents.internal:9999")  # type: ignore[arg-type]
    api = AgentApiClient(settings=settings)
    assert str(api._http.base_url) == "http://agents.internal:9999"
    assert str(AgentApiClient()._http.base_url) == "http://localhost:3284"
