"""Code-generation runs that ended without their cleanup: the task still `in_progress` under a run that is no
longer live and whose worker is gone (canceled while its worker was down, or its worker died while undoing it).
`CodegenWorkflow.sweep` undoes what such a run made and gives its task back."""

from __future__ import annotations

import uuid
from datetime import timedelta

from sqlalchemy import and_, select

from taskmaster.core.clock import utcnow
from taskmaster.db.leases import owner_gone
from taskmaster.db.models import Task, WorkflowRun
from taskmaster.db.session import Database
from taskmaster.workflows.base import LIVE_RUN_STATUSES, RunInput

ASSIGNEE_PREFIX = "codegen:"
"""A task a run holds is assigned to `codegen:<run id>`."""


async def orphaned_runs(db: Database, *, kind: str, stale_after_seconds: float) -> list[tuple[RunInput, str]]:
    """Runs of `kind` that are over and still hold their task, with no live worker left to tidy up after them; each
    with its status (`canceled`, `failed`, ...)."""
    async with db.session() as session:
        held = (
            await session.scalars(
                select(Task.assignee).where(Task.status == "in_progress", Task.assignee.like(f"{ASSIGNEE_PREFIX}%"))
            )
        ).all()
        ids = [run_id for run_id in (_run_id(assignee) for assignee in held) if run_id is not None]
        if not ids:
            return []
        stale_before = utcnow() - timedelta(seconds=stale_after_seconds)
        rows = (
            await session.scalars(
                select(WorkflowRun).where(
                    WorkflowRun.id.in_(ids), WorkflowRun.kind == kind, WorkflowRun.status.not_in(LIVE_RUN_STATUSES),
                    # A worker that is alive undoes its own canceled run (it notices the cancel within a second).
                    and_(WorkflowRun.worker_id.is_not(None), owner_gone(WorkflowRun.worker_id,
                                                                       stale_before=stale_before))
                    | WorkflowRun.worker_id.is_(None),
                )
            )
        ).all()  # fmt: skip
    return [(_input(row), row.status) for row in rows]


def _input(row: WorkflowRun) -> RunInput:
    return RunInput(
        run_id=row.id, kind=row.kind, project_id=row.project_id, attempt=max(row.attempts, 1),
        params=dict(row.params or {}), requested_at=row.created_at,
    )  # fmt: skip


def _run_id(assignee: str | None) -> uuid.UUID | None:
    try:
        return uuid.UUID((assignee or "")[len(ASSIGNEE_PREFIX) :])
    except ValueError:
        return None
