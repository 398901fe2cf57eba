"""`taskmaster metrics`: pipeline figures over a window (success rates, durations, failing steps, stuck pipelines),
and the tokens and cost of AI calls per project and purpose over the same window."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from taskmaster.cli import common

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncSession

    from taskmaster.costs.schemas import AiUsageOut, CostReport, CostRow
    from taskmaster.pipelines.metrics import Figures, Metrics


def command(
    window: Annotated[str, typer.Option("--window", "-w", help="How far back: 90m, 24h, 7d, 2w.")] = "24h",
    project: Annotated[str | None, typer.Option("--project", "-p", help="Only this project (name or id).")] = None,
    top: Annotated[int, typer.Option(min=0, max=50, help="How many failing steps to list.")] = 5,
    json_output: bool = common.JsonOption,
) -> None:
    """Pipeline figures over a window: success rate by type, durations, failing steps, stuck pipelines; and AI
    tokens and cost per project and purpose (`costs` in --json)."""
    from taskmaster.core.clock import utcnow
    from taskmaster.core.errors import InvalidInput
    from taskmaster.pipelines import metrics

    try:
        span = metrics.parse_window(window, name="--window")
    except InvalidInput as exc:
        common.fail(exc.detail)
    settings = common.settings()

    async def go(session: AsyncSession) -> tuple[Metrics, CostReport]:
        from taskmaster.costs.service import report
        from taskmaster.projects.service import get_project

        project_id = (await get_project(session, project)).id if project else None
        now = utcnow()
        figures = await metrics.pipeline_metrics(session, since=now - span, project_id=project_id, now=now, top=top)
        return figures, await report(session, since=now - span, project_id=project_id)

    figures, costs = common.run_in_transaction(settings, go)
    if json_output:
        common.print_json({**figures.model_dump(mode="json"), "costs": costs.model_dump(mode="json")})
        return
    _print(figures, window, project)
    _print_costs(costs, window)


def _print_costs(costs: CostReport, window: str) -> None:
    if not costs.rows:
        print(f"No AI calls in the last {window}.")
        return
    rows: list[tuple[str, str, CostRow | AiUsageOut]] = [(r.project, r.purpose, r) for r in costs.rows]
    if len(costs.projects) > 1:
        rows += [(p.project, "all", p) for p in costs.projects]
    rows.append(("all", "all", costs.total))
    common.print_table(
        ["project", "purpose", "calls", "tokens in", "tokens out", "cost (USD)"],
        [
            (
                project,
                purpose,
                u.calls,
                f"{u.input_tokens:,}",
                f"{u.output_tokens:,}",
                _usd(u.cost_usd, u.unpriced_calls),
            )
            for project, purpose, u in rows
        ],
        title=f"AI calls in the last {window}",
    )


def _usd(cost: float, unpriced: int) -> str:
    return f"{cost:.4f}" + (f" (+{unpriced} unpriced)" if unpriced else "")


def _print(figures: Metrics, window: str, project: str | None) -> None:
    # One column per pipeline type and one row per figure: as many columns as types, so 80 columns are enough.
    columns = [*figures.by_type.items(), ("all", figures.overall)]
    rows: list[tuple[str, ...]] = [("pipelines", *(str(f.total) for _, f in columns))]
    for status in ("success", "failed", "error", "timed_out", "canceled"):
        rows.append((status.replace("_", " "), *(str(f.by_status.get(status, 0)) for _, f in columns)))
    rows += [
        ("live", *(str(_live(f)) for _, f in columns)),
        ("success rate", *("-" if f.success_rate is None else f"{f.success_rate:.1%}" for _, f in columns)),
        ("average time", *(_duration(f.average_duration_ms) for _, f in columns)),
        ("median time", *(_duration(f.median_duration_ms) for _, f in columns)),
    ]
    common.print_table(
        ["", *(name for name, _ in columns)],
        rows,
        title=f"Pipelines requested in the last {window}" + (f" in {project}" if project else "")
        + f" (since {figures.since:%Y-%m-%d %H:%M} UTC); success rate leaves canceled out",
    )  # fmt: skip
    if figures.failing_steps:
        common.print_table(
            ["step", "failures", "last failed", "latest errors"],
            [
                (
                    s.step_name, s.failures, f"{s.last_failed_at:%Y-%m-%d %H:%M}" if s.last_failed_at else "",
                    " | ".join(line.splitlines()[0] if line else "" for line in s.recent_errors),
                )
                for s in figures.failing_steps
            ],
            title="Most common failing steps",
        )  # fmt: skip
    else:
        print("No failing steps in the window.")
    if figures.stuck:
        from taskmaster.db.prefix import short_ids

        common.print_table(
            ["id", "type", "status", "since", "for", "branch"],
            [
                (short, p.pipeline_type, p.status, f"{p.since:%Y-%m-%d %H:%M}", _duration(p.age_seconds * 1000),
                 p.branch_name)
                for short, p in zip(short_ids([p.id for p in figures.stuck]), figures.stuck, strict=True)
            ],
            title=f"Stuck pipelines: running over {_duration(figures.stuck_running_after_seconds * 1000)}, "
            f"pending or queued over {_duration(figures.stuck_waiting_after_seconds * 1000)}",
        )  # fmt: skip
    else:
        print("No stuck pipelines.")


def _live(figures: Figures) -> int:
    return sum(figures.by_status.get(s, 0) for s in ("pending", "queued", "running"))


def _duration(ms: float | None) -> str:
    """`850 ms`, `12.5 s`, `4m 10s`, `2h 05m`."""
    if ms is None:
        return "-"
    if ms < 1000:
        return f"{ms:.0f} ms"
    seconds = ms / 1000
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, secs = divmod(int(seconds), 60)
    if minutes < 60:
        return f"{minutes}m {secs:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h {minutes:02d}m"
