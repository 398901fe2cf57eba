"""Agent pages: AgentAPI sessions recorded in `agent_sessions` (the servers that keep transcripts in the database)
and their transcripts, refreshed while the agent runs."""

from __future__ import annotations

import uuid

from fastapi import APIRouter, Request, Response
from fastapi.responses import HTMLResponse
from sqlalchemy import select

from taskmaster.core.errors import NotFound
from taskmaster.db.models import AgentSession
from taskmaster.web.deps import ViewerDep, services
from taskmaster.web.pages import PageRoute, render

router = APIRouter(route_class=PageRoute, include_in_schema=False)

ENDED = ("deleted", "exited", "stopped")


@router.get("/agents", response_class=HTMLResponse)
async def agent_list(request: Request, viewer: ViewerDep) -> Response:
    async with services(request).db.autocommit_session() as session:
        rows = list(await session.scalars(select(AgentSession).order_by(AgentSession.created_at.desc()).limit(200)))
    # A session without a project is visible to unlimited credentials only.
    visible = [
        row for row in rows if viewer.sees(row.project_id) and (row.project_id or not viewer.principal.project_id)
    ]
    return render(request, "agents.html", viewer, sessions=visible, ended=ENDED)


@router.get("/agents/{session_id}", response_class=HTMLResponse)
async def agent_page(request: Request, session_id: uuid.UUID, viewer: ViewerDep) -> Response:
    async with services(request).db.autocommit_session() as session:
        row = await session.get(AgentSession, session_id)
    if row is None or not viewer.sees(row.project_id) or (row.project_id is None and viewer.principal.project_id):
        raise NotFound(f"agent session {session_id} does not exist")
    fragment = "_transcript.html" if request.headers.get("hx-request") else "agent.html"
    messages = [m for m in row.config.get("messages", []) if isinstance(m, dict)]
    return render(request, fragment, viewer, agent=row, messages=messages, live=row.status not in ENDED)
