"""Transcripts in `agent_sessions` (SQLite and PostgreSQL) restored after a restart; the opt-in queue; keep-alives."""

from __future__ import annotations

import asyncio
import sys

import httpx

import taskmaster.db.models  # noqa: F401 - registers the tables the `db` fixture creates
from taskmaster.agents.agentapi.conversation import Conversation, SessionConfig
from taskmaster.agents.agentapi.sessions import SessionManager
from taskmaster.agents.agentapi.store import DatabaseStore
from taskmaster.db.session import Database
from tests.agentapi.conftest import FAKE_AGENT, WINDOW, agent_argv, agentapi_server, wait_stable


async def _until(check: object, timeout: float = 20.0) -> None:
    async with asyncio.timeout(timeout):
        while not check():  # type: ignore[operator]
            await asyncio.sleep(0.02)


async def _talk(conv: Conversation, text: str) -> None:
    await _until(lambda: conv.status == "stable")
    await conv.send_user(text)
    await _until(lambda: conv.status == "stable")


async def test_transcript_is_saved_and_restored_after_restart(db: Database) -> None:
    config = SessionConfig(argv=agent_argv(think=0.1), agent_type="claude", lines=40, stability_window=WINDOW)
    first = SessionManager(store=DatabaseStore(db))
    session_id = await first.create(config)
    await _talk(first.get(session_id), "remember me")
    await first.close()  # the server stops; its transcript stays

    second = SessionManager(store=DatabaseStore(db))
    try:
        assert await second.restore(stability_window=WINDOW) == [session_id]
        restored = second.get(session_id)
        await _until(lambda: restored.status == "stable")
        contents = [(m.id, m.role, m.content) for m in restored.messages]
        assert contents[1:3] == [(1, "user", "remember me"), (2, "agent", "Reply to: remember me")]
        assert contents[3][1] == "agent"  # the new run's start-up screen follows the old transcript
        await _talk(restored, "and again")
        assert [m.content for m in restored.messages][-2:] == ["and again", "Reply to: and again"]
        await second.delete(session_id)
    finally:
        await second.close()
    third = SessionManager(store=DatabaseStore(db))
    assert await third.restore() == []  # deleted sessions are not restored
    await third.close()


async def test_queue_delivers_a_message_sent_while_busy() -> None:
    config = SessionConfig(
        argv=agent_argv(think=0.1), agent_type="claude", lines=40, stability_window=WINDOW, queue=True
    )
    conv = Conversation(config)
    await conv.start()
    try:
        await _until(lambda: conv.status == "stable")
        await conv.send_user("slow 1")
        await conv.send_user("queued one")  # busy: queued, not refused
        await _until(lambda: [m.content for m in conv.messages][-1:] == ["Reply to: queued one"], timeout=30)
        assert [m.content for m in conv.messages if m.role == "user"] == ["slow 1", "queued one"]
    finally:
        await conv.close()


def test_sse_sends_keep_alive_comments_while_idle() -> None:
    with agentapi_server(agent_argv(), ping_interval=0.3) as url, httpx.Client(base_url=url, timeout=30) as http:
        wait_stable(http)
        with http.stream("GET", "/events") as stream:
            comments = 0
            for line in stream.iter_lines():
                if line.startswith(":"):
                    comments += 1
                    if comments == 2:
                        break
        assert comments == 2


def test_aider_style_agent_single_session() -> None:
    argv = [sys.executable, str(FAKE_AGENT), "--style", "goose", "--think", "0.1"]
    with agentapi_server(argv, agent_type="goose") as url, httpx.Client(base_url=url, timeout=30) as http:
        wait_stable(http)
        assert http.post("/message", json={"content": "hi goose", "type": "user"}).status_code == 200
        wait_stable(http)
        assert http.get("/messages").json()["messages"][-1]["content"] == "Reply to: hi goose"
