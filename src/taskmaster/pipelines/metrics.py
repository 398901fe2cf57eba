"""Pipeline figures over a time window (success rates, durations, failing steps, stuck pipelines), and a Prometheus
collector that reads the same tables at scrape time, so that the figures are right whichever process serves them.
"""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from prometheus_client.metrics_core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from pydantic import BaseModel
from sqlalchemy import ColumnElement, and_, any_, case, func, or_, select, tuple_
from sqlalchemy.ext.asyncio import AsyncSession

from taskmaster.core.clock import as_utc, utcnow
from taskmaster.core.errors import InvalidInput
from taskmaster.db.models import Pipeline, PipelineStep, Project
from taskmaster.pipelines.states import PIPELINE_TERMINAL, STEP_FAILURES, STEP_TERMINAL, PipelineStatus

COMPLETED: tuple[str, ...] = (
    PipelineStatus.SUCCESS.value,
    PipelineStatus.FAILED.value,
    PipelineStatus.ERROR.value,
    PipelineStatus.TIMED_OUT.value,
)
"""Pipelines that ran to a verdict: the success rate's denominator and the durations' population. `canceled`
(superseded by a newer commit, or stopped by someone) says nothing about the code, so it is left out of both."""
LIVE: tuple[str, ...] = (PipelineStatus.PENDING.value, PipelineStatus.QUEUED.value, PipelineStatus.RUNNING.value)
WAITING: tuple[str, ...] = (PipelineStatus.PENDING.value, PipelineStatus.QUEUED.value)

STUCK_RUNNING_AFTER = timedelta(hours=1)
"""A pipeline `running` for longer than this is reported stuck (the seed's threshold)."""
STUCK_WAITING_AFTER = timedelta(minutes=30)
"""A pipeline still `pending` or `queued` this long after it was requested is reported stuck: no worker takes it."""
TOP_FAILING_STEPS = 5
RECENT_ERRORS = 3
STUCK_LIMIT = 100
ERROR_CHARS = 500

