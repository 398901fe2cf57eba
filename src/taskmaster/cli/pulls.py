"""`taskmaster pr create | list | show | ready | merge | close`: pull requests of the local forge (and, for GitHub
and GitLab projects, a list of the pull requests Taskmaster knows of).

Exit codes: 0 done, 1 refused (a conflict: a merge git cannot make, a closed pull request, one already open, one
that is no draft to mark ready), 2 usage (unknown project, branch or number; bad input).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import typer

from taskmaster.cli import common

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncSession

    from taskmaster.config import Settings
    from taskmaster.db.session import Database

command = typer.Typer(no_args_is_help=True)
T = TypeVar("T")

ProjectOption = Annotated[str, typer.Option("--project", "-p", help="The project (name or id).")]
NumberArgument = Annotated[int, typer.Argument(help="The pull request's number.", min=1, max=2**31 - 1)]


class _Refused(Exception):
    def __init__(self, message: str, code: int) -> None:
        super().__init__(message)
        self.message, self.code = message, code


def run_forge(settings: Settings, action: Callable[[AsyncSession], Awaitable[T]]) -> T:
    """Run `action` in one transaction; a conflict exits 1, any other domain error 2, each with its message."""
    from taskmaster.core.errors import Conflict, TaskmasterError

    async def go(db: Database) -> T | _Refused:
        try:
            async with db.transaction() as session:
                return await action(session)
        except Conflict as exc:
            return _Refused(common.detail(exc), common.EXIT_FAILURE)
        except TaskmasterError as exc:
            return _Refused(common.detail(exc), common.EXIT_ERROR)

    result = common.run_with_db(settings, go)
    if isinstance(result, _Refused):
        common.fail(result.message, result.code)
    return result


def _actor() -> str:
    import getpass

    return getpass.getuser()


def _print_pull(data: dict[str, Any]) -> None:
    state = "merged" if data["merged"] else data["state"]
    print(f"#{data['number']} {data['title'] or ''} [{state}{', draft' if data['draft'] else ''}]")
    print(f"  {data['head_ref']} ({data['head_sha'][:12]}) -> {data['base_ref']}"
          + (f"; merged as {data['merge_commit_sha'][:12]}" if data["merge_commit_sha"] else ""))  # fmt: skip
    print(f"  by {data['author'] or '-'}, {data['forge']} forge, {data['url'] or ''}")
    if data.get("body"):
        print()
        print("  " + data["body"].rstrip().replace("\n", "\n  "))


@command.command("create")
def create_command(
    project: ProjectOption,
    head: Annotated[str, typer.Option("--head", help="The branch with the changes.")],
    title: Annotated[str, typer.Option("--title", "-t", help="The pull request's title.")],
    base: Annotated[
        str | None, typer.Option("--base", help="The branch to merge into (default: the project's).")
    ] = None,
    body: Annotated[str, typer.Option("--body", "-b", help="The description.")] = "",
    draft: Annotated[
        bool,
        typer.Option(
            "--draft",
            help="Open it as a draft: no validation pipeline is requested for it and it cannot be merged until "
            "`taskmaster pr ready` marks it ready for review.",
        ),
    ] = False,
    json_output: bool = common.JsonOption,
) -> None:
    """Open a pull request from a branch of a local-forge project's repository; its validation pipeline is requested
    through the webhook queue (a worker, or `taskmaster serve`, runs it; `pipeline run --pr N` runs it here), except
    for a draft's, which waits for `pr ready`."""
    from pydantic import ValidationError

    from taskmaster.forges.local import service
    from taskmaster.forges.local.schemas import PullRequestCreate

    try:
        spec = PullRequestCreate(head=head, base=base, title=title, body=body, draft=draft)
    except ValidationError as exc:
        common.fail("; ".join(f"--{e['loc'][0]}: {e['msg']}" for e in exc.errors()))

    async def go(session: AsyncSession) -> dict[str, Any]:
        pull = await service.open_pull_request(session, project, spec, author=_actor())
        from taskmaster.projects.service import get_project

        return service.to_out(await get_project(session, pull.project_id), pull).model_dump(mode="json")

    data = run_forge(common.settings(), go)
    if json_output:
        common.print_json(data)
    else:
        kind = "draft pull request" if data["draft"] else "pull request"
        print(f"opened {kind} #{data['number']}: {data['head_ref']} -> {data['base_ref']}")


