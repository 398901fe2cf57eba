"""`taskmaster project add | list | show | remove`."""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from taskmaster.cli import common

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncSession

    from taskmaster.projects.schemas import ProjectOut

command = typer.Typer(no_args_is_help=True)
_URL = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://|[^/\s]+@[^/\s]+:")


def _is_path(repository: str) -> bool:
    """A local path, not a URL (`https://…`, `ssh://…`) nor scp-like `git@host:owner/name`."""
    return not _URL.match(repository)


def _show(project: ProjectOut, json_output: bool) -> None:
    if json_output:
        common.print_json(project.model_dump(mode="json"))
        return
    for key, value in project.model_dump().items():
        print(f"{key:>18}: {value}")


@command.command("add")
def add_command(
    name: Annotated[str, typer.Argument(help="A short unique name.")],
    repo: Annotated[str, typer.Option("--repo", help="Repository URL or local path.")],
    forge: Annotated[str, typer.Option(help="github, gitlab or local.")] = "local",
    default_branch: Annotated[str, typer.Option(help="Branch pull requests target.")] = "main",
    webhook_secret: Annotated[
        str | None, typer.Option(help="Secret the forge signs webhooks with (stored encrypted).")
    ] = None,
    forge_token: Annotated[
        str | None, typer.Option(help="Token for the forge's API: statuses, comments, permissions (stored encrypted).")
    ] = None,
    forge_api_url: Annotated[
        str | None, typer.Option(help="The forge's API URL, for GitHub Enterprise or a self-managed GitLab.")
    ] = None,
    force: Annotated[bool, typer.Option(help="Add it even if another project uses the same repository.")] = False,
    json_output: bool = common.JsonOption,
) -> None:
    """Register a project. A local repository is given by its path (stored absolute)."""
    from pydantic import ValidationError

    from taskmaster.projects import service
    from taskmaster.projects.schemas import ProjectCreate
    from taskmaster.secrets import SecretBox

    if forge == "local" and _is_path(repo):
        path = Path(repo).expanduser()
        if not path.is_dir():
            common.fail(f"--repo {repo}: no such directory (give an existing repository's path, or its URL)")
        repo = str(path.resolve())
    settings = common.settings()
    try:
        spec = ProjectCreate.model_validate(
            {
                "name": name,
                "repository": repo,
                "forge": forge,
                "default_branch": default_branch,
                "webhook_secret": webhook_secret,
                "forge_token": forge_token,
                "settings": {"forge_api_url": forge_api_url} if forge_api_url else {},
            }
        )
    except ValidationError as exc:
        common.fail("; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors()))
    box = SecretBox.from_settings(settings)

    async def go(session: AsyncSession) -> ProjectOut:
        from taskmaster.core.errors import Conflict

        same = [p.name for p in await service.list_projects(session) if p.repository.rstrip("/") == repo.rstrip("/")]
        if same and not force:
            raise Conflict(
                f"project {same[0]} already uses {repo}: its webhooks and pipelines would be shared; "
                "use --force to add a second project on it"
            )
        return service.to_out(await service.create_project(session, spec=spec, box=box, actor="cli"))

    _show(common.run_in_transaction(settings, go), json_output)


@command.command("list")
def list_command(json_output: bool = common.JsonOption) -> None:
    """List projects."""
    from taskmaster.projects import service

    async def go(session: AsyncSession) -> list[ProjectOut]:
        return [service.to_out(p) for p in await service.list_projects(session)]

    projects = common.run_in_transaction(common.settings(), go)
    if json_output:
        common.print_json([p.model_dump(mode="json") for p in projects])
        return
    common.print_table(
        ["id", "name", "forge", "repository", "default branch"],
        [(p.id, p.name, p.forge, p.repository, p.default_branch) for p in projects],
    )


@command.command("show")
def show_command(
    project: Annotated[str, typer.Argument(help="Name or id.")], json_output: bool = common.JsonOption
) -> None:
    """Show one project."""
    from taskmaster.projects import service

    async def go(session: AsyncSession) -> ProjectOut:
        return service.to_out(await service.get_project(session, project))

    _show(common.run_in_transaction(common.settings(), go), json_output)


@command.command("remove")
def remove_command(project: Annotated[str, typer.Argument(help="Name or id.")], yes: bool = common.YesOption) -> None:
    """Remove a project and everything recorded for it."""
    from taskmaster.projects import service

    common.confirm(f"remove project {project} with its tasks, pipelines and logs?", yes)

    async def go(session: AsyncSession) -> str:
        return (await service.delete_project(session, project, actor="cli")).name

    print(f"project {common.run_in_transaction(common.settings(), go)} removed")


@command.command("rotate-webhook-secret")
def rotate_webhook_secret_command(
    project: Annotated[str, typer.Argument(help="Name or id.")],
    secret: Annotated[
        str, typer.Option(prompt=True, hide_input=True, help="The new secret (asked for when not given).")
    ],
    json_output: bool = common.JsonOption,
) -> None:
    """Replace the webhook secret; the previous one is still accepted for the configured overlap."""
    from taskmaster.projects import service
    from taskmaster.secrets import SecretBox

    settings = common.settings()
    box = SecretBox.from_settings(settings)

    async def go(session: AsyncSession) -> ProjectOut:
        return service.to_out(
            await service.rotate_webhook_secret(session, project, secret=secret, box=box, actor="cli")
        )

    rotated = common.run_in_transaction(settings, go)
    if json_output:
        common.print_json(rotated.model_dump(mode="json"))
        return
    overlap = settings.webhooks.secret_overlap_seconds / 3600
    print(f"webhook secret of {rotated.name} replaced; the previous one is accepted for {overlap:g} more hours")
