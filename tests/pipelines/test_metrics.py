"""Pipeline figures from rows written directly: success rates, durations, failing steps, stuck pipelines, and the
Prometheus collector's samples, on SQLite and PostgreSQL."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from taskmaster.core.clock import utcnow
from taskmaster.core.errors import InvalidInput
from taskmaster.db.models import Pipeline, PipelineStep, Project
from taskmaster.db.session import Database
from taskmaster.pipelines import metrics

H = timedelta(hours=1)
M = timedelta(minutes=1)


@dataclass
class Seeded:
    """What `seed` wrote: the moment it measured from and the ids the assertions name."""

    now: datetime
    alpha: uuid.UUID
    beta: uuid.UUID
    ids: dict[str, uuid.UUID] = field(default_factory=dict)


async def seed(db: Database, now: datetime | None = None) -> Seeded:
    """Two projects, pipelines of known status, duration and age (inside and outside a 24 h window), and steps.

    In the last 24 h, project alpha has validation: success 1 s and 3 s, failed 5 s, canceled 0.2 s, error (never
    started), running since 2 h (stuck) and 10 min, pending for 45 min (stuck), queued for 5 min; push: success 2 s
    and 4 s, timed_out 10 s. Project beta has validation success 7 s, and a pipeline created 30 h ago that has been
    running for 3 h (stuck). Alpha's validation success of 100 s and failed steps 30 h ago are outside the window.
    """
    now = now or utcnow()
    seeded = Seeded(now=now, alpha=uuid.uuid4(), beta=uuid.uuid4())
    async with db.transaction() as session:
        session.add_all(
            [
                Project(id=seeded.alpha, name="alpha", repository="/srv/alpha", forge="local"),
                Project(id=seeded.beta, name="beta", repository="/srv/beta", forge="local"),
            ]
        )
        await session.flush()

        def pipeline(
            key: str,
            project: uuid.UUID,
            kind: str,
            status: str,
            created_ago: timedelta,
            duration_ms: int | None = None,
            started_ago: timedelta | None = None,
        ) -> uuid.UUID:
            created = now - created_ago
            started = now - started_ago if started_ago is not None else None
            if duration_ms is not None and started is None:
                started = created + M
            finished = started + timedelta(milliseconds=duration_ms) if started and duration_ms is not None else None
            row = Pipeline(
                id=uuid.uuid4(), project_id=project, pipeline_type=kind, status=status, created_at=created,
                started_at=started, finished_at=finished, duration_ms=duration_ms, branch_name=f"br-{key}",
                commit_sha=f"{len(seeded.ids):040x}", trigger_key=f"{key}",
            )  # fmt: skip
            session.add(row)
            seeded.ids[key] = row.id
            return row.id

        a, b = seeded.alpha, seeded.beta
        v1 = pipeline("v1", a, "validation", "success", 2 * H, 1000)
        pipeline("v2", a, "validation", "success", 3 * H, 3000)
        v3 = pipeline("v3", a, "validation", "failed", 4 * H, 5000)
        pipeline("v4", a, "validation", "canceled", 5 * H, 200)
        pipeline("v5", a, "validation", "error", 1 * H)
        v6 = pipeline("v6", a, "validation", "success", 30 * H, 100_000)
        r1 = pipeline("r1", a, "validation", "running", 2 * H + 10 * M, started_ago=2 * H)
        pipeline("r2", a, "validation", "running", 11 * M, started_ago=10 * M)
        pipeline("q1", a, "validation", "pending", 45 * M)
        pipeline("q2", a, "validation", "queued", 5 * M)
        pipeline("p1", a, "push", "success", 6 * H, 2000)
        p2 = pipeline("p2", a, "push", "timed_out", 7 * H, 10_000)
        pipeline("p3", a, "push", "success", 8 * H, 4000)
        b1 = pipeline("b1", b, "validation", "success", 1 * H, 7000)
        pipeline("b2", b, "validation", "running", 30 * H, started_ago=3 * H)
        await session.flush()

        def step(
            pipeline_id: uuid.UUID,
            name: str,
            status: str,
            finished_ago: timedelta | None = None,
            error: str | None = None,
            duration_ms: int | None = None,
            step_type: str = "run",
        ) -> None:
            finished = now - finished_ago if finished_ago is not None else None
            session.add(
                PipelineStep(
                    pipeline_id=pipeline_id, step_name=name, step_type=step_type, status=status,
                    finished_at=finished, error_message=error, duration_ms=duration_ms,
                )
            )  # fmt: skip

        step(v1, "build", "success", 2 * H, duration_ms=400)
        step(v1, "unit-tests", "success", 2 * H, duration_ms=600)
        step(v3, "unit-tests", "failed", 4 * H, "assertion failed: 1 != 2", 4500)
        step(v3, "lint", "error", 4 * H, "ruff: command not found", 50)
        step(v3, "deploy", "skipped", 4 * H, "a need failed")
        step(p2, "unit-tests", "timed_out", 3 * H, "step timed out after 600 s", 10_000)
        step(r1, "lint", "failed", H + 30 * M, "E501 line too long", 2000)
        step(r1, "review", "running", step_type="ai_review")
        step(b1, "unit-tests", "failed", 1 * H, "assertion failed: 1 != 2", 3000)
        step(v6, "unit-tests", "failed", 30 * H, "old failure", 1000)
        step(v6, "lint", "failed", 30 * H, "old lint failure", 1000)
    return seeded


def figures_of(model: metrics.Figures) -> dict[str, Any]:
    return model.model_dump()


# The expected figures of `seed` over the last 24 h: validation and push for every project, validation in alpha.
ALL_VALIDATION = {
    "total": 10,
    "by_status": {"success": 3, "failed": 1, "canceled": 1, "error": 1, "running": 2, "pending": 1, "queued": 1},
    "completed": 5,
    "succeeded": 3,
    "success_rate": 0.6,
    "average_duration_ms": 4000.0,
    "median_duration_ms": 4000.0,
}
PUSH = {
    "total": 3,
    "by_status": {"success": 2, "timed_out": 1},
    "completed": 3,
    "succeeded": 2,
    "success_rate": 2 / 3,
    "average_duration_ms": 16000 / 3,
    "median_duration_ms": 4000.0,
}
ALPHA_VALIDATION = {
    "total": 9,
    "by_status": {"success": 2, "failed": 1, "canceled": 1, "error": 1, "running": 2, "pending": 1, "queued": 1},
    "completed": 4,
    "succeeded": 2,
    "success_rate": 0.5,
    "average_duration_ms": 3000.0,
    "median_duration_ms": 3000.0,
}


async def test_figures_over_a_window_count_success_rates_and_durations_by_type(db: Database) -> None:
    seeded = await seed(db)
    async with db.session() as session:
        found = await metrics.pipeline_metrics(session, since=seeded.now - 24 * H, now=seeded.now)
    assert found.since == seeded.now - 24 * H and found.project_id is None
    assert list(found.by_type) == ["push", "validation"]
    assert figures_of(found.by_type["validation"]) == ALL_VALIDATION
    assert figures_of(found.by_type["push"]) == PUSH
    # Durations of every completed pipeline: 1, 2, 3, 4, 5, 7, 10 s (the canceled 0.2 s is left out).
    assert figures_of(found.overall) == {
        "total": 13,
        "by_status": {
            "success": 5, "failed": 1, "canceled": 1, "error": 1, "timed_out": 1, "running": 2, "pending": 1,
            "queued": 1,
        },
        "completed": 8,
        "succeeded": 5,
        "success_rate": 5 / 8,
        "average_duration_ms": 32000 / 7,
        "median_duration_ms": 4000.0,
    }  # fmt: skip


async def test_one_project_has_its_own_figures_and_an_even_median_is_the_mean_of_the_middle_two(
    db: Database,
) -> None:
    seeded = await seed(db)
    async with db.session() as session:
        found = await metrics.pipeline_metrics(
            session, since=seeded.now - 24 * H, project_id=seeded.alpha, now=seeded.now
        )
    assert found.project_id == seeded.alpha
    assert figures_of(found.by_type["validation"]) == ALPHA_VALIDATION
    assert figures_of(found.by_type["push"]) == PUSH
    # 1, 2, 3, 4, 5, 10 s: the middle two are 3 and 4.
    assert found.overall.median_duration_ms == 3500.0
    assert found.overall.average_duration_ms == 25000 / 6
    assert found.overall.success_rate == 4 / 7


async def test_a_short_window_leaves_older_pipelines_out_and_an_empty_one_has_no_rates(db: Database) -> None:
    seeded = await seed(db)
    async with db.session() as session:
        recent = await metrics.pipeline_metrics(session, since=seeded.now - 90 * M, now=seeded.now)
        empty = await metrics.pipeline_metrics(session, since=seeded.now + H, now=seeded.now)
    # In the last 90 minutes: v5 (error), b1 (success 7 s), r2, q1, q2.
    assert figures_of(recent.overall) == {
        "total": 5,
        "by_status": {"error": 1, "success": 1, "running": 1, "pending": 1, "queued": 1},
        "completed": 2,
        "succeeded": 1,
        "success_rate": 0.5,
        "average_duration_ms": 7000.0,
        "median_duration_ms": 7000.0,
    }
    assert [s.step_name for s in recent.failing_steps] == ["unit-tests"]
    assert empty.by_type == {} and empty.failing_steps == []
    assert figures_of(empty.overall) == figures_of(metrics.Figures())
    assert len(empty.stuck) == 3  # stuck pipelines are reported whatever the window


async def test_most_common_failing_steps_come_with_their_latest_distinct_errors(db: Database) -> None:
    seeded = await seed(db)
    async with db.session() as session:
        everywhere = await metrics.pipeline_metrics(session, since=seeded.now - 24 * H, now=seeded.now)
        alpha = await metrics.pipeline_metrics(
            session, since=seeded.now - 24 * H, project_id=seeded.alpha, now=seeded.now
        )
        only_top = await metrics.pipeline_metrics(session, since=seeded.now - 24 * H, now=seeded.now, top=1)
    assert [s.model_dump() for s in everywhere.failing_steps] == [
        {
            "step_name": "unit-tests",
            "failures": 3,
            "last_failed_at": seeded.now - H,
            "recent_errors": ["assertion failed: 1 != 2", "step timed out after 600 s"],
        },
        {
            "step_name": "lint",
            "failures": 2,
            "last_failed_at": seeded.now - H - 30 * M,
            "recent_errors": ["E501 line too long", "ruff: command not found"],
        },
    ]
    # In alpha both fail twice; the one that failed last comes first.
    assert [(s.step_name, s.failures, s.recent_errors) for s in alpha.failing_steps] == [
        ("lint", 2, ["E501 line too long", "ruff: command not found"]),
        ("unit-tests", 2, ["step timed out after 600 s", "assertion failed: 1 != 2"]),
    ]
    assert [s.step_name for s in only_top.failing_steps] == ["unit-tests"]


async def test_stuck_pipelines_are_running_over_an_hour_or_waiting_over_half_an_hour(db: Database) -> None:
    seeded = await seed(db)
    async with db.session() as session:
        found = await metrics.pipeline_metrics(session, since=seeded.now - 24 * H, now=seeded.now)
        alpha = await metrics.pipeline_metrics(
            session, since=seeded.now - 24 * H, project_id=seeded.alpha, now=seeded.now
        )
        strict = await metrics.pipeline_metrics(
            session, since=seeded.now - 24 * H, now=seeded.now, stuck_running_after=5 * M, stuck_waiting_after=M
        )
    ids = seeded.ids
    assert [(p.id, p.status, p.since, p.age_seconds) for p in found.stuck] == [
        (ids["b2"], "running", seeded.now - 3 * H, 3 * 3600.0),
        (ids["r1"], "running", seeded.now - 2 * H, 2 * 3600.0),
        (ids["q1"], "pending", seeded.now - 45 * M, 45 * 60.0),
    ]
    assert found.stuck[0].project_id == seeded.beta and found.stuck[0].branch_name == "br-b2"
    assert found.stuck_running_after_seconds == 3600 and found.stuck_waiting_after_seconds == 1800
    assert [p.id for p in alpha.stuck] == [ids["r1"], ids["q1"]]
    assert [p.id for p in strict.stuck] == [ids["b2"], ids["r1"], ids["q1"], ids["r2"], ids["q2"]]


def test_a_window_is_minutes_hours_days_or_weeks_and_anything_else_is_refused_by_name() -> None:
    assert metrics.parse_window("90m") == timedelta(minutes=90)
    assert metrics.parse_window("24h") == timedelta(hours=24)
    assert metrics.parse_window("7d") == timedelta(days=7)
    assert metrics.parse_window("2w") == timedelta(days=14)
    for bad in ("soon", "", "24", "-1h", "1.5h", "0h", "400d"):
        with pytest.raises(InvalidInput) as caught:
            metrics.parse_window(bad)
        assert caught.value.detail.startswith("window must be") and repr(bad) in caught.value.detail
    with pytest.raises(InvalidInput, match=r"^--window must be"):
        metrics.parse_window("soon", name="--window")


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of an exposition, by name and sorted labels."""
    found = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            found[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return found


async def test_the_collector_exposes_all_time_counts_durations_and_live_and_stuck_gauges(db: Database) -> None:
    seeded = await seed(db)
    collector = metrics.PipelineCollector()
    registry = CollectorRegistry(auto_describe=False)
    registry.register(collector)
    async with db.session() as session:
        await collector.refresh(session, now=seeded.now)
    found = samples(generate_latest(registry).decode())

    def pipelines(kind: str, status: str) -> float:
        return found[("taskmaster_pipelines_total", (("status", status), ("type", kind)))]

    def pipeline_seconds(kind: str, status: str, suffix: str, le: str | None = None) -> float:
        labels = {"status": status, "type": kind} | ({"le": le} if le else {})
        return found[(f"taskmaster_pipeline_duration_seconds_{suffix}", tuple(sorted(labels.items())))]

    # All time, every project: v6 (100 s, 30 h ago) counts too; live pipelines are not counted as finished.
    assert pipelines("validation", "success") == 4 and pipelines("validation", "failed") == 1
    assert pipelines("validation", "canceled") == 1 and pipelines("validation", "error") == 1
    assert pipelines("push", "success") == 2 and pipelines("push", "timed_out") == 1
    assert not any(name == "taskmaster_pipelines_total" and ("status", "running") in labels for name, labels in found)
    # validation/success durations: 1, 3, 7, 100 s.
    assert [pipeline_seconds("validation", "success", "bucket", le) for le in ("1.0", "5.0", "15.0", "60.0", "120.0",
            "+Inf")] == [1, 2, 3, 3, 4, 4]  # fmt: skip
    assert pipeline_seconds("validation", "success", "sum") == 111.0
    assert pipeline_seconds("validation", "success", "count") == 4
    # An error before start has no duration: counted, but not in the histogram.
    assert pipeline_seconds("validation", "error", "count") == 0 and pipeline_seconds("validation", "error", "sum") == 0

    def steps(kind: str, status: str) -> float:
        return found[("taskmaster_pipeline_steps_total", (("status", status), ("step_type", kind)))]

    assert steps("run", "failed") == 5 and steps("run", "success") == 2 and steps("run", "error") == 1
    assert steps("run", "timed_out") == 1 and steps("run", "skipped") == 1
    assert ("taskmaster_pipeline_steps_total", (("status", "running"), ("step_type", "ai_review"))) not in found

    def step_seconds(suffix: str, **labels: str) -> float:
        key = tuple(sorted(({"status": "failed", "step_type": "run"} | labels).items()))
        return found[(f"taskmaster_pipeline_step_duration_seconds_{suffix}", key)]

    # failed run steps: 4.5, 2, 3, 1 and 1 s.
    assert step_seconds("sum") == 11.5 and step_seconds("count") == 5
    assert [step_seconds("bucket", le=le) for le in ("0.5", "1.0", "5.0", "+Inf")] == [0, 2, 5, 5]

    assert {status: found[("taskmaster_pipelines_live", (("status", status),))] for status in metrics.LIVE} == {
        "pending": 1,
        "queued": 1,
        "running": 3,
    }
    assert {status: found[("taskmaster_pipelines_stuck", (("status", status),))] for status in metrics.LIVE} == {
        "pending": 1,
        "queued": 0,
        "running": 2,
    }


async def test_an_empty_database_exposes_every_family_with_zero_gauges(db: Database) -> None:
    collector = metrics.PipelineCollector()
    registry = CollectorRegistry(auto_describe=False)
    registry.register(collector)
    async with db.session() as session:
        await collector.refresh(session)
    text = generate_latest(registry).decode()
    families = {family.name: family for family in text_string_to_metric_families(text)}
    assert set(families) == {
        "taskmaster_pipelines", "taskmaster_pipeline_duration_seconds", "taskmaster_pipeline_steps",
        "taskmaster_pipeline_step_duration_seconds", "taskmaster_pipelines_live", "taskmaster_pipelines_stuck",
    }  # fmt: skip
    assert families["taskmaster_pipelines"].samples == []
    assert {s.labels["status"]: s.value for s in families["taskmaster_pipelines_live"].samples} == {
        "pending": 0,
        "queued": 0,
        "running": 0,
    }


async def test_the_collector_reuses_its_totals_for_a_while_but_reads_the_gauges_every_time(db: Database) -> None:
    seeded = await seed(db)
    cached = metrics.PipelineCollector(totals_max_age=timedelta(hours=1))
    fresh = metrics.PipelineCollector(totals_max_age=timedelta(0))
    async with db.session() as session:
        await cached.refresh(session, now=seeded.now)
    async with db.transaction() as session:
        session.add_all(
            [
                Pipeline(project_id=seeded.alpha, pipeline_type="push", status="failed", duration_ms=500),
                Pipeline(project_id=seeded.alpha, pipeline_type="push", status="queued", trigger_key="new"),
            ]
        )
    async with db.session() as session:
        await cached.refresh(session, now=seeded.now)
        await fresh.refresh(session, now=seeded.now)
    assert ("push", "failed") not in cached.snapshot.totals.pipelines
    assert cached.snapshot.live == fresh.snapshot.live == {"pending": 1, "queued": 2, "running": 3}
    failed = fresh.snapshot.totals.pipelines[("push", "failed")]
    assert failed.count == 1 and failed.durations == metrics.Durations(1, 0.5, (1,) * 12)
