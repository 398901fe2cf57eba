"""`ai_review`, the built-in step: the review of the pipeline's commit, as a step's outcome (passed, failed by the
policy, skipped when there is no reviewer or nothing to review, error for an invalid verdict, infra for a service
that could not be reached). Registered by the runtime in place of `pipelines.builtins.ReviewNotConfigured`."""

from __future__ import annotations

import time
import uuid

from sqlalchemy import select

from taskmaster.core.outcomes import FailureReason, Outcome
from taskmaster.db.models import Pipeline, Project
from taskmaster.pipelines.builtins import BuiltinRun
from taskmaster.projects import settings as project_settings
from taskmaster.projects.settings import ReviewSettings
from taskmaster.workflows.review.service import ReviewServices, ReviewTarget, review

OPTIONS = frozenset({"reviewer"})
"""What `with:` may give `ai_review`: `reviewer`, among those the project allows (never a command)."""


class AiReviewStep:
    """The `ai_review` built-in step over `services` (built once by the runtime, shared by every pipeline)."""

    name = "ai_review"

    def __init__(self, services: ReviewServices) -> None:
        self.services = services

    async def run(self, run: BuiltinRun) -> Outcome:
        started = time.monotonic()
        project = await self._project_of(run.pipeline_id)
        if project is None:
            return Outcome.cannot_run(f"pipeline {run.pipeline_id} does not exist")
        project_id, settings = project
        unknown = sorted(set(run.params) - OPTIONS)
        if unknown:
            return Outcome.cannot_run(
                f"step {run.step!r}: unknown option with.{unknown[0]} of ai_review (options: {', '.join(OPTIONS)})"
            )
        chosen = run.params.get("reviewer")
        if chosen is not None and not settings.allows(chosen):
            problem = (
                f"step {run.step!r}: with.reviewer {chosen!r} is not allowed by this project (it allows "
                f"{', '.join(sorted({settings.reviewer, 'offline', *settings.allowed}))}; project setting "
                "review.allowed)"
            )
            await run.write(f"{problem}\n".encode())
            return Outcome.cannot_run(problem)

        async def write(text: str) -> None:
            await run.write(text.encode())

        target = ReviewTarget(
            project_id=project_id, sha=run.sha, pipeline_id=run.pipeline_id, step_name=run.step, reviewer=chosen
        )
        result = await review(self.services, target, write)
        duration = time.monotonic() - started
        if result.status == "passed":
            return Outcome(exit_code=0, duration=duration)
        if result.status == "skipped":
            return Outcome(skipped=True, reason=result.message, duration=duration)
        if result.status == "failed":
            return Outcome(exit_code=1, failure_reason=FailureReason.CODE, reason=result.message, duration=duration)
        if result.status == "infra":
            return Outcome.infra(result.message, duration=duration)
        return Outcome(reason=result.message, duration=duration)  # error: nothing a retry would fix

    async def _project_of(self, pipeline_id: uuid.UUID) -> tuple[uuid.UUID, ReviewSettings] | None:
        async with self.services.db.session() as session:
            found = (
                await session.execute(
                    select(Project.id, Project.settings)
                    .join(Pipeline, Pipeline.project_id == Project.id)
                    .where(Pipeline.id == pipeline_id)
                )
            ).first()
        if found is None:
            return None
        return found[0], project_settings.load(found[1]).review
