"""Record audit events in the caller's transaction, so an event exists exactly when its change does."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from taskmaster.core.logging import current_request_id
from taskmaster.db.models import AuditEvent


async def record(
    session: AsyncSession,
    *,
    actor: str,
    action: str,
    target_type: str,
    target_id: str | uuid.UUID | None = None,
    project_id: uuid.UUID | None = None,
    data: dict[str, Any] | None = None,
) -> AuditEvent:
    """Add an event (e.g. action "token.create") carrying the current request id. Never put secrets in `data`."""
    event = AuditEvent(
        actor=actor,
        action=action,
        target_type=target_type,
        target_id=None if target_id is None else str(target_id),
        project_id=project_id,
        request_id=current_request_id(),
        data=data or {},
    )
    session.add(event)
    await session.flush()
    return event


async def list_events(session: AsyncSession, *, limit: int = 100) -> list[AuditEvent]:
    """The newest events first."""
    query = select(AuditEvent).order_by(AuditEvent.created_at.desc(), AuditEvent.id.desc()).limit(limit)
    return list((await session.scalars(query)).all())
