"""`taskmaster template list | show | edit | activate`: the prompt templates and their versions."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from taskmaster.cli import common

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncSession

    from taskmaster.db.models import Template
    from taskmaster.templates.schemas import TemplateDetail, TemplateSummary, TemplateVersionOut

command = typer.Typer(no_args_is_help=True)
ACTOR = "cli"

NameArgument = Annotated[str, typer.Argument(help="The template's name, e.g. prd.parse.")]


@command.command("list")
def list_command(json_output: bool = common.JsonOption) -> None:
    """Every template, its active version and how many versions it has."""
    from taskmaster.templates import service

    async def go(session: AsyncSession) -> list[TemplateSummary]:
        return await service.list_templates(session)

    rows = common.run_in_transaction(common.settings(), go)
    if json_output:
        common.print_json([row.model_dump(mode="json") for row in rows])
        return
    common.print_table(
        ["name", "kind", "active", "versions", "updated"],
        [
            (
                r.name,
                r.kind,
                r.active_version or "default (not stored yet)",
                r.versions,
                r.updated_at.isoformat()[:19].replace("T", " ") if r.updated_at else None,
            )
            for r in rows
        ],
        title=f"{len(rows)} templates",
    )


def _chosen(detail: TemplateDetail, version: int | None) -> TemplateVersionOut:
    if version is None:
        return next(v for v in detail.versions if v.is_active or detail.active_version is None)
    found = next((v for v in detail.versions if v.version == version), None)
    if found is None:
        known = ", ".join(str(v.version) for v in detail.versions)
        common.fail(f"template {detail.name!r} has no version {version} (versions: {known})", common.EXIT_FAILURE)
    return found


@command.command("show")
def show_command(
    name: NameArgument,
    version: Annotated[
        int | None, typer.Option("--version", min=1, max=2**31 - 1, help="This version (default: the active one).")
    ] = None,
    json_output: bool = common.JsonOption,
) -> None:
    """Print a version's text (the active one by default); with --json, the template and every version."""
    from taskmaster.templates import service

    async def go(session: AsyncSession) -> TemplateDetail:
        return await service.template_detail(session, name)

    detail = common.run_in_transaction(common.settings(), go)
    chosen = _chosen(detail, version)
    if json_output:
        common.print_json({**detail.model_dump(mode="json"), "shown": chosen.model_dump(mode="json")})
        return
    state = "active" if chosen.is_active else "inactive"
    print(f"# {name} version {chosen.version} ({state}, {len(detail.versions)} versions)", file=sys.stderr)
    sys.stdout.write(chosen.content)


@command.command("edit")
def edit_command(
    name: NameArgument,
    file: Annotated[
        Path | None,
        typer.Option("--file", "-f", help="Take the new text from this file ('-' for stdin) instead of $EDITOR."),
    ] = None,
    json_output: bool = common.JsonOption,
) -> None:
    """Add a new version (made active) from a file, or edited from the active one in $EDITOR. Text that does not
    parse is refused with its line named, and nothing is stored."""
    from taskmaster.templates import service

    settings = common.settings()

    async def current(session: AsyncSession) -> TemplateDetail:
        return await service.template_detail(session, name)

    if file is None:
        detail = common.run_in_transaction(settings, current)
        import click

        text = click.edit(_chosen(detail, None).content, extension=".j2", require_save=True)
        if text is None:
            common.fail("the text was not saved: no new version", common.EXIT_FAILURE)
    elif str(file) == "-":
        text = sys.stdin.read()
    else:
        try:
            text = file.read_text("utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            common.fail(f"cannot read {file}: {exc}", common.EXIT_FAILURE)
    if not text.strip():
        common.fail("the new text is empty: no new version", common.EXIT_FAILURE)

    async def add(session: AsyncSession) -> Template:
        from taskmaster.audit import service as audit

        kind = await service.template_kind(session, name)
        row = await service.add_version(session, name, text, kind=kind)
        await audit.record(
            session, actor=ACTOR, action="template.version.add", target_type="template", target_id=row.id,
            data={"name": name, "version": row.version},
        )  # fmt: skip
        return row

    row = common.run_in_transaction(settings, add)
    if json_output:
        common.print_json({"name": row.name, "version": row.version, "is_active": row.is_active})
        return
    print(f"{name}: version {row.version} stored and active")


@command.command("activate")
def activate_command(
    name: NameArgument,
    version: Annotated[int, typer.Argument(min=1, max=2**31 - 1, help="The version to make active.")],
    json_output: bool = common.JsonOption,
) -> None:
    """Make an existing version the active one (to roll back an edit, activate the version before it)."""
    from taskmaster.templates import service

    async def go(session: AsyncSession) -> Template:
        from taskmaster.audit import service as audit

        row = await service.activate_version(session, name, version)
        await audit.record(
            session, actor=ACTOR, action="template.activate", target_type="template", target_id=row.id,
            data={"name": name, "version": row.version},
        )  # fmt: skip
        return row

    row = common.run_in_transaction(common.settings(), go)
    if json_output:
        common.print_json({"name": row.name, "version": row.version, "is_active": row.is_active})
        return
    print(f"{name}: version {row.version} is active")
