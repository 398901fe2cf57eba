"""Costs summed per project and purpose since a time, per pipeline in its detail, and as Prometheus counters."""

from __future__ import annotations

from datetime import timedelta

import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from taskmaster.core.clock import utcnow
from taskmaster.costs.metrics import AiCallCollector
from taskmaster.costs.service import CallRecord, record_call, report
from taskmaster.db.session import Database
from taskmaster.pipelines import queries
from taskmaster.pipelines.schemas import PipelineOut
from tests.costs.seeding import PRICES, seed_calls


async def test_a_report_sums_per_project_and_purpose_costliest_first_since_a_time(db: Database) -> None:
    calls = await seed_calls(db)
    async with db.session() as session:
        day = await report(session, since=utcnow() - timedelta(hours=24))
        ever = await report(session)
        beta = await report(session, project_id=calls.beta)
    assert [(r.project, r.purpose, r.calls, r.input_tokens, r.cost_usd, r.unpriced_calls) for r in day.rows] == [
        ("alpha", "review", 2, 1_001_000, 3.5045, 0),
        ("alpha", "prd.parse", 1, 40_000, 0.0, 0),
        ("beta", "codegen", 1, 500, 0.0, 1),
    ]
    assert [(p.project, p.calls, p.cost_usd) for p in day.projects] == [("alpha", 3, 3.5045), ("beta", 1, 0.0)]
    assert (day.total.calls, day.total.input_tokens, day.total.output_tokens) == (4, 1_041_500, 108_250)
    assert (day.total.cost_usd, day.total.unpriced_calls) == (3.5045, 1)
    # Without a time, the call of two days ago counts too.
    assert ever.total.calls == 5 and ever.total.cost_usd == pytest.approx(4.5045)
    assert [(r.project, r.purpose) for r in beta.rows] == [("beta", "codegen")] and beta.total.calls == 1


async def test_a_pipelines_detail_carries_its_calls_tokens_and_cost(db: Database) -> None:
    calls = await seed_calls(db)
    async with db.session() as session:
        out = PipelineOut.of_detail(await queries.get_detail(session, calls.pipeline))
    assert out.ai.model_dump() == {
        "calls": 2, "input_tokens": 1_001_000, "output_tokens": 100_200, "cost_usd": 3.5045, "unpriced_calls": 0,
    }  # fmt: skip


async def test_prometheus_counters_come_from_the_table_and_are_reread_after_their_max_age(db: Database) -> None:
    calls = await seed_calls(db)
    collector = AiCallCollector(max_age=timedelta(hours=1))
    registry = CollectorRegistry(auto_describe=False)
    registry.register(collector)
    async with db.session() as session:
        await collector.refresh(session)
    async with db.transaction() as session:
        await record_call(session, CallRecord(calls.beta, "codegen", "agentapi:custom", "m", 1, 1), prices=PRICES)

    def samples() -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
        text = generate_latest(registry).decode()
        return {
            (s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text)
            for s in family.samples
            if not s.name.endswith("_created")
        }

    first = samples()
    assert first[("taskmaster_ai_tokens_total", (("direction", "input"), ("provider", "openai"),
                                                  ("purpose", "review")))] == 1_001_000  # fmt: skip
    assert first[("taskmaster_ai_cost_usd_total", (("provider", "openai"), ("purpose", "review")))] == 3.5045
    assert first[("taskmaster_ai_calls_total", (("provider", "agentapi:custom"), ("purpose", "codegen")))] == 1
    async with db.session() as session:
        await collector.refresh(session)  # within max_age: the same snapshot
    assert samples() == first
    collector.max_age = timedelta(0)
    async with db.session() as session:
        await collector.refresh(session)
    assert samples()[("taskmaster_ai_calls_total", (("provider", "agentapi:custom"), ("purpose", "codegen")))] == 2
