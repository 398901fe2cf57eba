"""Every pipeline status change, as named rules: one place that says which status may become which.

A rule names the statuses it applies to and the status it leads to. `apply` refuses anything else, stamps the
timings, and sets the final status, `duration_ms` and `error_message` exactly once (a finished pipeline never
changes again). The engine (its own issue) adds its rules here; requests from forges use these.
"""

from __future__ import annotations

from dataclasses import dataclass

from taskmaster.core.clock import utcnow
from taskmaster.core.errors import Conflict
from taskmaster.db.models import Pipeline
from taskmaster.pipelines.states import PipelineStatus

LIVE = frozenset({PipelineStatus.PENDING, PipelineStatus.QUEUED, PipelineStatus.RUNNING})
"""A pipeline that has not finished: at most one per trigger (`uq_ci_cd_pipelines_live_trigger`)."""


@dataclass(frozen=True)
class Rule:
    name: str
    from_statuses: frozenset[PipelineStatus]
    to_status: PipelineStatus


SUPERSEDE = Rule("supersede", LIVE, PipelineStatus.CANCELED)
"""A newer commit on the same pull request replaces this pipeline; it is never reported red."""
CANCEL = Rule("cancel", LIVE, PipelineStatus.CANCELED)
"""Someone (or the pull request closing) stopped it."""


def apply(pipeline: Pipeline, rule: Rule, *, reason: str | None = None) -> None:
    """Move `pipeline` by `rule`; raises `Conflict` when the rule does not apply to its current status."""
    current = PipelineStatus(pipeline.status)
    if current not in rule.from_statuses:
        raise Conflict(f"pipeline {pipeline.id} is {current.value}: '{rule.name}' does not apply")
    pipeline.status = rule.to_status.value
    if rule.to_status.is_terminal:
        now = utcnow()
        pipeline.finished_at = now
        if pipeline.started_at is not None:
            pipeline.duration_ms = int((now - pipeline.started_at).total_seconds() * 1000)
        pipeline.error_message = reason