_WINDOW = re.compile(r"^\s*(\d{1,6})\s*([mhdw])\s*$")
_UNIT_SECONDS = {"m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
MAX_WINDOW = timedelta(days=366)


def parse_window(text: str, *, name: str = "window") -> timedelta:
    """`90m`, `24h`, `7d` or `2w` as a duration; raises `InvalidInput` naming `name` for anything else."""
    match = _WINDOW.match(text)
    if match is None:
        raise InvalidInput(
            f"{name} must be a whole number followed by m, h, d or w (like 90m, 24h, 7d), not {text!r}",
            errors=[{"location": f"query.{name}", "message": "expected a duration such as 90m, 24h or 7d"}],
        )
    window = timedelta(seconds=int(match.group(1)) * _UNIT_SECONDS[match.group(2)])
    if not timedelta(0) < window <= MAX_WINDOW:
        raise InvalidInput(
            f"{name} must be more than 0 and at most {MAX_WINDOW.days} days, not {text!r}",
            errors=[{"location": f"query.{name}", "message": f"between 1m and {MAX_WINDOW.days}d"}],
        )
    return window


# --------------------------------------------------------------------------------------------- window figures


class Figures(BaseModel):
    """Counts and durations for a set of pipelines created in the window."""

    total: int = 0
    by_status: dict[str, int] = {}
    completed: int = 0
    """success + failed + error + timed_out: canceled pipelines are not counted."""
    succeeded: int = 0
    success_rate: float | None = None
    """succeeded / completed; None when nothing completed."""
    average_duration_ms: float | None = None
    median_duration_ms: float | None = None
    """Of completed pipelines that have a duration (those that started); the mean of the middle two when even."""


class FailingStep(BaseModel):
    step_name: str
    failures: int
    """Steps of this name that ended failed, error or timed_out (after their retries)."""
    last_failed_at: datetime | None
    recent_errors: list[str]
    """The step's most recent distinct error messages, newest first (each cut to 500 characters)."""


class StuckPipeline(BaseModel):
    id: uuid.UUID
    project_id: uuid.UUID
    pipeline_type: str
    status: str
    branch_name: str | None
    commit_sha: str | None
    since: datetime
    """When it started (`running`) or was requested (`pending`, `queued`)."""
    age_seconds: float


class Metrics(BaseModel):
    """The pipeline figures of one window (and the pipelines stuck now, whenever they were created)."""

    since: datetime
    until: datetime
    project_id: uuid.UUID | None
    overall: Figures
    by_type: dict[str, Figures]
    failing_steps: list[FailingStep]
    stuck: list[StuckPipeline]
    stuck_running_after_seconds: float
    stuck_waiting_after_seconds: float


def _in_window(since: datetime, project_id: uuid.UUID | None, dialect: str) -> ColumnElement[bool]:
    """Pipelines requested at or after `since`, read through `ix_ci_cd_pipelines_project_id_created_at`.

    Without a project the condition still names every project (always true: the column is a non-null foreign key),
    so that both databases walk that index once per project instead of scanning the whole table. PostgreSQL does
    so for `= ANY(ARRAY(...))` (measured: 4 ms instead of 100 ms for a day of 400,000 pipelines); for `IN
    (SELECT ...)` it hash-joins over a sequential scan. SQLite does so for `IN (SELECT ...)`.
    """
    if project_id is not None:
        return and_(Pipeline.project_id == project_id, Pipeline.created_at >= since)
    projects = select(Project.id).scalar_subquery()
    every_project = (
        Pipeline.project_id == any_(func.array(projects))
        if dialect == "postgresql"
        else Pipeline.project_id.in_(projects)
    )
    return and_(every_project, Pipeline.created_at >= since)


async def pipeline_metrics(
    session: AsyncSession,
    *,
    since: datetime,
    project_id: uuid.UUID | None = None,
    now: datetime | None = None,
    top: int = TOP_FAILING_STEPS,
    stuck_running_after: timedelta = STUCK_RUNNING_AFTER,
    stuck_waiting_after: timedelta = STUCK_WAITING_AFTER,
) -> Metrics:
    """The figures of pipelines created since `since` (of one project, or all), computed in SQL.

    Nothing loads more than `top` failing steps (with a few messages each), one median row per type, and at most
    `STUCK_LIMIT` stuck pipelines, however large the window.
    """
    now = as_utc(now or utcnow())
    since = as_utc(since)
    window = _in_window(since, project_id, session.get_bind().dialect.name)
    by_type: dict[str, Figures] = {}
    overall = Figures()
    duration_sums: dict[str | None, list[int]] = {}  # type (None: all) -> [sum, count] of completed durations
    rows = await session.execute(
        select(
            Pipeline.pipeline_type,
            Pipeline.status,
            func.count(),
            func.count(Pipeline.duration_ms),
            func.coalesce(func.sum(Pipeline.duration_ms), 0),
        )
        .where(window)
        .group_by(Pipeline.pipeline_type, Pipeline.status)
    )
    for pipeline_type, status, count, timed, total_ms in rows.all():
        for key, figures in (
            (pipeline_type, by_type.setdefault(pipeline_type, Figures(by_status={}))),
            (None, overall),
        ):
            figures.total += count
            figures.by_status[status] = figures.by_status.get(status, 0) + count
            if status in COMPLETED:
                figures.completed += count
                sums = duration_sums.setdefault(key, [0, 0])
                sums[0] += int(total_ms or 0)
                sums[1] += timed
            if status == PipelineStatus.SUCCESS:
                figures.succeeded += count
    medians = await _medians(session, window)
    for key, figures in (*by_type.items(), (None, overall)):
        if figures.completed:
            figures.success_rate = figures.succeeded / figures.completed
        summed_ms, durations = duration_sums.get(key, [0, 0])
        if durations:
            figures.average_duration_ms = summed_ms / durations
            figures.median_duration_ms = medians.get(key)
    return Metrics(
        since=since,
        until=now,
        project_id=project_id,
        overall=overall,
        by_type=dict(sorted(by_type.items())),
        failing_steps=await _failing_steps(session, window, top) if top > 0 else [],
        stuck=await _stuck(session, project_id, now, stuck_running_after, stuck_waiting_after),
        stuck_running_after_seconds=stuck_running_after.total_seconds(),
        stuck_waiting_after_seconds=stuck_waiting_after.total_seconds(),
    )


async def _medians(session: AsyncSession, window: ColumnElement[bool]) -> dict[str | None, float]:
    """Median completed duration per type (and overall, under None), computed in the database.

    PostgreSQL: `percentile_cont(0.5)` over grouping sets, one sort for both (0.4 s for 390,000 pipelines, against
    1 s for the window functions). SQLite has no percentile function: both databases support window functions, so
    there the durations are ranked in SQL and only the middle one or two rows per group come back.
    """
    completed = and_(window, Pipeline.status.in_(COMPLETED), Pipeline.duration_ms.is_not(None))
    medians: dict[str | None, float] = {}
    if session.get_bind().dialect.name == "postgresql":
        query = (
            select(
                Pipeline.pipeline_type,
                func.grouping(Pipeline.pipeline_type),
                func.percentile_cont(0.5).within_group(Pipeline.duration_ms),
            )
            .where(completed)
            .group_by(func.grouping_sets(tuple_(Pipeline.pipeline_type), tuple_()))
        )
        for pipeline_type, overall, median in (await session.execute(query)).all():
            if median is not None:
                medians[None if overall else pipeline_type] = float(median)
        return medians
    for by_type in (True, False):
        partition = [Pipeline.pipeline_type] if by_type else None
        ranked = (
            select(
                Pipeline.pipeline_type.label("pipeline_type"),
                Pipeline.duration_ms.label("duration_ms"),
                func.row_number().over(partition_by=partition, order_by=Pipeline.duration_ms).label("rank"),
                func.count().over(partition_by=partition).label("n"),
            )
            .where(completed)
            .subquery()
        )
        middle = ranked.c.rank.in_([(ranked.c.n + 1) // 2, (ranked.c.n + 2) // 2])
        if by_type:
            query = (
                select(ranked.c.pipeline_type, func.avg(ranked.c.duration_ms))
                .where(middle)
                .group_by(ranked.c.pipeline_type)
            )
            for pipeline_type, median in (await session.execute(query)).all():
                medians[pipeline_type] = float(median)
        else:
            median = await session.scalar(select(func.avg(ranked.c.duration_ms)).where(middle))
            if median is not None:
                medians[None] = float(median)
    return medians


async def _failing_steps(session: AsyncSession, window: ColumnElement[bool], top: int) -> list[FailingStep]:
    failed = and_(window, PipelineStep.status.in_([s.value for s in STEP_FAILURES]))
    joined = select().select_from(PipelineStep).join(Pipeline, Pipeline.id == PipelineStep.pipeline_id).where(failed)
    counted = (
        await session.execute(
            joined.add_columns(PipelineStep.step_name, func.count(), func.max(PipelineStep.finished_at))
            .group_by(PipelineStep.step_name)
            .order_by(func.count().desc(), func.max(PipelineStep.finished_at).desc(), PipelineStep.step_name)
            .limit(top)
        )
    ).all()
    if not counted:
        return []
    names = [name for name, _, _ in counted]
    # The newest distinct messages per step: group by message, rank the groups by when each was last seen.
    messages = (
        joined.add_columns(
            PipelineStep.step_name.label("step_name"),
            PipelineStep.error_message.label("message"),
            func.max(PipelineStep.finished_at).label("last_seen"),
        )
        .where(PipelineStep.step_name.in_(names), PipelineStep.error_message.is_not(None))
        .group_by(PipelineStep.step_name, PipelineStep.error_message)
        .subquery()
    )
    ranked = select(
        messages.c.step_name,
        messages.c.message,
        func.row_number()
        .over(
            partition_by=messages.c.step_name,
            order_by=(messages.c.last_seen.desc().nulls_last(), messages.c.message),
        )
        .label("rank"),
    ).subquery()
    recent: dict[str, list[str]] = {name: [] for name in names}
    for name, message, _ in (
        await session.execute(
            select(ranked).where(ranked.c.rank <= RECENT_ERRORS).order_by(ranked.c.step_name, ranked.c.rank)
        )
    ).all():
        recent[name].append(message[:ERROR_CHARS])
    return [
        FailingStep(
            step_name=name, failures=count, last_failed_at=as_utc(last) if last else None, recent_errors=recent[name]
        )
        for name, count, last in counted
    ]


async def _stuck(
    session: AsyncSession,
    project_id: uuid.UUID | None,
    now: datetime,
    running_after: timedelta,
    waiting_after: timedelta,
) -> list[StuckPipeline]:
    """Running too long (by `ix_ci_cd_pipelines_status_started_at`) or waiting too long for a worker."""
    found: list[StuckPipeline] = []
    for condition, since_column in (
        (_stuck_running(now - running_after), Pipeline.started_at),
        (_stuck_waiting(now - waiting_after), Pipeline.created_at),
    ):
        query = select(Pipeline).where(condition).order_by(since_column).limit(STUCK_LIMIT)
        if project_id is not None:
            query = query.where(Pipeline.project_id == project_id)
        for row in (await session.scalars(query)).all():
            since = as_utc(
                row.started_at if row.status == PipelineStatus.RUNNING and row.started_at else row.created_at
            )
            found.append(
                StuckPipeline(
                    id=row.id, project_id=row.project_id, pipeline_type=row.pipeline_type, status=row.status,
                    branch_name=row.branch_name, commit_sha=row.commit_sha, since=since,
                    age_seconds=(now - since).total_seconds(),
                )
            )  # fmt: skip
    found.sort(key=lambda stuck: stuck.since)
    return found[:STUCK_LIMIT]


def _stuck_running(cutoff: datetime) -> ColumnElement[bool]:
    return and_(Pipeline.status == PipelineStatus.RUNNING.value, Pipeline.started_at < cutoff)


def _stuck_waiting(cutoff: datetime) -> ColumnElement[bool]:
    return and_(Pipeline.status.in_(WAITING), Pipeline.created_at < cutoff)


# --------------------------------------------------------------------------------------------- Prometheus

PIPELINE_BUCKETS_SECONDS: tuple[float, ...] = (1, 5, 15, 30, 60, 120, 300, 600, 1200, 1800, 3600, 7200)
STEP_BUCKETS_SECONDS: tuple[float, ...] = (0.1, 0.5, 1, 5, 15, 30, 60, 120, 300, 600, 1800, 3600)
TOTALS_MAX_AGE = timedelta(seconds=30)
"""How long a collector reuses the all-time totals (two grouped scans) before reading them again: scrapes come
every 15 s or so, and a counter that lags by this much is still a counter."""


@dataclass(frozen=True)
class Durations:
    """One histogram's data: how many values, their sum, and the cumulative count at or below each bound."""

    count: int
    sum_seconds: float
    cumulative: tuple[int, ...]


@dataclass(frozen=True)
class Finished:
    """Finished rows of one (type, final status): how many, and the durations of those that have one."""

    count: int
    durations: Durations


@dataclass(frozen=True)
class Totals:
    """Finished pipelines and steps of all time, by (type, final status): the counters and histograms."""

    pipelines: dict[tuple[str, str], Finished] = field(default_factory=dict)
    steps: dict[tuple[str, str], Finished] = field(default_factory=dict)


@dataclass(frozen=True)
class Snapshot:
    """What a scrape exposes; everything is aggregated in SQL."""

    totals: Totals = field(default_factory=Totals)
    live: dict[str, int] = field(default_factory=dict)
    stuck: dict[str, int] = field(default_factory=dict)


async def finished_totals(session: AsyncSession) -> Totals:
    """Two grouped scans (finished pipelines, finished steps), with every histogram bucket counted in SQL.

    The cost grows with the tables (about 0.35 s for 400,000 pipelines and 1,200,000 steps on PostgreSQL), which is
    why `PipelineCollector` reuses the result for `totals_max_age`.
    """
    pipelines = await _finished(
        session, Pipeline.pipeline_type, Pipeline.status, Pipeline.duration_ms,
        [s.value for s in PIPELINE_TERMINAL], PIPELINE_BUCKETS_SECONDS,
    )  # fmt: skip
    steps = await _finished(
        session, PipelineStep.step_type, PipelineStep.status, PipelineStep.duration_ms,
        [s.value for s in STEP_TERMINAL], STEP_BUCKETS_SECONDS,
    )  # fmt: skip
    return Totals(pipelines, steps)


async def live_counts(
    session: AsyncSession,
    *,
    now: datetime | None = None,
    stuck_running_after: timedelta = STUCK_RUNNING_AFTER,
    stuck_waiting_after: timedelta = STUCK_WAITING_AFTER,
) -> tuple[dict[str, int], dict[str, int]]:
    """Pipelines not finished, and those of them stuck, by status (every live status present, zero or not).

    Both read `ix_ci_cd_pipelines_status_started_at` over live rows only, so they stay cheap however large the table.
    """
    now = as_utc(now or utcnow())
    live = await session.execute(
        select(Pipeline.status, func.count()).where(Pipeline.status.in_(LIVE)).group_by(Pipeline.status)
    )
    stuck = await session.execute(
        select(Pipeline.status, func.count())
        .where(or_(_stuck_running(now - stuck_running_after), _stuck_waiting(now - stuck_waiting_after)))
        .group_by(Pipeline.status)
    )
    zero = dict.fromkeys(LIVE, 0)
    return zero | {s: n for s, n in live.all()}, zero | {s: n for s, n in stuck.all()}


async def _finished(
    session: AsyncSession,
    kind: Any,
    status: Any,
    duration_ms: Any,
    final: Sequence[str],
    bounds: Sequence[float],
) -> dict[tuple[str, str], Finished]:
    buckets = [func.sum(case((duration_ms <= round(bound * 1000), 1), else_=0)) for bound in bounds]
    query = (
        select(kind, status, func.count(), func.count(duration_ms), func.coalesce(func.sum(duration_ms), 0), *buckets)
        .where(status.in_(final))
        .group_by(kind, status)
    )
    found: dict[tuple[str, str], Finished] = {}
    for row in (await session.execute(query)).all():
        kind_value, status_value, count, timed, total_ms, *cumulative = row
        durations = Durations(timed, int(total_ms) / 1000, tuple(int(c or 0) for c in cumulative))
        found[(kind_value, status_value)] = Finished(count, durations)
    return found


class PipelineCollector:
    """A `prometheus_client` collector over the last `refresh`ed snapshot.

    Several processes (API, workers) write the database, so the figures come from it at scrape time, not from
    in-process counters (any process answers with the same numbers, give or take `totals_max_age`). Labels are
    bounded vocabularies only (pipeline type, step type, status): no project, branch or error text, so the endpoint
    can be scraped without credentials.
    """

    def __init__(
        self,
        *,
        stuck_running_after: timedelta = STUCK_RUNNING_AFTER,
        stuck_waiting_after: timedelta = STUCK_WAITING_AFTER,
        totals_max_age: timedelta = TOTALS_MAX_AGE,
    ) -> None:
        self.stuck_running_after = stuck_running_after
        self.stuck_waiting_after = stuck_waiting_after
        self.totals_max_age = totals_max_age
        self.snapshot = Snapshot()
        self._totals: Totals | None = None
        self._totals_read_at = 0.0

    async def refresh(self, session: AsyncSession, *, now: datetime | None = None) -> None:
        """Read the figures again; call it right before generating the exposition (no await in between).

        The live and stuck gauges are read on every call; the all-time totals when older than `totals_max_age`.
        """
        totals = self._totals
        if totals is None or time.monotonic() - self._totals_read_at >= self.totals_max_age.total_seconds():
            totals = self._totals = await finished_totals(session)
            self._totals_read_at = time.monotonic()
        live, stuck = await live_counts(
            session, now=now, stuck_running_after=self.stuck_running_after, stuck_waiting_after=self.stuck_waiting_after
        )
        self.snapshot = Snapshot(totals, live, stuck)

    def describe(self) -> Iterable[Metric]:
        """The families without samples, so a registry knows the names without querying anything."""
        return self._families(Snapshot())

    def collect(self) -> Iterable[Metric]:
        return self._families(self.snapshot)

    def _families(self, snapshot: Snapshot) -> list[Metric]:
        pipelines = CounterMetricFamily(
            "taskmaster_pipelines", "Finished pipelines by type and final status.", labels=["type", "status"]
        )
        pipeline_seconds = HistogramMetricFamily(
            "taskmaster_pipeline_duration_seconds",
            "Duration of finished pipelines that started, by type and final status.",
            labels=["type", "status"],
        )
        _fill(pipelines, pipeline_seconds, snapshot.totals.pipelines, PIPELINE_BUCKETS_SECONDS)
        steps = CounterMetricFamily(
            "taskmaster_pipeline_steps", "Finished pipeline steps by step type and final status.",
            labels=["step_type", "status"],
        )  # fmt: skip
        step_seconds = HistogramMetricFamily(
            "taskmaster_pipeline_step_duration_seconds",
            "Duration of finished steps (all attempts, backoff included), by step type and final status.",
            labels=["step_type", "status"],
        )
        _fill(steps, step_seconds, snapshot.totals.steps, STEP_BUCKETS_SECONDS)
        live = GaugeMetricFamily("taskmaster_pipelines_live", "Pipelines not finished, by status.", labels=["status"])
        for status, count in sorted(snapshot.live.items()):
            live.add_metric([status], count)
        stuck = GaugeMetricFamily(
            "taskmaster_pipelines_stuck",
            f"Pipelines running longer than {self.stuck_running_after.total_seconds():g} s, or pending/queued "
            f"longer than {self.stuck_waiting_after.total_seconds():g} s.",
            labels=["status"],
        )
        for status, count in sorted(snapshot.stuck.items()):
            stuck.add_metric([status], count)
        return [pipelines, pipeline_seconds, steps, step_seconds, live, stuck]


def _fill(
    counter: CounterMetricFamily,
    histogram: HistogramMetricFamily,
    rows: dict[tuple[str, str], Finished],
    bounds: Sequence[float],
) -> None:
    for (kind, status), finished in sorted(rows.items()):
        counter.add_metric([kind, status], finished.count)
        durations = finished.durations
        buckets = [(_bound(b), float(c)) for b, c in zip(bounds, durations.cumulative, strict=True)]
        buckets.append(("+Inf", float(durations.count)))
        histogram.add_metric([kind, status], buckets, durations.sum_seconds)


def _bound(seconds: float) -> str:
    """The `le` label as prometheus_client's own histograms write it (`1.0`, `0.5`) for bounds of this size."""
    return repr(float(seconds))
