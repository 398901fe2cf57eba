"""PRD -> tasks in a project: plan (offline parser or an LLM), then store the plan in one transaction.

The LLM part runs outside any transaction: it can take minutes, and holding the project's write lock that long
would stall every other writer. The prompt is the active version of the `prd.parse` template; the model's tokens
are recorded as one AI call (`costs`), even when the parse fails half-way. Parsing a PRD the project already holds
(same file name or same text) is refused unless the caller says replace or append.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from taskmaster.config.settings import ModelPrice
from taskmaster.core.errors import Conflict, InvalidInput
from taskmaster.costs.service import CallRecord, record_call
from taskmaster.costs.usage import Usage
from taskmaster.db.models import Task
from taskmaster.db.session import Database
from taskmaster.tasks import service
from taskmaster.tasks.planner.llm import PLAN_TEMPLATE, PlanIssue, StructuredModel, plan_with_llm
from taskmaster.tasks.planner.offline import plan_prd
from taskmaster.tasks.schemas import PlannedTask
from taskmaster.templates.render import PromptTemplate, load

PRD_TEMPLATE = PLAN_TEMPLATE


@dataclass(frozen=True)
class PrdResult:
    imported: service.ImportResult
    project_id: uuid.UUID
    template_version: int | None
    issues: list[PlanIssue] = field(default_factory=list)
    planned: list[PlannedTask] = field(default_factory=list)
    """The plan as stored, in import order (keys, and `extra` with the source lines and reasons)."""


async def parse_into_project(
    db: Database,
    project_ref: str | uuid.UUID,
    text: str,
    *,
    model: StructuredModel | None = None,
    num_tasks: int | None = None,
    replace: bool = False,
    append: bool = False,
    source: str | None = None,
    actor: str = "system",
    progress: Callable[[int, int], None] | None = None,
    prices: Mapping[str, ModelPrice] | None = None,
) -> PrdResult:
    """Plan `text` (offline when `model` is None) and add the tasks to the project; raises `InvalidInput`
    when the document yields no task, and `Conflict` when the project already holds this PRD and neither
    `replace` nor `append` is given; the project is left untouched then. `prices` (settings `costs.prices`)
    price the model's tokens."""
    if replace and append:
        raise InvalidInput("replace and append exclude each other: pick one", field="replace")
    digest = hashlib.sha256(text.encode("utf-8")).hexdigest()
    async with db.session() as session:
        project_id = (await service.get_project(session, project_ref)).id  # fail fast, before any model call
    issues: list[PlanIssue] = []
    version: int | None = None
    if model is None:
        if text.strip():
            plan = plan_prd(text, num_tasks=num_tasks, source=source)
            planned = plan.tasks
            issues.extend(PlanIssue("cycle_broken", "", warning) for warning in plan.warnings)
        else:
            planned = []
    else:
        async with db.transaction() as session:
            template = await load(session, PRD_TEMPLATE)
        version = template.version
        usage = Usage()
        try:
            planned = await plan_with_llm(
                model, text, num_tasks=num_tasks, prompt_template=template.source, template_ref=template.ref,
                progress=progress, issues=issues, usage=usage,
            )  # fmt: skip
        finally:
            await record_model_call(db, project_id, "prd.parse", model, template, usage, prices)
    if not planned:
        raise InvalidInput(f"{source or 'the document'} holds no requirements to turn into tasks")
    planned = [_stamped(task, digest) for task in planned]
    async with db.transaction() as session:
        project = await service.lock_project(session, project_ref)
        if not replace and not append:
            await _refuse_a_second_copy(session, project.id, project.name, source, digest)
        imported = await service.import_planned(session, project, planned, replace=replace, actor=actor)
    return PrdResult(imported=imported, project_id=project.id, template_version=version, issues=issues, planned=planned)


async def record_model_call(
    db: Database,
    project_id: uuid.UUID,
    purpose: str,
    model: StructuredModel,
    template: PromptTemplate,
    usage: Usage,
    prices: Mapping[str, ModelPrice] | None,
) -> None:
    """Record the requests `usage` counted as one AI call (nothing when no request was made), in its own
    transaction: the tokens were spent whether or not the caller's work goes on to succeed."""
    if not usage.requests:
        return
    record = CallRecord(
        project_id=project_id, purpose=purpose, provider=model.name, model=model.model,
        input_tokens=usage.input_tokens, output_tokens=usage.output_tokens, requests=usage.requests,
        template_name=template.name, template_version=template.version,
    )  # fmt: skip
    async with db.transaction() as session:
        await record_call(session, record, prices=prices or {})


def _stamped(task: PlannedTask, digest: str) -> PlannedTask:
    """The task with the PRD's digest in `extra`, so that parsing the same text again is noticed."""
    return task.model_copy(
        update={"extra": {**task.extra, "prd_sha256": digest}, "subtasks": [_stamped(t, digest) for t in task.subtasks]}
    )


async def _refuse_a_second_copy(
    session: AsyncSession, project_id: uuid.UUID, project_name: str, source: str | None, digest: str
) -> None:
    rows = (await session.execute(select(Task.number, Task.extra).where(Task.project_id == project_id))).all()
    same = sorted(
        number
        for number, extra in rows
        if isinstance(extra, dict)
        and (extra.get("prd_sha256") == digest or (source is not None and extra.get("prd_source") == source))
    )
    if same:
        what = source or "this PRD"
        raise Conflict(
            f"{what} was already parsed into project {project_name} (tasks #{same[0]}–#{same[-1]}); "
            "pass --replace to replace the project's tasks with the new plan, or --append to add the tasks again"
        )
