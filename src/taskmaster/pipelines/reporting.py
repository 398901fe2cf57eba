"""A pipeline's state, read from the database, as the report its forge is sent (see `report.ForgeReporter`)."""

from __future__ import annotations

import uuid

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from taskmaster.db.models import (
    Pipeline,
    PipelineStep,
    Project,
    PullRequest,
    RecoveryRound,
    ReviewFinding,
    ReviewReport,
)
from taskmaster.forges.base import Annotation, AnnotationLevel
from taskmaster.pipelines.logs import log_tail
from taskmaster.pipelines.report import PipelineReport, RecoveryReport, StepReport
from taskmaster.pipelines.states import STEP_FAILURES, StepStatus
from taskmaster.projects.repository import forge_path


def forge_repo(project: Project) -> str | None:
    """The repository as the project's forge names it (`owner/name`, GitLab's `group/…/name`), or None when the
    project names none."""
    if (path := forge_path(project)) is not None:
        return path
    # A local-forge project's repository is its path (its forge, `forges.local`, is bound to the project anyway).
    if project.forge == "local" and project.repository.startswith("/"):
        return project.repository
    return None


async def pipeline_report(session: AsyncSession, pipeline_id: uuid.UUID) -> tuple[Project, PipelineReport] | None:
    """The project and the report of a pipeline; None when it has no commit, is a recovery trial (never shown on the
    forge as the pull request's status) or its project names no repository."""
    pipeline = await session.get(Pipeline, pipeline_id)
    if pipeline is None or not pipeline.commit_sha or pipeline.trial_of is not None:
        return None
    project = await session.get(Project, pipeline.project_id)
    if project is None:
        return None
    repo = forge_repo(project)
    if repo is None:
        return None
    number = None
    if pipeline.pull_request_id is not None:
        number = await session.scalar(select(PullRequest.number).where(PullRequest.id == pipeline.pull_request_id))
    steps = (
        await session.scalars(
            select(PipelineStep).where(PipelineStep.pipeline_id == pipeline.id).order_by(PipelineStep.position)
        )
    ).all()
    reviews = await _reviews(session, pipeline.id)
    reports = []
    for step in steps:
        failed = StepStatus(step.status) in STEP_FAILURES
        annotations, summary = reviews.get(step.step_name, ((), ""))
        reports.append(
            StepReport(
                name=step.step_name,
                status=StepStatus(step.status),
                failure_reason=step.failure_reason,  # type: ignore[arg-type]
                exit_code=step.exit_code,
                duration_ms=step.duration_ms,
                error_message=step.error_message,
                log_tail=await log_tail(session, step.id) if failed else "",
                annotations=annotations,
                summary=summary,
            )
        )
    report = PipelineReport(
        pipeline_id=str(pipeline.id),
        repo=repo,
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


_LEVELS = {"blocker": AnnotationLevel.FAILURE, "major": AnnotationLevel.FAILURE, "minor": AnnotationLevel.WARNING}


async def _reviews(session: AsyncSession, pipeline_id: uuid.UUID) -> dict[str, tuple[tuple[Annotation, ...], str]]:
    """Per review step, its latest report: the findings first posted by it, as annotations, and its Markdown."""
    latest: dict[str, ReviewReport] = {}
    rows = await session.scalars(
        select(ReviewReport).where(ReviewReport.pipeline_id == pipeline_id).order_by(ReviewReport.created_at)
    )
    for row in rows:
        latest[row.step_name or ""] = row
    found: dict[str, tuple[tuple[Annotation, ...], str]] = {}
    for name, row in latest.items():
        findings = (
            await session.scalars(
                select(ReviewFinding)
                .where(ReviewFinding.report_id == row.id, ReviewFinding.posted.is_(True))
                .order_by(ReviewFinding.path, ReviewFinding.start_line)
            )
        ).all()
        annotations = tuple(
            Annotation(
                path=f.path,
                start_line=f.start_line,
                end_line=f.end_line,
                message=f.message[:1000],
                level=_LEVELS.get(f.severity, AnnotationLevel.NOTICE),
                title=f"{f.severity}: {f.category}",
            )
            for f in findings
        )
        markdown = row.report.get("markdown") if isinstance(row.report, dict) else None
        found[name] = (annotations, markdown if isinstance(markdown, str) else "")
    return found


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
