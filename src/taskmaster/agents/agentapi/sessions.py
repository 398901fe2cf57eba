"""Many agent sessions in one process: create, look up, end, persist and restore them."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import structlog

from taskmaster.agents.agentapi.conversation import Conversation, Message, SessionConfig
from taskmaster.agents.agentapi.store import MemoryStore, SessionRecord, TranscriptStore
from taskmaster.core.errors import NotFound
from taskmaster.core.ids import new_id

log = structlog.stdlib.get_logger("taskmaster.agents.agentapi")

SAVE_DELAY = 0.5  # coalesce the many updates of a streaming reply into one write


class SessionManager:
    """Owns every session of a server. Lifecycle: build, `restore()` (optional), serve, `close()`.

    Runs on one event loop. `create` raises InvalidInput when the command cannot start; `get`/`delete` raise
    NotFound for an unknown id. Persistence failures are logged, never raised to the agent's caller.
    """

    def __init__(
        self,
        *,
        store: TranscriptStore | None = None,
        base_env: dict[str, str] | None = None,
        upload_root: Path | None = None,
    ) -> None:
        self.store: TranscriptStore = store or MemoryStore()
        # The agent inherits the server's environment, as it would when started from a shell.
        self.base_env = dict(os.environ) if base_env is None else base_env
        self._own_upload_root = upload_root is None
        self.upload_root = upload_root or Path(tempfile.mkdtemp(prefix="agentapi-uploads-"))
        self.sessions: dict[str, Conversation] = {}
        self.default_id: str | None = None
        self._save_timers: dict[str, asyncio.TimerHandle] = {}
        self._save_tasks: set[asyncio.Task[None]] = set()

    async def create(self, config: SessionConfig, *, session_id: str | None = None, default: bool = False) -> str:
        session_id = session_id or str(new_id())
        conversation = Conversation(config, base_env=self.base_env)
        await conversation.start()
        self._register(session_id, conversation, default)
        return session_id

    def _register(self, session_id: str, conversation: Conversation, default: bool) -> None:
        self.sessions[session_id] = conversation
        if default:
            self.default_id = session_id
        conversation.add_listener(lambda _c: self._schedule_save(session_id))
        self._schedule_save(session_id)

    def get(self, session_id: str) -> Conversation:
        try:
            return self.sessions[session_id]
        except KeyError:
            raise NotFound(f"no session {session_id!r}") from None

    @property
    def default(self) -> Conversation:
        if self.default_id is None:
            raise NotFound("this server has no default session; use /sessions/{id}/...")
        return self.get(self.default_id)

    def upload_dir(self, session_id: str | None) -> Path:
        return self.upload_root / (session_id or "default")

    async def delete(self, session_id: str) -> None:
        """End the session's process group and mark its transcript finished."""
        conversation = self.get(session_id)
        del self.sessions[session_id]
        if self.default_id == session_id:
            self.default_id = None
        timer = self._save_timers.pop(session_id, None)
        if timer is not None:
            timer.cancel()
        await conversation.close()
        shutil.rmtree(self.upload_dir(session_id), ignore_errors=True)
        try:
            await self.store.save(self._record(session_id, conversation))
            await self.store.finish(session_id, datetime.now(UTC))
        except Exception:
            log.exception("could not record the end of a session", session_id=session_id)

    def describe(self, session_id: str) -> dict[str, Any]:
        return {"id": session_id, **self.get(session_id).describe()}

    async def restore(self, *, stability_window: float = 2.0) -> list[str]:
        """Start again every stored session that was not deleted, its transcript before the new start-up screen.

        A session whose command no longer starts is kept out and logged.
        """
        restored = []
        for record in await self.store.load_active():
            if record.id in self.sessions or not record.argv:
                continue
            options = record.options
            config = SessionConfig(
                argv=record.argv,
                agent_type=record.agent_type,
                cwd=record.cwd,
                columns=int(options.get("columns", 80)),
                lines=int(options.get("lines", 1000)),
                prompt_regex=options.get("prompt_regex"),
                queue=bool(options.get("queue", False)),
                stability_window=stability_window,
            )
            conversation = Conversation(config, base_env=self.base_env)
            conversation.restore(
                [
                    Message(
                        int(m["id"]), m["role"], m["content"], datetime.fromisoformat(m["time"].replace("Z", "+00:00"))
                    )
                    for m in record.messages
                ]
            )
            try:
                await conversation.start()
            except Exception:
                log.exception("could not restore a session", session_id=record.id)
                continue
            self._register(record.id, conversation, default=bool(options.get("default")))
            restored.append(record.id)
        return restored

    def _record(self, session_id: str, conversation: Conversation) -> SessionRecord:
        config = conversation.config
        return SessionRecord(
            id=session_id,
            agent_type=conversation.agent_type,
            argv=list(config.argv),
            cwd=config.cwd,
            messages=[m.as_json() for m in conversation.messages if m.content or m.role == "user"],
            status="running" if conversation.alive else "exited",
            started_at=conversation.started_at,
            options={
                "columns": config.columns,
                "lines": config.lines,
                "prompt_regex": config.prompt_regex,
                "queue": config.queue,
                "default": session_id == self.default_id,
            },
        )

    def _schedule_save(self, session_id: str) -> None:
        if session_id in self._save_timers:
            return
        loop = asyncio.get_running_loop()
        self._save_timers[session_id] = loop.call_later(SAVE_DELAY, self._start_save, session_id)

    def _start_save(self, session_id: str) -> None:
        self._save_timers.pop(session_id, None)
        conversation = self.sessions.get(session_id)
        if conversation is None:
            return
        task = asyncio.get_running_loop().create_task(self._save(session_id, conversation))
        self._save_tasks.add(task)
        task.add_done_callback(self._save_tasks.discard)

    async def _save(self, session_id: str, conversation: Conversation) -> None:
        try:
            await self.store.save(self._record(session_id, conversation))
        except Exception:
            log.exception("could not save a transcript", session_id=session_id)

    async def flush(self) -> None:
        """Write every pending transcript now."""
        for session_id in list(self._save_timers):
            self._save_timers.pop(session_id).cancel()
            conversation = self.sessions.get(session_id)
            if conversation is not None:
                await self._save(session_id, conversation)
        if self._save_tasks:
            await asyncio.gather(*self._save_tasks, return_exceptions=True)

    async def close(self) -> None:
        """Save transcripts, then end every agent (transcripts stay restorable: they are not marked deleted)."""
        await self.flush()
        for session_id, conversation in list(self.sessions.items()):
            with contextlib.suppress(Exception):
                await self._save(session_id, conversation)
        await asyncio.gather(*(c.close() for c in self.sessions.values()), return_exceptions=True)
        self.sessions.clear()
        if self._own_upload_root:
            shutil.rmtree(self.upload_root, ignore_errors=True)


def _message(data: dict[str, Any]) -> Message:
    return Message(
        int(data["id"]), data["role"], data["content"], datetime.fromisoformat(data["time"].replace("Z", "+00:00"))
    )
