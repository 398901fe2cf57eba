"""Trial pipelines: a fix tried on the steps it concerns (the failed step, the steps after it and the steps they
need; never `on_failure`/`always` steps), at a commit that exists only in the mirror; never reported to the forge
and never recovered itself."""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Set

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from taskmaster.core.errors import NotFound
from taskmaster.db.models import Pipeline, PipelineStep, Project
from taskmaster.pipelines import transitions
from taskmaster.pipelines.runs import plan_commit
from taskmaster.pipelines.states import PipelineStatus
from taskmaster.workspaces.git_cache import MirrorCache


def trial_steps(needs: Mapping[str, Set[str]], step: str) -> set[str]:
    """`step`, every step that needs it (transitively), and every step those need (transitively)."""
    dependents: dict[str, set[str]] = {name: set() for name in needs}
    for name, wanted in needs.items():
        for need in wanted:
            dependents.setdefault(need, set()).add(name)
    chosen = {step} | _reachable(step, dependents)
    for name in list(chosen):
        chosen |= _reachable(name, needs)
    return chosen


async def create_trial(
    session: AsyncSession,
    source: Pipeline,
    project: Project,
    *,
    commit_sha: str,
    step: str,
    mirror: MirrorCache,
    worker_id: str | None = None,
) -> Pipeline:
    """A `pending` trial of `source` at `commit_sha` (already in the mirror), planned from that commit, its steps
    outside `trial_steps(step)` skipped (rule `outside trial`). Owned by `worker_id` when given (the caller runs it
    at once, so no worker may claim it). No pull request and no trigger key: it never supersedes or is superseded.
    `NotFound` when the commit's plan has no such step. The caller owns the transaction."""
    trial = Pipeline(
        project_id=project.id,
        pipeline_type=source.pipeline_type,
        status=PipelineStatus.PENDING.value,
        trigger_event=f"recovery trial of {source.id}",
        branch_name=None,
        commit_sha=commit_sha,
        trigger_key=None,
        definition={},
        trial_of=source.id,
        worker_id=worker_id,
    )
    session.add(trial)
    await session.flush()
    await plan_commit(session, trial, project.repository, mirror)
    if trial.status != PipelineStatus.PENDING.value:
        return trial  # the fix broke the definition: an `error` pipeline, a red trial
    await session.flush()
    rows = list(await session.scalars(select(PipelineStep).where(PipelineStep.pipeline_id == trial.id)))
    needs = {row.step_name: set(row.needs) for row in rows}
    if step not in needs:
        raise NotFound(f"the plan at {commit_sha[:12]} has no step {step!r}")
    # Steps that run on a failure (notifications) or always are the pipeline's own affairs, not the fix's.
    conditional = {row.step_name for row in rows if row.config.get("when", "on_success") != "on_success"}
    keep = trial_steps({name: wanted for name, wanted in needs.items() if name not in conditional}, step)
    for row in rows:
        if row.step_name not in keep:
            reason = f"not part of the trial of step {step!r}"
            transitions.apply_step(row, transitions.STEP_OUTSIDE_TRIAL, reason=reason)
    return trial


def _reachable(start: str, edges: Mapping[str, Set[str]]) -> set[str]:
    seen: set[str] = set()
    todo = list(edges.get(start, ()))
    while todo:
        name = todo.pop()
        if name not in seen:
            seen.add(name)
            todo.extend(edges.get(name, ()))
    return seen


async def trial_of(session: AsyncSession, pipeline_id: uuid.UUID) -> uuid.UUID | None:
    """The pipeline a trial tries a fix for; None for an ordinary pipeline."""
    return await session.scalar(select(Pipeline.trial_of).where(Pipeline.id == pipeline_id))
