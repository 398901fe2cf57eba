"""`taskmaster token create | list | revoke`."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Annotated

import typer

from taskmaster.cli import common

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncSession

    from taskmaster.auth.schemas import TokenCreated, TokenInfo

command = typer.Typer(no_args_is_help=True)


@command.command("create")
def create_command(
    role: Annotated[str, typer.Option(help="viewer, developer or admin.")],
    name: Annotated[str, typer.Option(help="A label to recognise the token by.")] = "cli",
    project: Annotated[str | None, typer.Option(help="Limit the token to one project (name or id).")] = None,
    expires_in_days: Annotated[int | None, typer.Option(min=1, max=36500, help="Expire after this many days.")] = None,
    json_output: bool = common.JsonOption,
) -> None:
    """Create a token. Its value is printed once and cannot be shown again."""
    from taskmaster.auth import service
    from taskmaster.auth.schemas import Role, TokenSpec
    from taskmaster.core.clock import utcnow
    from taskmaster.projects.service import get_project

    try:
        parsed_role = Role(role)
    except ValueError:
        common.fail(f"--role must be one of viewer, developer, admin (got {role!r})")
    if not 1 <= len(name) <= 200:
        common.fail(f"--name must have 1 to 200 characters (got {len(name)})")
    expires_at: datetime | None = utcnow() + timedelta(days=expires_in_days) if expires_in_days else None

    async def go(session: AsyncSession) -> TokenCreated:
        project_id = (await get_project(session, project)).id if project else None
        spec = TokenSpec(name=name, role=parsed_role, project_id=project_id, expires_at=expires_at)
        return await service.create_token(session, spec=spec, created_by="cli")

    created = common.run_in_transaction(common.settings(), go)
    if json_output:
        common.print_json(created.model_dump(mode="json"))
        return
    print(created.token)
    print(f"token {created.id} ({created.role.value}) created; store it now, it is not shown again.")


@command.command("list")
def list_command(
    include_revoked: Annotated[bool, typer.Option("--all", help="Include revoked tokens.")] = False,
    json_output: bool = common.JsonOption,
) -> None:
    """List tokens (never their values)."""
    from taskmaster.auth import service

    async def go(session: AsyncSession) -> list[TokenInfo]:
        return await service.list_tokens(session, include_revoked=include_revoked)

    tokens = common.run_in_transaction(common.settings(), go)
    if json_output:
        common.print_json([t.model_dump(mode="json") for t in tokens])
        return
    from taskmaster.db.prefix import short_ids

    common.print_table(
        ["id", "name", "prefix", "role", "project", "expires", "last used", "revoked"],
        [
            (
                short,
                t.name,
                t.token_prefix,
                t.role.value,
                t.project_id,
                t.expires_at,
                t.last_used_at,
                t.revoked_at,
            )
            for short, t in zip(short_ids([t.id for t in tokens]), tokens, strict=True)
        ],
    )


@command.command("revoke")
def revoke_command(
    token_id: Annotated[str, typer.Argument(help="The token's id (or a unique prefix of it).")],
    yes: bool = common.YesOption,
) -> None:
    """Revoke a token: it stops working at once."""
    from taskmaster.auth import service
    from taskmaster.db.models import ApiToken
    from taskmaster.db.prefix import resolve_id

    common.confirm(f"revoke token {token_id}? Whatever uses it stops working at once.", yes)

    async def go(session: AsyncSession) -> TokenInfo:
        found = await resolve_id(session, ApiToken.id, token_id, "token")
        return await service.revoke_token(session, token_id=found, actor="cli")

    revoked = common.run_in_transaction(common.settings(), go)
    print(f"token {revoked.id} ({revoked.name}) revoked")
