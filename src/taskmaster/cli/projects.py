"""`taskmaster project add | list | show | update | remove`."""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

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
    from taskmaster.projects import settings

    for key, value in project.model_dump(exclude={"settings", "agent_config"}).items():
        print(f"{key:>18}: {value}")
    print(f"{'settings':>18}:")
    for key, value in settings.flat(project.settings).items():
        print(f"{'':>18}  {key} = {_render(value)}")
    if project.agent_config:
        print(f"{'agent config':>18}: {json.dumps(project.agent_config, sort_keys=True)}")


def _render(value: object) -> str:
    if value is None:
        return "(unset)"
    return str(value).lower() if isinstance(value, bool) else str(value)


@command.command("add")
def add_command(
    name: Annotated[str, typer.Argument(help="A short unique name.")],
    repo: Annotated[str, typer.Option("--repo", help="Repository URL or local path.")],
    forge: Annotated[str, typer.Option(help="github, gitlab or local.")] = "local",
    default_branch: Annotated[str, typer.Option(help="Branch pull requests target.")] = "main",
    webhook_secret: Annotated[
        str | None,
        typer.Option(help="Secret the forge signs webhooks with (stored encrypted); visible to `ps`: prefer the file."),
    ] = None,
    webhook_secret_file: Annotated[
        str | None, typer.Option(help="Read the webhook secret from this file ('-': standard input).")
    ] = None,
    forge_token: Annotated[
        str | None,
        typer.Option(
            help="Token for the forge's API: statuses, comments, permissions (stored encrypted); prefer the file."
        ),
    ] = None,
    forge_token_file: Annotated[
        str | None, typer.Option(help="Read the forge token from this file ('-': standard input).")
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

    if webhook_secret_file == "-" and forge_token_file == "-":
        common.fail("only one of --webhook-secret-file and --forge-token-file can read standard input", code=2)
    webhook_secret = _secret("webhook secret", webhook_secret, webhook_secret_file)
    forge_token = _secret("forge token", forge_token, forge_token_file)
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
                "repository": _repository(repo, forge),
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

        wanted = spec.repository.rstrip("/")
        same = [p.name for p in await service.list_projects(session) if p.repository.rstrip("/") == wanted]
        if same and not force:
            raise Conflict(
                f"project {same[0]} already uses {repo}: its webhooks and pipelines would be shared; "
                "use --force to add a second project on it"
            )
        return service.to_out(await service.create_project(session, spec=spec, box=box, actor="cli"))

    _show(common.run_in_transaction(settings, go), json_output)


def _repository(repo: str, forge: str) -> str:
    """A local path made absolute here, where it was typed: the server resolves nothing against its own directory.

    A forge project's bare `owner/name` stays as it is, unless such a directory exists here.
    """
    from taskmaster.projects.repository import is_repository_url

    path = Path(repo).expanduser()
    if is_repository_url(repo) or (forge != "local" and not path.exists()):
        return repo
    return str(path.resolve())


def _secret(what: str, value: str | None, file: str | None) -> str | None:
    """The secret given inline, or read from `file` ('-' for standard input), without its trailing newline."""
    if file is None:
        return value
    if value is not None:
        common.fail(f"give the {what} inline or from a file, not both", code=2)
    try:
        text = sys.stdin.read() if file == "-" else Path(file).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        common.fail(f"could not read the {what} from {file}: {exc}", code=2)
    secret = text.rstrip("\r\n")
    if not secret:
        common.fail(f"the {what} file {file} is empty", code=2)
    return secret


def _json_object(what: str, file: str | None) -> dict[str, Any] | None:
    """The JSON object in `file` ('-' for standard input), or None without a file."""
    if file is None:
        return None
    try:
        value = json.loads(sys.stdin.read() if file == "-" else Path(file).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        common.fail(f"could not read the {what} from {file}: {exc}", code=2)
    if not isinstance(value, dict):
        common.fail(f"the {what} in {file} must be a JSON object", code=2)
    return value


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


@command.command("update")
def update_command(
    project: Annotated[str, typer.Argument(help="Name or id.")],
    changes: Annotated[
        list[str] | None,
        typer.Option(
            "--set",
            metavar="KEY=VALUE",
            help="A setting by dotted name, e.g. review.fail_on=blocker (repeatable); KEY= resets it to its default.",
        ),
    ] = None,
    webhook_secret_file: Annotated[
        str | None,
        typer.Option(
            help="Set the webhook secret from this file ('-': standard input); a replaced one stays accepted for "
            "the overlap, as with rotate-webhook-secret."
        ),
    ] = None,
    forge_token_file: Annotated[
        str | None, typer.Option(help="Set or replace the forge token from this file ('-': standard input).")
    ] = None,
    agent_config_file: Annotated[
        str | None,
        typer.Option(
            help="Replace the coding agent's configuration (agentapi_config: args, env, allow, read_only, "
            "home_files, permissions; see docs/agents.md) with this JSON object ('-': standard input)."
        ),
    ] = None,
    agent_secrets: Annotated[
        list[str] | None,
        typer.Option(
            "--agent-secret",
            metavar="NAME=FILE",
            help="An environment variable of the coding agent, stored encrypted, read from FILE ('-': standard "
            "input); NAME= removes it (repeatable).",
        ),
    ] = None,
    json_output: bool = common.JsonOption,
) -> None:
    """Change project settings and secrets; `project show` lists every key and its value."""
    from taskmaster.projects import service
    from taskmaster.secrets import SecretBox

    parsed: dict[str, str | None] = {}
    for change in changes or []:
        key, sep, value = change.partition("=")
        if not sep or not key.strip():
            common.fail(f"--set {change!r}: expected KEY=VALUE, e.g. review.fail_on=blocker", code=2)
        parsed[key.strip()] = value if value else None
    agent_files: dict[str, str | None] = {}
    for item in agent_secrets or []:
        name, sep, file = item.partition("=")
        if not sep or not name.strip():
            common.fail(f"--agent-secret {item!r}: expected NAME=FILE (NAME= removes the variable)", code=2)
        agent_files[name.strip()] = file or None
    readers = [webhook_secret_file, forge_token_file, agent_config_file, *agent_files.values()]
    if readers.count("-") > 1:
        common.fail("only one of the files can be standard input ('-')", code=2)
    webhook_secret = _secret("webhook secret", None, webhook_secret_file)
    forge_token = _secret("forge token", None, forge_token_file)
    agent_env = {name: _secret(f"secret {name}", None, file) for name, file in agent_files.items()}
    agent_settings = _json_object("agent configuration", agent_config_file)
    if not parsed and webhook_secret is None and forge_token is None and not agent_env and agent_settings is None:
        common.fail(
            "nothing to change: give --set KEY=VALUE, --webhook-secret-file, --forge-token-file, "
            "--agent-config-file or --agent-secret",
            code=2,
        )
    settings = common.settings()
    box = SecretBox.from_settings(settings)

    async def go(session: AsyncSession) -> ProjectOut:
        # One transaction: a refused setting leaves the secrets as they were, and the reverse.
        if parsed:
            await service.update_settings(session, project, parsed, actor="cli")
        if forge_token is not None:
            await service.set_forge_token(session, project, token=forge_token, box=box, actor="cli")
        if webhook_secret is not None:
            await service.rotate_webhook_secret(session, project, secret=webhook_secret, box=box, actor="cli")
        if agent_env or agent_settings is not None:
            await service.set_agent_config(
                session, project, config=agent_settings, secrets=agent_env, box=box, actor="cli"
            )
        return service.to_out(await service.get_project(session, project))

    _show(common.run_in_transaction(settings, go), json_output)


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
        str | None, typer.Option(help="The new secret (asked for when neither it nor --secret-file is given).")
    ] = None,
    secret_file: Annotated[
        str | None, typer.Option(help="Read the new secret from this file ('-': standard input).")
    ] = None,
    json_output: bool = common.JsonOption,
) -> None:
    """Replace the webhook secret; the previous one is still accepted for the configured overlap."""
    from taskmaster.projects import service
    from taskmaster.secrets import SecretBox

    secret = _secret("webhook secret", secret, secret_file)
    if secret is None:
        secret = str(typer.prompt("Secret", hide_input=True))
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
