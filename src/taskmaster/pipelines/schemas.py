"""Pipeline I/O models, shared by the doors: `taskmaster pipeline list|show --json` and `/api/pipelines` print the
same fields."""

from __future__ import annotations

import uuid
from datetime import datetime

from pydantic import BaseModel, Field

from taskmaster.costs.schemas import AiUsageOut
from taskmaster.db.models import Pipeline
from taskmaster.pipelines.queries import PipelineDetail
from taskmaster.pipelines.states import PipelineType


class PipelineSummary(BaseModel):
    """A pipeline without its steps."""

    id: uuid.UUID
    project_id: uuid.UUID
    pipeline_type: str
    status: str
    failure_reason: str | None
    branch_name: str | None
    commit_sha: str | None
    pull_request_id: uuid.UUID | None
    trigger_event: str | None
    superseded_by: uuid.UUID | None
    worker_id: str | None
    """The worker (or `pipeline run` process) that owns and runs it; another takes over if it dies."""
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    duration_ms: int | None
    error_message: str | None
    trial_of: uuid.UUID | None = None
    """Set on a recovery trial: the pipeline whose fix it tries (never reported to the forge)."""
    review_issue_url: str | None = None
    """The issue opened for manual review when recovery found no fix."""

    @classmethod
    def of(cls, row: Pipeline) -> PipelineSummary:
        return cls.model_validate(row, from_attributes=True)


class AttemptOut(BaseModel):
    attempt: int
    status: str
    exit_code: int | None
    failure_reason: str | None
    error_message: str | None
    worker_id: str | None
    started_at: datetime | None
    finished_at: datetime | None
    duration_ms: int | None


class StepOut(BaseModel):
    name: str
    type: str
    position: int
    needs: list[str]
    status: str
    retry_count: int
    max_retries: int
    exit_code: int | None
    failure_reason: str | None
    error_message: str | None
    next_attempt_at: datetime | None
    started_at: datetime | None
    finished_at: datetime | None
    duration_ms: int | None
    attempts: list[AttemptOut]


class RecoveryRoundOut(BaseModel):
    """One debug round of a failed step: who debugged, the prompt version, tokens and cost, the patch and what
    became of it (`no_fix`, `refused`, `red`, `pushed`, `suggested`, `handed_off`, `error`)."""

    step: str
    round: int
    agent: str
    template_name: str | None
    template_version: int | None
    input_tokens: int
    output_tokens: int
    cost_usd: float | None
    result: str
    detail: str | None
    explanation: str | None
    patch: str | None
    trial_pipeline_id: uuid.UUID | None
    fix_sha: str | None
    created_at: datetime


class PipelineOut(PipelineSummary):
    """A pipeline with its steps (plan order) and every attempt of each, and its recovery rounds."""

    steps: list[StepOut]
    recovery: list[RecoveryRoundOut] = Field(default_factory=list)
    ai: AiUsageOut = Field(default_factory=AiUsageOut)
    """Tokens and cost of the pipeline's AI calls (review, recovery), summed."""

    @classmethod
    def of_detail(cls, detail: PipelineDetail) -> PipelineOut:
        steps = [
            StepOut(
                name=s.step.step_name,
                type=s.step.step_type,
                position=s.step.position,
                needs=s.step.needs,
                status=s.step.status,
                retry_count=s.step.retry_count,
                max_retries=s.step.max_retries,
                exit_code=s.step.exit_code,
                failure_reason=s.step.failure_reason,
                error_message=s.step.error_message,
                next_attempt_at=s.step.next_attempt_at,
                started_at=s.step.started_at,
                finished_at=s.step.finished_at,
                duration_ms=s.step.duration_ms,
                attempts=[AttemptOut.model_validate(a, from_attributes=True) for a in s.attempts],
            )
            for s in detail.steps
        ]
        rounds = [
            RecoveryRoundOut(
                step=r.step_name,
                round=r.round,
                agent=r.agent,
                template_name=r.template_name,
                template_version=r.template_version,
                input_tokens=r.input_tokens,
                output_tokens=r.output_tokens,
                cost_usd=r.cost_usd,
                result=r.result,
                detail=r.detail,
                explanation=r.explanation,
                patch=r.patch,
                trial_pipeline_id=r.trial_pipeline_id,
                fix_sha=r.fix_sha,
                created_at=r.created_at,
            )
            for r in detail.recovery
        ]
        return cls(**PipelineSummary.of(detail.pipeline).model_dump(), steps=steps, recovery=rounds, ai=detail.ai.out())


class PipelinePage(BaseModel):
    items: list[PipelineSummary]
    total: int
    limit: int
    offset: int


class PipelineStatusOut(BaseModel):
    id: uuid.UUID
    status: str
    failure_reason: str | None
    finished: bool
    steps: dict[str, str] = Field(description="Each step's status, in plan order.")


class RunRequest(BaseModel):
    project: str = Field(min_length=1, description="The project's id or name.")
    ref: str = Field(min_length=1, max_length=500, description="A branch, tag or commit of its repository.")
    type: PipelineType = PipelineType.VALIDATION


class RetryRequest(BaseModel):
    step: str | None = Field(
        None,
        min_length=1,
        max_length=200,
        description="Run again only this step, the steps it needs and the steps that need it; keep the other "
        "steps that succeeded.",
    )


class CancelRequest(BaseModel):
    reason: str | None = Field(None, max_length=1000, description="Recorded as the pipeline's error message.")