@command.command("list")
def list_command(
    project: ProjectOption,
    state: Annotated[str | None, typer.Option(help="open, closed or merged.")] = None,
    json_output: bool = common.JsonOption,
) -> None:
    """The project's pull requests, newest first (a local project's heads are checked for new commits)."""
    from taskmaster.forges.local import service

    async def go(session: AsyncSession) -> list[dict[str, Any]]:
        row, pulls = await service.list_pull_requests(session, project, state=state)
        return [service.to_out(row, p).model_dump(mode="json") for p in pulls]

    rows = run_forge(common.settings(), go)
    if json_output:
        common.print_json(rows)
        return
    common.print_table(
        ["#", "state", "title", "head", "base", "sha", "author"],
        [
            (
                r["number"],
                "merged" if r["merged"] else r["state"],
                (r["title"] or "")[:60],
                r["head_ref"],
                r["base_ref"],
                r["head_sha"][:12],
                r["author"] or "",
            )
            for r in rows
        ],
        title=f"{len(rows)} pull requests",
    )


@command.command("show")
def show_command(project: ProjectOption, number: NumberArgument, json_output: bool = common.JsonOption) -> None:
    """One pull request with its head's statuses and check runs, its comments, reviews and pipelines."""
    from taskmaster.forges.local import service

    async def go(session: AsyncSession) -> dict[str, Any]:
        row, pull = await service.get_pull_request(session, project, number)
        return (await service.detail(session, row, pull)).model_dump(mode="json")

    data = run_forge(common.settings(), go)
    if json_output:
        common.print_json(data)
        return
    _print_pull(data)
    if data["statuses"]:
        common.print_table(
            ["status", "state", "description"],
            [(s["context"], s["state"], s["description"] or "") for s in data["statuses"]],
        )
    for check in data["check_runs"]:
        print(f"check run {check['name']}: {check['conclusion'] or check['status']} {check['title'] or ''}")
        for a in check["annotations"]:
            print(f"  {a['path']}:{a['start_line']}: {a['level']}: {a['message']}")
    for review in data["reviews"]:
        print(f"review at {review['commit_sha'][:12]}: {review['body']}")
        for c in review["comments"]:
            print(f"  {c['path']}:{c['line']}: {c['body']}")
    for comment in data["comments"]:
        print(f"comment ({comment['marker']}):")
        print("  " + comment["body"].rstrip().replace("\n", "\n  "))
    if data["pipelines"]:
        common.print_table(
            ["pipeline", "status", "commit", "created"],
            [(p["id"], p["status"], (p["commit_sha"] or "")[:12], p["created_at"][:19]) for p in data["pipelines"]],
        )


@command.command("ready")
def ready_command(project: ProjectOption, number: NumberArgument, json_output: bool = common.JsonOption) -> None:
    """Mark a draft pull request ready for review: its validation pipeline is requested (through the webhook queue,
    as on opening) and it may be merged; exit 1 for one that is no draft or not open."""
    from taskmaster.forges.local import service

    async def go(session: AsyncSession) -> dict[str, Any]:
        pull = await service.mark_ready(session, project, number, actor=_actor())
        from taskmaster.projects.service import get_project

        return service.to_out(await get_project(session, pull.project_id), pull).model_dump(mode="json")

    data = run_forge(common.settings(), go)
    if json_output:
        common.print_json(data)
    else:
        print(f"marked pull request #{number} ready for review; its validation of {data['head_sha'][:12]} is requested "
              "through the webhook queue")  # fmt: skip


@command.command("merge")
def merge_command(
    project: ProjectOption,
    number: NumberArgument,
    squash: Annotated[bool, typer.Option("--squash", help="One commit instead of a merge commit.")] = False,
    sha: Annotated[str | None, typer.Option("--sha", help="Merge only while the head is at this commit.")] = None,
    json_output: bool = common.JsonOption,
) -> None:
    """Merge the pull request into its base branch with git; exit 1 when git or its state refuses (nothing changed)."""
    from taskmaster.forges.local import service

    async def go(session: AsyncSession) -> dict[str, Any]:
        pull = await service.merge_pull_request(session, project, number, actor=_actor(), squash=squash, sha=sha)
        from taskmaster.projects.service import get_project

        return service.to_out(await get_project(session, pull.project_id), pull).model_dump(mode="json")

    data = run_forge(common.settings(), go)
    if json_output:
        common.print_json(data)
    else:
        print(f"merged pull request #{number} into {data['base_ref']} as {data['merge_commit_sha']}")


@command.command("close")
def close_command(project: ProjectOption, number: NumberArgument, json_output: bool = common.JsonOption) -> None:
    """Close the pull request without merging (closing a closed one is no error)."""
    from taskmaster.forges.local import service

    async def go(session: AsyncSession) -> dict[str, Any]:
        pull = await service.close_pull_request(session, project, number, actor=_actor())
        from taskmaster.projects.service import get_project

        return service.to_out(await get_project(session, pull.project_id), pull).model_dump(mode="json")

    data = run_forge(common.settings(), go)
    if json_output:
        common.print_json(data)
    else:
        print(f"closed pull request #{number}")
