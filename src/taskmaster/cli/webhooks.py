"""`taskmaster webhooks list | show | redeliver`: the deliveries the forges sent, and what became of them."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any

import typer

from taskmaster.cli import common

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncSession

    from taskmaster.db.models import WebhookDelivery

command = typer.Typer(no_args_is_help=True)


async def _delivery_id(session: AsyncSession, text: str) -> str:
    from taskmaster.db.models import WebhookDelivery
    from taskmaster.db.prefix import resolve_id

    return str(await resolve_id(session, WebhookDelivery.id, text, "webhook delivery"))


def _summary(row: WebhookDelivery) -> dict[str, Any]:
    return {
        "id": str(row.id), "provider": row.provider, "event": row.event, "action": row.action,
        "delivery_id": row.delivery_id, "project_id": str(row.project_id) if row.project_id else None,
        "status": row.status, "attempts": row.attempts, "error": row.error, "result": row.result,
        "next_attempt_at": row.next_attempt_at.isoformat() if row.next_attempt_at else None,
        "created_at": row.created_at.isoformat(),
    }  # fmt: skip


@command.command("list")
def list_command(
    status: Annotated[str | None, typer.Option(help="received, retry, processed or failed.")] = None,
    project: Annotated[str | None, typer.Option("--project", "-p", help="Only this project (name or id).")] = None,
    limit: Annotated[int, typer.Option(min=1, max=500)] = 50,
    json_output: bool = common.JsonOption,
) -> None:
    """Deliveries, newest first."""
    from taskmaster.projects.service import get_project
    from taskmaster.webhooks import service

    async def go(session: AsyncSession) -> tuple[list[dict[str, Any]], int]:
        project_id = (await get_project(session, project)).id if project else None
        rows, total = await service.list_deliveries(session, status=status, project_id=project_id, limit=limit)
        return [_summary(r) for r in rows], total

    rows, total = common.run_in_transaction(common.settings(), go)
    if json_output:
        common.print_json({"items": rows, "total": total})
        return
    from taskmaster.db.prefix import short_ids

    common.print_table(
        ["id", "received", "event", "status", "tries", "outcome"],
        [
            (
                short,
                r["created_at"][:19].replace("T", " "),
                f"{r['provider']} {r['event']}" + (f".{r['action']}" if r["action"] else ""),
                r["status"],
                r["attempts"],
                r["error"] or _outcome(r["result"]),
            )
            for short, r in zip(short_ids([r["id"] for r in rows]), rows, strict=True)
        ],
        title=f"{len(rows)} of {total} deliveries",
    )


def _outcome(result: dict[str, Any]) -> str:
    for key in ("refused", "ignored"):
        if key in result:
            return f"{key}: {result[key]}"
    if "pipeline" in result:
        return f"pipeline {result['pipeline']}" + ("" if result.get("pipeline_created") else " (already requested)")
    if result.get("canceled"):
        return f"canceled {len(result['canceled'])} pipeline(s)"
    return str(result.get("kind", ""))


@command.command("show")
def show_command(
    delivery: Annotated[str, typer.Argument(help="The delivery's id (or a unique prefix of it).")],
    json_output: bool = common.JsonOption,
) -> None:
    """One delivery: its outcome or error, its headers and its body."""
    from taskmaster.webhooks import service

    async def go(session: AsyncSession) -> dict[str, Any]:
        row = await service.get_delivery(session, await _delivery_id(session, delivery))
        return {**_summary(row), "headers": row.headers, "body": row.body.decode("utf-8", errors="replace")}

    shown = common.run_in_transaction(common.settings(), go)
    if json_output:
        common.print_json(shown)
        return
    body = shown.pop("body")
    for key, value in shown.items():
        print(f"{key:>16}: {value}")
    print(f"{'body':>16}: {len(body)} characters (--json prints it)")


@command.command("redeliver")
def redeliver_command(
    delivery: Annotated[str, typer.Argument(help="The delivery's id (or a unique prefix of it).")],
) -> None:
    """Process a stored delivery again; a running worker takes it within its poll interval."""
    from taskmaster.webhooks import service

    async def go(session: AsyncSession) -> str:
        return str((await service.redeliver(session, await _delivery_id(session, delivery))).id)

    print(f"delivery {common.run_in_transaction(common.settings(), go)} queued for processing again")
