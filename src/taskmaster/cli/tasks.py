"""`taskmaster task list | show | add | update | set-status | next | claim | ready | deps | validate | fix | remove |
import | export`.

TASK is a task's number in the project (or its id). `--project` may be left out when there is one project.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import typer

from taskmaster.cli import common

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncSession

    from taskmaster.db.models import Project, Task
    from taskmaster.db.session import Database
    from taskmaster.tasks.schemas import TaskOut

T = TypeVar("T")
command = typer.Typer(no_args_is_help=True)

ProjectOption = Annotated[
    str | None, typer.Option("--project", "-p", help="Project name or id (optional when there is only one).")
]
TaskArgument = Annotated[str, typer.Argument(help="Task number (or id).")]
ACTOR = "cli"


def _in_project(project: str | None, action: Callable[[AsyncSession, Project], Awaitable[T]], *, lock: bool) -> T:
    """Resolve the project (taking its write lock first when `lock`) and run `action` in one transaction."""
    from taskmaster.tasks import service

    async def go(db: Database) -> T:
        # Resolved before the transaction: with `lock`, the lock must be its first statement.
        ref = project if project is not None else await _only_project(db)
        async with db.transaction() as session:
            found = await (service.lock_project(session, ref) if lock else service.get_project(session, ref))
            return await action(session, found)

    return common.run_with_db(common.settings(), go)


async def _only_project(db: Database) -> uuid.UUID:
    from taskmaster.core.errors import InvalidInput
    from taskmaster.projects.service import only_project

    async with db.session() as session:
        try:
            return await only_project(session, how_to_choose="choose one with --project")
        except InvalidInput as exc:
            common.fail(exc.detail, common.EXIT_ERROR)


def _summary_rows(tasks: list[Task], numbers: dict[str, int]) -> list[tuple[Any, ...]]:
    return [
        (t.number, t.status, t.priority, t.type, t.title, _deps(t, numbers), t.assignee or "")
        for t in tasks
    ]  # fmt: skip


async def _numbers(session: AsyncSession, tasks: list[Task]) -> dict[str, int]:
    """The numbers of every task the listed tasks depend on (listed or not)."""
    from sqlalchemy import select

    from taskmaster.db.models import Task as TaskRow

    wanted = {uuid.UUID(str(d)) for t in tasks for d in t.dependencies if _is_uuid(str(d))}
    known = {str(t.id): t.number for t in tasks}
    missing = [i for i in wanted if str(i) not in known]
    if missing:
        rows = await session.execute(select(TaskRow.id, TaskRow.number).where(TaskRow.id.in_(missing)))
        known.update({str(i): n for i, n in rows.tuples()})
    return known


def _is_uuid(text: str) -> bool:
    try:
        uuid.UUID(text)
    except ValueError:
        return False
    return True


def _deps(task: Task, numbers: dict[str, int]) -> str:
    """Dependencies as task numbers (`show` takes them); one that names no task keeps its whole id."""
    return ",".join(f"#{numbers[str(d)]}" if str(d) in numbers else str(d) for d in task.dependencies)


Listed = tuple[list["Task"], dict[str, int]]
"""Tasks to print, and the numbers of the tasks they depend on."""


async def _listed(session: AsyncSession, tasks: list[Task]) -> Listed:
    return tasks, await _numbers(session, tasks)


def _print_tasks(
    listed: list[Task] | Listed, json_output: bool, details: bool = False, title: str | None = None
) -> None:
    from taskmaster.tasks import service

    tasks, numbers = listed if isinstance(listed, tuple) else (listed, {str(t.id): t.number for t in listed})
    if json_output:
        render = service.to_out if details else service.to_summary
        common.print_json([render(t).model_dump(mode="json") for t in tasks])
        return
    rows = _summary_rows(tasks, numbers)
    common.print_table(["#", "status", "pri", "type", "title", "depends on", "assignee"], rows, title)


def _print_task(task: Task | TaskOut | None, json_output: bool) -> None:
    from taskmaster.tasks.schemas import TaskOut

    if task is None:
        if json_output:
            common.print_json(None)
        else:
            print("no task is ready")
        return
    if isinstance(task, TaskOut):
        out = task
    else:
        from taskmaster.tasks import service

        out = service.to_out(task)
    if json_output:
        common.print_json(out.model_dump(mode="json"))
        return
    for key, value in out.model_dump().items():
        if value not in (None, [], ""):
            print(f"{key:>17}: {value}")


@command.command("list")
def list_command(
    project: ProjectOption = None,
    status: Annotated[str | None, typer.Option(help="Only this status.")] = None,
    type_: Annotated[str | None, typer.Option("--type", help="Only this type.")] = None,
    assignee: Annotated[str | None, typer.Option(help="Only tasks assigned to this name.")] = None,
    limit: Annotated[int, typer.Option(min=1, help="At most this many.")] = 1000,
    details: Annotated[bool, typer.Option(help="With --json: every field.")] = False,
    json_output: bool = common.JsonOption,
) -> None:
    """List tasks in number order."""
    from taskmaster.tasks import service

    async def go(session: AsyncSession, found: Project) -> Listed:
        where = service.TaskFilter(status=status, type=type_, assignee=assignee)  # type: ignore[arg-type]
        tasks, _ = await service.list_tasks(session, found.id, where=where, limit=limit)
        return await _listed(session, tasks)

    _print_tasks(_in_project(project, go, lock=False), json_output, details)


@command.command("show")
def show_command(task: TaskArgument, project: ProjectOption = None, json_output: bool = common.JsonOption) -> None:
    """Show one task with every field."""
    from taskmaster.tasks import service

    async def go(session: AsyncSession, found: Project) -> Task:
        return await service.get_task(session, found.id, task)

    _print_task(_in_project(project, go, lock=False), json_output)


@command.command("add")
def add_command(
    title: Annotated[str, typer.Argument(help="What is to be done.")],
    project: ProjectOption = None,
    description: Annotated[str | None, typer.Option(help="A sentence or two.")] = None,
    details: Annotated[str | None, typer.Option(help="How to do it.")] = None,
    test_strategy: Annotated[str | None, typer.Option(help="How to verify it.")] = None,
    type_: Annotated[str, typer.Option("--type", help="feature, bug, chore, test or docs.")] = "feature",
    priority: Annotated[int, typer.Option(min=1, max=5, help="1 (highest) … 5.")] = 3,
    complexity: Annotated[int | None, typer.Option(min=1, max=10, help="1 … 10.")] = None,
    depends_on: Annotated[
        list[str] | None, typer.Option("--depends-on", "-d", help="A task it needs (repeat).")
    ] = None,
    parent: Annotated[str | None, typer.Option(help="Make it a subtask of this task.")] = None,
    json_output: bool = common.JsonOption,
) -> None:
    """Add a task."""
    from pydantic import ValidationError

    from taskmaster.tasks import service
    from taskmaster.tasks.schemas import TaskCreate

    async def go(session: AsyncSession, found: Project) -> Task:
        parent_id = (await service.get_task(session, found.id, parent)).id if parent else None
        dependency_ids = [(await service.get_task(session, found.id, ref)).id for ref in depends_on or []]
        try:
            spec = TaskCreate(
                title=title, description=description, details=details, test_strategy=test_strategy,
                type=type_, priority=priority, complexity=complexity, dependencies=dependency_ids,
                parent_task_id=parent_id,
            )  # fmt: skip
        except ValidationError as exc:
            common.fail("; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors()))
        return await service.create_task(session, project=found, spec=spec, actor=ACTOR)

    _print_task(_in_project(project, go, lock=True), json_output)


@command.command("update")
def update_command(
    task: TaskArgument,
    project: ProjectOption = None,
    title: Annotated[str | None, typer.Option()] = None,
    description: Annotated[str | None, typer.Option()] = None,
    details: Annotated[str | None, typer.Option()] = None,
    test_strategy: Annotated[str | None, typer.Option()] = None,
    type_: Annotated[str | None, typer.Option("--type")] = None,
    priority: Annotated[int | None, typer.Option(min=1, max=5)] = None,
    complexity: Annotated[int | None, typer.Option(min=1, max=10)] = None,
    assignee: Annotated[str | None, typer.Option()] = None,
    json_output: bool = common.JsonOption,
) -> None:
    """Change a task's fields (only those given)."""
    from pydantic import ValidationError

    from taskmaster.tasks import service
    from taskmaster.tasks.schemas import TaskUpdate

    given = {
        "title": title, "description": description, "details": details, "test_strategy": test_strategy,
        "type": type_, "priority": priority, "complexity": complexity, "assignee": assignee,
    }  # fmt: skip
    try:
        spec = TaskUpdate.model_validate({key: value for key, value in given.items() if value is not None})
    except ValidationError as exc:
        common.fail("; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors()))

    async def go(session: AsyncSession, found: Project) -> Task:
        return await service.update_task(session, await service.get_task(session, found.id, task), spec, actor=ACTOR)

    _print_task(_in_project(project, go, lock=True), json_output)


@command.command("set-status")
def set_status_command(
    task: TaskArgument,
    status: Annotated[str, typer.Argument(help="pending, in_progress, review, done, blocked, deferred, cancelled.")],
    project: ProjectOption = None,
    cascade: Annotated[bool, typer.Option(help="With done: mark open subtasks done too.")] = False,
    json_output: bool = common.JsonOption,
) -> None:
    """Change a task's status."""
    from taskmaster.tasks import service
    from taskmaster.tasks.schemas import TASK_STATUSES

    wanted = status.replace("-", "_")
    if wanted not in TASK_STATUSES:
        common.fail(f"status must be one of {', '.join(TASK_STATUSES)} (got {status!r})")

    async def go(session: AsyncSession, found: Project) -> list[Task]:
        target = await service.get_task(session, found.id, task)
        return await service.set_status(session, target, wanted, cascade=cascade, actor=ACTOR)

    changed = _in_project(project, go, lock=True)
    if json_output:
        _print_tasks(changed, True)
    else:
        print(", ".join(f"#{t.number}" for t in changed) + f" → {wanted}")


@command.command("next")
def next_command(
    project: ProjectOption = None,
    type_: Annotated[str | None, typer.Option("--type", help="Only this type.")] = None,
    assignee: Annotated[str | None, typer.Option(help="Unassigned tasks or this assignee's.")] = None,
    json_output: bool = common.JsonOption,
) -> None:
    """Show the task to work on next (priority, then how much it unblocks, then complexity, then age)."""
    settings = common.settings(logs=False)
    if settings.client.url:
        from taskmaster.cli.remote import RemoteTasks

        _print_task(RemoteTasks(settings).next(project, type_=type_, assignee=assignee), json_output)
        return
    from taskmaster.tasks import service

    async def go(session: AsyncSession, found: Project) -> Task | None:
        return await service.next_task(session, found, where=service.TaskFilter(type=type_, assignee=assignee))

    _print_task(_in_project(project, go, lock=False), json_output)


@command.command("ready")
def ready_command(
    project: ProjectOption = None,
    type_: Annotated[str | None, typer.Option("--type", help="Only this type.")] = None,
    assignee: Annotated[str | None, typer.Option(help="Unassigned tasks or this assignee's.")] = None,
    limit: Annotated[int, typer.Option(min=1)] = 100,
    json_output: bool = common.JsonOption,
) -> None:
    """List every task that could start now, best first (for parallel agents)."""
    from taskmaster.tasks import service

    async def go(session: AsyncSession, found: Project) -> Listed:
        where = service.TaskFilter(type=type_, assignee=assignee)
        return await _listed(session, await service.ready_tasks(session, found, where=where, limit=limit))

    _print_tasks(_in_project(project, go, lock=False), json_output, title="ready")


@command.command("claim")
def claim_command(
    assignee: Annotated[str, typer.Option(help="Who takes it (an agent or a person).")],
    project: ProjectOption = None,
    lease_minutes: Annotated[float, typer.Option(min=0.2, help="Back to pending if not finished by then.")] = 30,
    type_: Annotated[str | None, typer.Option("--type", help="Only this type.")] = None,
    json_output: bool = common.JsonOption,
) -> None:
    """Atomically take the next ready task: in_progress, assigned, with a lease. Exit 1 when none is ready."""
    settings = common.settings(logs=False)
    if settings.client.url:
        from taskmaster.cli.remote import RemoteTasks

        remote = RemoteTasks(settings).claim(
            project, assignee=assignee, lease_seconds=round(lease_minutes * 60), type_=type_
        )
        _print_task(remote, json_output)
        if remote is None:
            raise typer.Exit(common.EXIT_FAILURE)
        return
    from datetime import timedelta

    from taskmaster.tasks import service

    async def go(db: Database) -> Task | None:
        ref = project if project is not None else await _only_project(db)
        async with db.transaction() as session:  # claim_task takes the lock it needs first
            return await service.claim_task(
                session,
                ref,
                assignee=assignee,
                lease=timedelta(minutes=lease_minutes),
                where=service.TaskFilter(type=type_),
            )

    claimed = common.run_with_db(common.settings(), go)
    _print_task(claimed, json_output)
    if claimed is None:
        raise typer.Exit(common.EXIT_FAILURE)


@command.command("deps")
def deps_command(
    task: TaskArgument,
    project: ProjectOption = None,
    add: Annotated[list[str] | None, typer.Option("--add", help="Make TASK depend on this task (repeat).")] = None,
    remove: Annotated[list[str] | None, typer.Option("--remove", help="Drop this dependency (repeat).")] = None,
    json_output: bool = common.JsonOption,
) -> None:
    """Show a task's dependencies, or change them with --add/--remove (cycles are refused, naming the cycle)."""
    from taskmaster.tasks import service

    async def go(session: AsyncSession, found: Project) -> Listed:
        target = await service.get_task(session, found.id, task)
        for ref in add or []:
            await service.add_dependency(session, target, await service.get_task(session, found.id, ref), actor=ACTOR)
        for ref in remove or []:
            other = await service.get_task(session, found.id, ref)
            await service.remove_dependency(session, target, other, actor=ACTOR)
        return await _listed(session, [await service.get_task(session, found.id, dep) for dep in target.dependencies])

    _print_tasks(_in_project(project, go, lock=bool(add or remove)), json_output, title=f"task {task} depends on")


@command.command("remove")
def remove_command(
    task: TaskArgument,
    project: ProjectOption = None,
    force: Annotated[bool, typer.Option(help="Remove even if other tasks depend on it.")] = False,
    yes: bool = common.YesOption,
) -> None:
    """Remove a task and its subtasks."""
    from taskmaster.tasks import service

    common.confirm(f"remove task {task} and its subtasks?", yes)

    async def go(session: AsyncSession, found: Project) -> int:
        target = await service.get_task(session, found.id, task)
        await service.delete_task(session, target, force=force, actor=ACTOR)
        return target.number

    print(f"task #{_in_project(project, go, lock=True)} removed")


def _print_report(report: Any, json_output: bool, *, verb: str) -> None:
    if json_output:
        common.print_json(
            {
                "ok": not report.findings,
                "tasks": report.tasks,
                "dependencies": report.dependencies,
                "findings": [vars(f) for f in report.findings],
            }
        )
        return
    for finding in report.findings:
        print(f"{finding.kind:>9}  {finding.message}")
    print(f"{len(report.findings)} {verb} in {report.tasks} tasks with {report.dependencies} dependencies")


@command.command("validate")
def validate_command(project: ProjectOption = None, json_output: bool = common.JsonOption) -> None:
    """Find self, missing, duplicate and circular dependencies at every level; exit 1 when any is found."""
    from taskmaster.tasks import service

    async def go(session: AsyncSession, found: Project) -> service.GraphReport:
        return await service.validate_graph(session, found)

    report = _in_project(project, go, lock=False)
    _print_report(report, json_output, verb="problem(s)")
    if report.findings:
        raise typer.Exit(common.EXIT_FAILURE)


@command.command("fix")
def fix_command(project: ProjectOption = None, json_output: bool = common.JsonOption) -> None:
    """Repair what validate finds, removing the fewest edges that break each cycle; prints every change."""
    from taskmaster.tasks import service

    async def go(session: AsyncSession, found: Project) -> service.GraphReport:
        return await service.fix_graph(session, found, actor=ACTOR)

    _print_report(_in_project(project, go, lock=True), json_output, verb="change(s)")


TAG_FIELD = "tag"
"""Where an imported task keeps its claude-task-master tag (in `extra`), so export can group tasks again."""


@command.command("import")
def import_command(
    file: Annotated[str, typer.Argument(help="A claude-task-master tasks.json.")],
    project: ProjectOption = None,
    tag: Annotated[str | None, typer.Option(help="Import only this tag (default: every tag).")] = None,
    replace: Annotated[bool, typer.Option("--replace/--append", help="Replace the project's tasks, or add.")] = False,
) -> None:
    """Import tasks, subtasks, dependencies and statuses from claude-task-master's tasks.json (every tag)."""
    import json
    from pathlib import Path

    from taskmaster.tasks import service
    from taskmaster.tasks.compat import import_tasks_json

    try:
        tagged = import_tasks_json(json.loads(Path(file).read_text(encoding="utf-8")))
    except OSError as exc:
        common.fail(f"{file}: {exc.strerror}")
    except json.JSONDecodeError as exc:
        common.fail(f"{file}: not JSON ({exc.msg} at line {exc.lineno}, column {exc.colno})")
    if tag is not None and tag not in tagged:
        common.fail(f"{file} has no tag {tag!r} (it has: {', '.join(tagged) or 'none'})")
    chosen = [tag] if tag is not None else list(tagged)

    async def go(session: AsyncSession, found: Project) -> list[service.ImportResult]:
        results = []
        for index, name in enumerate(chosen):
            plan = [_tagged(task, name) for task in tagged[name]]
            # Each tag is its own key space (both may have a task "1"), so each is imported on its own.
            results.append(
                await service.import_planned(session, found, plan, replace=replace and index == 0, actor=ACTOR)
            )
        return results

    for name, result in zip(chosen, _in_project(project, go, lock=True), strict=True):
        first, last = result.numbers
        print(f"tag {name!r}: {result.created} tasks as #{first}–#{last}; {result.replaced} replaced")
        if result.unresolved:
            print(f"  {len(result.unresolved)} dependencies name no task; `taskmaster task validate` lists them")


def _tagged(task: Any, tag: str) -> Any:
    return task.model_copy(
        update={"extra": {**task.extra, TAG_FIELD: tag}, "subtasks": [_tagged(sub, tag) for sub in task.subtasks]}
    )


@command.command("export")
def export_command(
    project: ProjectOption = None,
    output: Annotated[str | None, typer.Option("--output", "-o", help="Write here instead of stdout.")] = None,
    legacy: Annotated[bool, typer.Option(help="The older flat layout without tags (one tag only).")] = False,
) -> None:
    """Export the project's tasks as claude-task-master's tasks.json, grouped by their tags (default master)."""
    import json
    from pathlib import Path

    from taskmaster.tasks import service
    from taskmaster.tasks.compat import export_tasks_json

    async def go(session: AsyncSession, found: Project) -> list[Any]:
        return await service.export_planned(session, found)

    grouped: dict[str, list[Any]] = {}
    for task in _in_project(project, go, lock=False):
        grouped.setdefault(str(task.extra.get(TAG_FIELD, "master")), []).append(_untagged(task))
    if legacy and len(grouped) > 1:
        common.fail(f"--legacy holds one tag, and these tasks have {len(grouped)}: {', '.join(grouped)}")
    document = export_tasks_json(grouped or {"master": []}, legacy=legacy)
    text = json.dumps(document, indent=2, ensure_ascii=False) + "\n"
    if output is None:
        print(text, end="")
    else:
        Path(output).write_text(text, encoding="utf-8")


def _untagged(task: Any) -> Any:
    extra = {name: value for name, value in task.extra.items() if name != TAG_FIELD}
    return task.model_copy(update={"extra": extra, "subtasks": [_untagged(sub) for sub in task.subtasks]})


ProviderOption = Annotated[str, typer.Option(help="offline (default), anthropic, openai or ollama.")]
ModelOption = Annotated[str | None, typer.Option("--model", help="The provider's model (default: its own).")]


def _with_model(planner: str, model_name: str | None, action: Callable[[Any, Any], Awaitable[T]]) -> T:
    """Run `action(db, model)` with the chosen planner's model (None for offline), closing it afterwards."""
    from taskmaster.agents.llm import planning_model

    common.require_planner(planner)
    settings = common.settings()

    async def go(db: Any) -> T:
        async with planning_model(settings, planner, model_name) as model:
            return await action(db, model)

    return common.run_with_db(settings, go)


@command.command("expand")
def expand_command(
    task: TaskArgument,
    project: ProjectOption = None,
    num: Annotated[int, typer.Option(min=1, max=20, help="At most this many subtasks.")] = 5,
    provider: ProviderOption = "offline",
    model_name: ModelOption = None,
    json_output: bool = common.JsonOption,
) -> None:
    """Break a task into subtasks (from its details offline, or by an LLM)."""
    from taskmaster.tasks.refine import expand_task

    async def go(db: Any, model: Any) -> list[Task]:
        ref = project if project is not None else await _only_project(db)
        return await expand_task(
            db, ref, task, model=model, num=num, actor=ACTOR, prices=common.settings().costs.prices
        )

    _print_tasks(_with_model(provider, model_name, go), json_output, title=f"subtasks of {task}")


@command.command("analyze-complexity")
def analyze_complexity_command(
    project: ProjectOption = None,
    provider: ProviderOption = "offline",
    model_name: ModelOption = None,
    json_output: bool = common.JsonOption,
) -> None:
    """Score every open task's complexity 1-10 and store the score with its reasoning."""
    from taskmaster.tasks.refine import Score, analyze_complexity

    async def go(db: Any, model: Any) -> list[Score]:
        ref = project if project is not None else await _only_project(db)
        return await analyze_complexity(db, ref, model=model, actor=ACTOR)

    scores = _with_model(provider, model_name, go)
    if json_output:
        common.print_json([vars(s) for s in scores])
        return
    common.print_table(["#", "complexity", "reasoning"], [(s.number, s.complexity, s.reasoning) for s in scores])
