"""PRD -> tasks in a project: plan (offline parser or an LLM), then store the plan in one transaction.

The LLM part runs outside any transaction: it can take minutes, and holding the project's write lock that long
would stall every other writer. The prompt is the active version of the `prd.parse` template.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass, field

from taskmaster.core.errors import InvalidInput
from taskmaster.db.session import Database
from taskmaster.tasks import service
from taskmaster.tasks.planner.llm import DEFAULT_PLAN_PROMPT, PlanIssue, StructuredModel, plan_with_llm
from taskmaster.tasks.planner.offline import parse_prd
from taskmaster.templates.service import active_template

PRD_TEMPLATE = "prd.parse"


@dataclass(frozen=True)
class PrdResult:
    imported: service.ImportResult
    project_id: uuid.UUID
    template_version: int | None
    issues: list[PlanIssue] = field(default_factory=list)


async def parse_into_project(
    db: Database,
    project_ref: str | uuid.UUID,
    text: str,
    *,
    model: StructuredModel | None = None,
    num_tasks: int | None = None,
    replace: bool = False,
    source: str | None = None,
    actor: str = "system",
    progress: Callable[[int, int], None] | None = None,
) -> PrdResult:
    """Plan `text` (offline when `model` is None) and add the tasks to the project; raises `InvalidInput`
    when the document yields no task, and leaves the project untouched then."""
    async with db.session() as session:
        await service.get_project(session, project_ref)  # fail fast, before any model call
    issues: list[PlanIssue] = []
    version: int | None = None
    if model is None:
        planned = parse_prd(text, num_tasks=num_tasks, source=source)
    else:
        async with db.transaction() as session:
            template = await active_template(session, PRD_TEMPLATE, default=DEFAULT_PLAN_PROMPT)
            prompt, version = template.content, template.version
        planned = await plan_with_llm(
            model, text, num_tasks=num_tasks, prompt_template=prompt, progress=progress, issues=issues
        )
    if not planned:
        raise InvalidInput(f"{source or 'the document'} holds no requirements to turn into tasks")
    async with db.transaction() as session:
        project = await service.lock_project(session, project_ref)
        imported = await service.import_planned(session, project, planned, replace=replace, actor=actor)
    return PrdResult(imported=imported, project_id=project.id, template_version=version, issues=issues)
