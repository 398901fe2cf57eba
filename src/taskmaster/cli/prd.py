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
    file: Annotated[
        Path, typer.Argument(help="The PRD: Markdown, plain text, .html, .docx or .pdf.", exists=True, dir_okay=False)
    ],
    project: Annotated[str, typer.Option("--project", "-p", help="Project name or id.")],
    num_tasks: Annotated[int | None, typer.Option(min=1, help="About how many top-level tasks to make.")] = None,
    provider: Annotated[str, typer.Option(help="offline (default), anthropic, openai or ollama.")] = "offline",
    model_name: Annotated[str | None, typer.Option("--model", help="The provider's model (default: its own).")] = None,
    replace: Annotated[bool, typer.Option("--replace", help="Delete the project's tasks first.")] = False,
    append: Annotated[
        bool, typer.Option("--append", help="Add the tasks even if the project already holds this PRD.")
    ] = False,
    explain: Annotated[
        bool, typer.Option("--explain", help="Show per task the source lines and why each dependency and priority.")
    ] = False,
    json_output: bool = common.JsonOption,
) -> None:
    """Parse FILE into a task graph (dependencies, priorities, subtasks) and store it in the project.

    Parsing a PRD the project already holds (same file name or same text) is refused unless --replace or --append.
    """
    from taskmaster.tasks import service
    from taskmaster.tasks.planner.formats import read_prd
    from taskmaster.tasks.prd import parse_into_project

    common.require_planner(provider)
    if replace and append:
        common.fail("--replace and --append exclude each other: pick one")
    from taskmaster.core.errors import TaskmasterError

    try:
        text = read_prd(file.read_bytes(), file.name)
    except TaskmasterError as exc:
        common.fail(exc.detail, common.EXIT_FAILURE)
    settings = common.settings()

    async def go(db: Database) -> tuple[PrdResult, list[Any]]:
        from taskmaster.agents.llm import planning_model

        async with planning_model(settings, provider, model_name) as model:
            with _progress(enabled=model is not None and not json_output) as report:
                result = await parse_into_project(
                    db, project, text, model=model, num_tasks=num_tasks, replace=replace, append=append,
                    source=file.name, actor="cli", progress=report, prices=settings.costs.prices,
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
    numbers = {str(task.extra.get("key")): task.number for task in tasks}
    for task in tasks:
        indent = "  " if task.parent_task_id else ""
        print(f"{indent}#{task.number:<4} p{task.priority} {task.type:<7} {task.title}")
        if explain:
            for line in explain_lines(task.extra, numbers):
                print(f"{indent}        {line}")


def explain_lines(extra: dict[str, Any], numbers: dict[str, int]) -> list[str]:
    """What --explain prints under a task: where it came from, and why each dependency and its priority."""
    out: list[str] = []
    lines = extra.get("source_lines")
    if isinstance(lines, list) and len(lines) == 2:
        where = f"line {lines[0]}" if lines[0] == lines[1] else f"lines {lines[0]}–{lines[1]}"
        ident = extra.get("requirement_id")
        out.append(f"from {where}" + (f" ({ident})" if ident else ""))
    why = extra.get("why")
    if isinstance(why, dict):
        for dep in why.get("dependencies") or []:
            target = numbers.get(str(dep.get("on")), dep.get("on"))
            out.append(f"depends on #{target}: {dep.get('why')}")
        if why.get("priority"):
            out.append(f"priority: {why['priority']}")
    return out or ["(no explanation: planned by a model)"]


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
