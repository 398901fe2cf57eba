"""`taskmaster issue list | show`: issues of a local-forge project (opened by Taskmaster, e.g. for manual review)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any

import typer

from taskmaster.cli import common
from taskmaster.cli.pulls import ProjectOption, run_forge

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncSession

command = typer.Typer(no_args_is_help=True)


@command.command("list")
def list_command(
    project: ProjectOption,
    state: Annotated[str | None, typer.Option(help="open or closed.")] = None,
    json_output: bool = common.JsonOption,
) -> None:
    """The project's issues, newest first."""
    from taskmaster.forges.local import service

    async def go(session: AsyncSession) -> list[dict[str, Any]]:
        row, issues = await service.list_issues(session, project, state=state)
        return [service.issue_out(row, i).model_dump(mode="json") for i in issues]

    rows = run_forge(common.settings(), go)
    if json_output:
        common.print_json(rows)
        return
    common.print_table(
        ["#", "state", "title", "labels", "opened"],
        [(r["number"], r["state"], r["title"][:70], ", ".join(r["labels"]), r["created_at"][:19]) for r in rows],
        title=f"{len(rows)} issues",
    )


@command.command("show")
def show_command(
    project: ProjectOption,
    number: Annotated[int, typer.Argument(help="The issue's number.", min=1, max=2**31 - 1)],
    json_output: bool = common.JsonOption,
) -> None:
    """One issue with its whole body."""
    from taskmaster.forges.local import service

    async def go(session: AsyncSession) -> dict[str, Any]:
        row, issue = await service.get_issue(session, project, number)
        return service.issue_out(row, issue).model_dump(mode="json")

    data = run_forge(common.settings(), go)
    if json_output:
        common.print_json(data)
        return
    labels = f" ({', '.join(data['labels'])})" if data["labels"] else ""
    print(f"#{data['number']} {data['title']} [{data['state']}]{labels}")
    print(f"  by {data['author'] or '-'} at {data['created_at'][:19]}")
    if data["body"]:
        print()
        print(data["body"].rstrip())
