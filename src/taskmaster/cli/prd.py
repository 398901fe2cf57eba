"""`taskmaster prd parse FILE`: turn a product requirements document into tasks."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from taskmaster.cli import common

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncSession

    from taskmaster.tasks.service import ImportResult

command = typer.Typer(no_args_is_help=True)


@command.command("parse")
def parse_command(
    file: Annotated[Path, typer.Argument(help="The PRD: Markdown or plain text.", exists=True, dir_okay=False)],
    project: Annotated[str, typer.Option("--project", "-p", help="Project name or id.")],
    num_tasks: Annotated[int | None, typer.Option(min=1, help="About how many top-level tasks to make.")] = None,
    provider: Annotated[str, typer.Option(help="offline (default), anthropic, openai or ollama.")] = "offline",
    replace: Annotated[bool, typer.Option("--replace/--append", help="Replace the project's tasks, or add.")] = False,
    json_output: bool = common.JsonOption,
) -> None:
    """Parse FILE into a task graph (dependencies, priorities, subtasks) and store it in the project."""
    from taskmaster.tasks import service
    from taskmaster.tasks.planner.offline import parse_prd

    if provider != "offline":
        common.fail(f"provider {provider!r} is not available yet; use --provider offline")
    try:
        text = file.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        common.fail(f"{file} is not UTF-8 text")
    planned = parse_prd(text, num_tasks=num_tasks, source=file.name)
    if not planned:
        common.fail(f"{file} holds no requirements to turn into tasks", common.EXIT_FAILURE)

    async def go(session: AsyncSession) -> tuple[ImportResult, list[object]]:
        found = await service.lock_project(session, project)
        result = await service.import_planned(session, found, planned, replace=replace, actor="cli")
        tasks, _ = await service.list_tasks(session, found.id, limit=result.created + 1, offset=result.numbers[0] - 1)
        return result, list(tasks)

    result, tasks = common.run_in_transaction(common.settings(), go)
    if json_output:
        from taskmaster.tasks.service import to_out

        common.print_json([to_out(t).model_dump(mode="json") for t in tasks])  # type: ignore[arg-type]
        return
    first, last = result.numbers
    print(f"{result.created} tasks from {file.name} (#{first}–#{last}); {result.replaced} replaced")
    for task in tasks:
        indent = "  " if task.parent_task_id else ""  # type: ignore[attr-defined]
        print(f"{indent}#{task.number:<4} p{task.priority} {task.type:<7} {task.title}")  # type: ignore[attr-defined]
