"""A pipeline's state, read from the database, as the report its forge is sent (see `report.ForgeReporter`)."""

from __future__ import annotations

import uuid

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from taskmaster.db.models import Pipeline, PipelineStep, Project, PullRequest, RecoveryRound
from taskmaster.pipelines.logs import log_tail
from taskmaster.pipelines.report import PipelineReport, RecoveryReport, StepReport
from taskmaster.pipelines.states import STEP_FAILURES, StepStatus


async def pipeline_report(session: AsyncSession, pipeline_id: uuid.UUID) -> tuple[Project, PipelineReport] | None:
    """The project and the report of a pipeline; None when it has no commit, is a recovery trial (never shown on the
    forge as the pull request's status) or its project names no repository."""
    pipeline = await session.get(Pipeline, pipeline_id)
    if pipeline is None or not pipeline.commit_sha or pipeline.trial_of is not None:
        return None
    project = await session.get(Project, pipeline.project_id)
    if project is None or not project.owner or not project.repo_name:
        return None
    number = None
    if pipeline.pull_request_id is not None:
        number = await session.scalar(select(PullRequest.number).where(PullRequest.id == pipeline.pull_request_id))
    steps = (
        await session.scalars(
            select(PipelineStep).where(PipelineStep.pipeline_id == pipeline.id).order_by(PipelineStep.position)
        )
    ).all()
    reports = []
    for step in steps:
        failed = StepStatus(step.status) in STEP_FAILURES
        reports.append(
            StepReport(
                name=step.step_name,
                status=StepStatus(step.status),
                failure_reason=step.failure_reason,  # type: ignore[arg-type]
                exit_code=step.exit_code,
                duration_ms=step.duration_ms,
                error_message=step.error_message,
                log_tail=await log_tail(session, step.id) if failed else "",
            )
        )
    report = PipelineReport(
        pipeline_id=str(pipeline.id),
        repo=f"{project.owner}/{project.repo_name}",
        commit_sha=pipeline.commit_sha,
        pull_request_number=number,
        status=pipeline.status,  # type: ignore[arg-type]
        failure_reason=pipeline.failure_reason,  # type: ignore[arg-type]
        duration_ms=pipeline.duration_ms,
        error_message=pipeline.error_message,
        steps=tuple(reports),
        superseded=pipeline.superseded_by is not None,
        recovery=tuple(await _recovery(session, pipeline.id)),
        review_issue_url=pipeline.review_issue_url,
    )
    return project, report


async def _recovery(session: AsyncSession, pipeline_id: uuid.UUID) -> list[RecoveryReport]:
    rows = await session.scalars(
        select(RecoveryRound)
        .where(RecoveryRound.pipeline_id == pipeline_id)
        .order_by(RecoveryRound.step_name, RecoveryRound.round)
    )
    return [
        RecoveryReport(
            step=row.step_name,
            round=row.round,
            agent=row.agent,
            result=row.result,
            detail=row.detail,
            fix_sha=row.fix_sha,
            tokens=row.input_tokens + row.output_tokens,
            cost_usd=row.cost_usd,
        )
        for row in rows
    ]
