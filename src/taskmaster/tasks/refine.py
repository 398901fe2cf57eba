"""Refine tasks: expand one into subtasks, and score complexity (1-10, with reasoning) — by an LLM or offline.

Model calls run outside any transaction; results are stored in a short one afterwards.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass

from taskmaster.config.settings import ModelPrice
from taskmaster.core.errors import Conflict, InvalidInput
from taskmaster.costs.usage import Usage
from taskmaster.db.models import Task
from taskmaster.db.session import Database
from taskmaster.tasks import service
from taskmaster.tasks.planner.llm import EXPAND_TEMPLATE, StructuredModel, analyze_complexity_with_llm, expand_with_llm
from taskmaster.tasks.planner.structure import complexity_of, split_task
from taskmaster.tasks.prd import record_model_call
from taskmaster.tasks.schemas import PlannedTask
from taskmaster.templates.render import load

REASONING_FIELD = "complexity_reasoning"


@dataclass(frozen=True)
class Score:
    number: int
    complexity: int
    reasoning: str


async def expand_task(
    db: Database,
    project_ref: str | uuid.UUID,
    task_ref: str,
    *,
    model: StructuredModel | None = None,
    num: int = 5,
    actor: str = "system",
    prices: Mapping[str, ModelPrice] | None = None,
) -> list[Task]:
    """Add up to `num` subtasks to a task from its details (LLM, or the offline parser); returns them. The LLM's
    prompt is the active `task.expand` template; its tokens are recorded as one AI call priced with `prices`."""
    async with db.session() as session:
        project = await service.get_project(session, project_ref)
        task = await service.get_task(session, project.id, task_ref)
    if task.status in {"done", "cancelled"}:
        raise Conflict(f"task #{task.number} is {task.status}; reopen it before expanding it")
    if model is not None:
        async with db.transaction() as session:
            template = await load(session, EXPAND_TEMPLATE)
        usage = Usage()
        try:
            planned = await expand_with_llm(
                model, task, num, key_prefix="s", prompt_template=template.source, template_ref=template.ref,
                usage=usage,
            )  # fmt: skip
        finally:
            await record_model_call(db, project.id, "task.expand", model, template, usage, prices)
    else:
        planned = _offline_subtasks(task, num)
    if not planned:
        raise InvalidInput(
            f"task #{task.number} has a single point in its details: nothing to split offline "
            "(add details, or use --provider with an LLM)"
        )
    async with db.transaction() as session:
        locked = await service.lock_project(session, project.id)
        parent = await service.get_task(session, project.id, task.id)
        result = await service.import_planned(session, locked, planned, parent=parent, actor=actor)
        first, _ = result.numbers
        created, _ = await service.list_tasks(session, project.id, limit=result.created, offset=first - 1)
    return created


def _offline_subtasks(task: Task, num: int) -> list[PlannedTask]:
    """Subtasks along the task's acceptance criteria and the work they imply (the steps its details state, or
    data, API, UI, integration), each after the one before; empty when the text holds a single point."""
    text = "\n".join(part for part in (task.description, task.details) if part)
    steps = split_task(task.title, text, task.test_strategy, num)
    planned = [
        PlannedTask(key=f"s{i}", title=step.title[:500], details=step.details, priority=task.priority)
        for i, step in enumerate(steps, start=1)
    ]
    # Offline there is no better knowledge of order than the text's: each step follows the one before.
    return [p.model_copy(update={"dependencies": [planned[i - 1].key]} if i else {}) for i, p in enumerate(planned)]


async def analyze_complexity(
    db: Database,
    project_ref: str | uuid.UUID,
    *,
    model: StructuredModel | None = None,
    include_done: bool = False,
    actor: str = "system",
) -> list[Score]:
    """Score every open task 1-10 and store the score (`complexity`) and the reasoning (`extra`)."""
    async with db.session() as session:
        project = await service.get_project(session, project_ref)
        tasks, _ = await service.list_tasks(session, project.id, limit=100_000)
    tasks = [t for t in tasks if include_done or t.status not in {"done", "cancelled"}]
    subtasks: dict[uuid.UUID, int] = {}
    for t in tasks:
        if t.parent_task_id is not None:
            subtasks[t.parent_task_id] = subtasks.get(t.parent_task_id, 0) + 1
    if model is not None:
        answers = await analyze_complexity_with_llm(model, {str(t.number): t for t in tasks})
        scores = [Score(int(a.key), a.score, a.reasoning) for a in answers]
    else:
        dependents: dict[str, int] = {}
        for t in tasks:
            for dep in t.dependencies:
                dependents[dep] = dependents.get(dep, 0) + 1
        scores = []
        for t in tasks:
            text = " ".join(part for part in (t.title, t.description, t.details) if part)
            criteria = sum(1 for line in (t.test_strategy or "").splitlines() if line.strip())
            value, reasoning = complexity_of(
                criteria=criteria, dependencies=len(t.dependencies), dependents=dependents.get(str(t.id), 0),
                text=text, subtasks=subtasks.get(t.id, 0),
            )  # fmt: skip
            scores.append(Score(t.number, value, f"offline estimate from the {reasoning}"))
    async with db.transaction() as session:
        await service.lock_project(session, project.id)
        rows, _ = await service.list_tasks(session, project.id, limit=100_000)
        by_number = {row.number: row for row in rows}
        for score in scores:
            row = by_number[score.number]
            row.complexity = score.complexity
            row.extra = {**row.extra, REASONING_FIELD: score.reasoning}
    return scores
