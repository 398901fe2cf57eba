"""The words of pipeline state: pipeline and step statuses, failure reasons, pipeline types.

Pure vocabulary: which statuses exist and which of them are final. The rules that move between them live elsewhere.
"""

from __future__ import annotations

from enum import StrEnum

from taskmaster.core.outcomes import FailureReason as FailureReason  # the one declaration, below workspaces


class PipelineStatus(StrEnum):
    """`pending → queued → running → success | failed | error | canceled | timed_out` (DESIGN, Pipelines)."""

    PENDING = "pending"
    QUEUED = "queued"
    RUNNING = "running"
    SUCCESS = "success"
    FAILED = "failed"
    ERROR = "error"
    CANCELED = "canceled"
    TIMED_OUT = "timed_out"

    @property
    def is_terminal(self) -> bool:
        return self in PIPELINE_TERMINAL


class StepStatus(StrEnum):
    """A pipeline's statuses plus `waiting` (for its needs), `retry_scheduled`, `awaiting_recovery` (a recovery run
    decides whether it runs again) and `skipped`."""

    PENDING = "pending"
    WAITING = "waiting"
    QUEUED = "queued"
    RUNNING = "running"
    RETRY_SCHEDULED = "retry_scheduled"
    AWAITING_RECOVERY = "awaiting_recovery"
    SUCCESS = "success"
    FAILED = "failed"
    ERROR = "error"
    SKIPPED = "skipped"
    CANCELED = "canceled"
    TIMED_OUT = "timed_out"

    @property
    def is_terminal(self) -> bool:
        return self in STEP_TERMINAL

    @property
    def is_failure(self) -> bool:
        """Ended without succeeding through a fault of its own (not skipped, not canceled)."""
        return self in STEP_FAILURES


class PipelineType(StrEnum):
    """What a pipeline is for; `.taskmaster.yml` may give each type its own steps (see `definition`)."""

    VALIDATION = "validation"
    PUSH = "push"
    CODEGEN = "codegen"


PIPELINE_TERMINAL: frozenset[PipelineStatus] = frozenset(
    {
        PipelineStatus.SUCCESS,
        PipelineStatus.FAILED,
        PipelineStatus.ERROR,
        PipelineStatus.CANCELED,
        PipelineStatus.TIMED_OUT,
    }
)
STEP_TERMINAL: frozenset[StepStatus] = frozenset(
    {
        StepStatus.SUCCESS,
        StepStatus.FAILED,
        StepStatus.ERROR,
        StepStatus.SKIPPED,
        StepStatus.CANCELED,
        StepStatus.TIMED_OUT,
    }
)
STEP_FAILURES: frozenset[StepStatus] = frozenset({StepStatus.FAILED, StepStatus.ERROR, StepStatus.TIMED_OUT})
# Not yet handed to an executor: the only statuses a plan's ready/skip helpers move a step out of.
STEP_NOT_STARTED: frozenset[StepStatus] = frozenset({StepStatus.PENDING, StepStatus.WAITING})


def is_terminal(status: PipelineStatus | StepStatus | str) -> bool:
    """Whether a pipeline or step status is final. A plain string is read as a step status (a superset)."""
    if isinstance(status, PipelineStatus):
        return status in PIPELINE_TERMINAL
    return StepStatus(status) in STEP_TERMINAL
