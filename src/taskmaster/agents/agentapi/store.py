"""Where transcripts are kept: in memory (the default, no database) or in the `agent_sessions` table."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from taskmaster.db.session import Database


@dataclass
class SessionRecord:
    """A session as stored: how to start it again and what was said. Environment values are never stored."""

    id: str
    agent_type: str
    argv: list[str]
    cwd: str | None
    messages: list[dict[str, Any]]
    status: str
    started_at: datetime
    finished_at: datetime | None = None
    options: dict[str, Any] = field(default_factory=dict)
    server_url: str | None = None


class TranscriptStore(Protocol):
    """Persistence for sessions. Calls come from one event loop, one at a time per session; `save` upserts.

    Implementations raise their own errors (e.g. the database driver's); the caller logs and carries on, so a
    store outage never stops an agent.
    """

    async def save(self, record: SessionRecord) -> None: ...

    async def load_active(self) -> list[SessionRecord]:
        """Sessions not ended with `DELETE`, oldest first (to be restored after a restart)."""
        ...

    async def finish(self, session_id: str, finished_at: datetime) -> None: ...


class MemoryStore:
    """Keeps records in a dict: transcripts live as long as the process."""

    def __init__(self) -> None:
        self.records: dict[str, SessionRecord] = {}

    async def save(self, record: SessionRecord) -> None:
        self.records[record.id] = record

    async def load_active(self) -> list[SessionRecord]:
        return [r for r in self.records.values() if r.status != "deleted"]

    async def finish(self, session_id: str, finished_at: datetime) -> None:
        record = self.records.get(session_id)
        if record is not None:
            record.status = "deleted"
            record.finished_at = finished_at


class DatabaseStore:
    """One `agent_sessions` row per session (provider `agentapi`); the transcript sits in its `config` JSON."""

    def __init__(self, db: Database) -> None:
        self.db = db

    async def save(self, record: SessionRecord) -> None:
        from taskmaster.db.models.agents import AgentSession

        config = {"argv": record.argv, "cwd": record.cwd, "messages": record.messages, "options": record.options}
        async with self.db.transaction() as session:
            row = await session.get(AgentSession, uuid.UUID(record.id))
            if row is None:
                row = AgentSession(
                    id=uuid.UUID(record.id),
                    agent_type=record.agent_type,
                    provider="agentapi",
                    started_at=record.started_at,
                )
                session.add(row)
            row.external_id = record.id
            row.server_url = record.server_url
            row.status = record.status
            row.config = config
            row.finished_at = record.finished_at
            row.last_activity_at = _last_activity(record)

    async def load_active(self) -> list[SessionRecord]:
        from sqlalchemy import select

        from taskmaster.db.models.agents import AgentSession

        query = (
            select(AgentSession)
            .where(AgentSession.provider == "agentapi", AgentSession.status != "deleted")
            .order_by(AgentSession.id)
        )
        async with self.db.session() as session:
            rows = (await session.scalars(query)).all()
        return [
            SessionRecord(
                id=str(row.id),
                agent_type=row.agent_type,
                argv=list(row.config.get("argv", [])),
                cwd=row.config.get("cwd"),
                messages=list(row.config.get("messages", [])),
                status=row.status,
                started_at=row.started_at or row.created_at,
                finished_at=row.finished_at,
                options=dict(row.config.get("options", {})),
                server_url=row.server_url,
            )
            for row in rows
        ]

    async def finish(self, session_id: str, finished_at: datetime) -> None:
        from taskmaster.db.models.agents import AgentSession

        async with self.db.transaction() as session:
            row = await session.get(AgentSession, uuid.UUID(session_id))
            if row is not None:
                row.status = "deleted"
                row.finished_at = finished_at


def _last_activity(record: SessionRecord) -> datetime | None:
    if not record.messages:
        return None
    return datetime.fromisoformat(str(record.messages[-1]["time"]).replace("Z", "+00:00"))
