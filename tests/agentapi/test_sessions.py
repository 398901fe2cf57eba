"""Many sessions in one server: create, list, talk to each under /sessions/{id}/..., delete ends the process group."""

from __future__ import annotations

import asyncio
import os
import sys

import httpx
import pytest

from taskmaster.agents.agentapi.client import AgentApiClient, AgentApiError
from tests.agentapi.conftest import FAKE_AGENT, agentapi_server, send_and_wait, wait_stable, wait_until


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split()[2] != "Z"
    except FileNotFoundError:
        return False


def test_create_list_talk_and_delete_a_session(tmp_path: object) -> None:
    with agentapi_server(multi=True) as url, httpx.Client(base_url=url, timeout=30) as http:
        created = http.post(
            "/sessions",
            json={
                "type": "aider",
                "command": [sys.executable, str(FAKE_AGENT), "--style", "aider", "--think", "0.1"],
                "cwd": str(tmp_path),
                "env": {"FAKE_AGENT_MARK": "1"},
                "term_height": 30,
            },
        )
        assert created.status_code == 201, created.text
        session_id = created.json()["id"]
        listed = http.get("/sessions").json()["sessions"]
        assert [s["id"] for s in listed] == [session_id]
        assert listed[0]["agent_type"] == "aider"
        assert listed[0]["cwd"] == str(tmp_path)
        prefix = f"/sessions/{session_id}"
        messages = send_and_wait(http, "hello aider", prefix)
        assert messages[-1]["content"] == "Reply to: hello aider"
        assert http.get(f"{prefix}/status").json()["agent_type"] == "aider"
        pid = http.get(prefix).json()["pid"]
        with open(f"/proc/{pid}/environ", "rb") as f:
            assert b"FAKE_AGENT_MARK=1" in f.read()
        assert os.readlink(f"/proc/{pid}/cwd") == str(tmp_path)
        assert http.delete(prefix).status_code == 200
        wait_until(lambda: not _alive(pid), timeout=10)
        missing = http.get(f"{prefix}/status")
        assert missing.status_code == 404
        assert missing.headers["content-type"] == "application/problem+json"
        assert http.get("/sessions").json()["sessions"] == []
        # A multi-session server without a default session has nothing at the root.
        assert http.get("/status").status_code == 404


def test_bad_session_requests_are_problems() -> None:
    with agentapi_server(multi=True) as url, httpx.Client(base_url=url, timeout=30) as http:
        unknown_type = http.post("/sessions", json={"type": "nope", "command": ["true"]})
        assert unknown_type.status_code == 422
        no_such_command = http.post("/sessions", json={"command": ["/nonexistent/agent"]})
        assert no_such_command.status_code == 422
        assert "cannot start" in no_such_command.json()["detail"]
        assert http.delete("/sessions/unknown").status_code == 404


@pytest.mark.slow
async def test_twenty_concurrent_sessions_each_answer_correctly() -> None:
    with agentapi_server(multi=True) as url:
        async with AgentApiClient(url, timeout=60) as api:
            command = [sys.executable, str(FAKE_AGENT), "--think", "0.2"]
            ids = await asyncio.gather(
                *(api.create_session(command, agent_type="claude", term_height=40) for _ in range(20))
            )
            assert len(set(ids)) == 20

            async def talk(index: int, session_id: str) -> str:
                reply = await api.session(session_id).send_and_wait(f"question number {index}", timeout=60)
                return reply.content

            replies = await asyncio.gather(*(talk(i, s) for i, s in enumerate(ids)))
            assert replies == [f"Reply to: question number {i}" for i in range(20)]
            sessions = await api.list_sessions()
            assert {s["id"] for s in sessions} == set(ids)
            assert all(s["alive"] for s in sessions)
            await asyncio.gather(*(api.delete_session(s) for s in ids))
            assert await api.list_sessions() == []
            with pytest.raises(AgentApiError) as missing:
                await api.session(ids[0]).status()
            assert missing.value.status == 404


def test_default_session_is_served_at_root_beside_sessions() -> None:
    from tests.agentapi.conftest import agent_argv

    with agentapi_server(agent_argv(), multi=True) as url, httpx.Client(base_url=url, timeout=30) as http:
        wait_stable(http)
        (session,) = http.get("/sessions").json()["sessions"]
        wait_stable(http, f"/sessions/{session['id']}")
        root = http.get("/messages").json()["messages"]
        scoped = http.get(f"/sessions/{session['id']}/messages").json()["messages"]
        assert root == scoped
