"""`taskmaster prd parse FILE`: turn a product requirements document into tasks."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from taskmaster.cli import common

if TYPE_CHECKING:
    from taskmaster.db.session import Database
    from taskmaster.tasks.prd import PrdResult

command = typer.Typer(no_args_is_help=True)


@command.command("parse")
def parse_command(
    file: Annotated[Path, typer.Argument(help="The PRD: Markdown or plain text.", exists=True, dir_okay=False)],
    project: Annotated[str, typer.Option("--project", "-p", help="Project name or id.")],
    num_tasks: Annotated[int | None, typer.Option(min=1, help="About how many top-level tasks to make.")] = None,
    provider: Annotated[str, typer.Option(help="offline (default), anthropic, openai or ollama.")] = "offline",
    model_name: Annotated[str | None, typer.Option("--model", help="The provider's model (default: its own).")] = None,
    replace: Annotated[bool, typer.Option("--replace/--append", help="Replace the project's tasks, or add.")] = False,
    json_output: bool = common.JsonOption,
) -> None:
    """Parse FILE into a task graph (dependencies, priorities, subtasks) and store it in the project."""
    from taskmaster.tasks import service
    from taskmaster.tasks.prd import parse_into_project

    common.require_planner(provider)
    try:
        text = file.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        common.fail(f"{file} is not UTF-8 text")
    settings = common.settings()

    async def go(db: Database) -> tuple[PrdResult, list[Any]]:
        from taskmaster.agents.llm import planning_model

        async with planning_model(settings, provider, model_name) as model:
            with _progress(enabled=model is not None and not json_output) as report:
                result = await parse_into_project(
                    db, project, text, model=model, num_tasks=num_tasks, replace=replace, source=file.name,
                    actor="cli", progress=report,
                )  # fmt: skip
        first, _ = result.imported.numbers
        async with db.session() as session:
            tasks, _ = await service.list_tasks(
                session, result.project_id, limit=result.imported.created, offset=first - 1
            )
        return result, list(tasks)

    result, tasks = common.run_with_db(settings, go)
    if json_output:
        common.print_json([service.to_out(t).model_dump(mode="json") for t in tasks])
        return
    first, last = result.imported.numbers
    print(f"{result.imported.created} tasks from {file.name} (#{first}–#{last}); {result.imported.replaced} replaced")
    for issue in result.issues:
        print(f"  note: {issue.message}")
    for task in tasks:
        indent = "  " if task.parent_task_id else ""
        print(f"{indent}#{task.number:<4} p{task.priority} {task.type:<7} {task.title}")


@contextmanager
def _progress(*, enabled: bool) -> Iterator[Callable[[int, int], None] | None]:
    """A Rich progress bar over the document's chunks while a model works through them."""
    if not enabled:
        yield None
        return
    from rich.progress import Progress

    with Progress(transient=True) as bar:
        task = bar.add_task("planning", total=None)

        def report(done: int, total: int) -> None:
            bar.update(task, completed=done, total=total, description=f"planning chunk {done}/{total}")

        yield report
