"""Tokens and cost of AI calls through the HTTP doors: /api/metrics/costs (per project and purpose, since a time,
confined for a project-limited credential), the pipeline detail's `ai`, and the Prometheus counters of /metrics."""

from __future__ import annotations

from datetime import timedelta

import pytest
from prometheus_client.parser import text_string_to_metric_families

from taskmaster.auth import service as auth_service
from taskmaster.auth.schemas import Role, TokenSpec
from taskmaster.core.clock import utcnow
from taskmaster.db.session import Database
from tests.api.conftest import Api
from tests.costs.seeding import Calls, seed_calls


@pytest.fixture
async def calls(api: Api) -> Calls:
    db = Database.from_settings(api.settings)
    try:
        return await seed_calls(db)
    finally:
        await db.dispose()


def test_costs_per_project_and_purpose_for_a_window_a_time_or_everything(api: Api, calls: Calls) -> None:
    with api.client(Role.viewer) as http:
        day = http.get("/api/metrics/costs", params={"window": "24h"})
        ever = http.get("/api/metrics/costs")
        since = (utcnow() - timedelta(days=3)).isoformat()
        from_then = http.get("/api/metrics/costs", params={"since": since, "project": "alpha"})
        naive = http.get("/api/metrics/costs", params={"since": "2026-01-01T00:00:00"})
        bad = http.get("/api/metrics/costs", params={"window": "soon"})
        nowhere = http.get("/api/metrics/costs", params={"project": "nowhere"})
    assert day.status_code == 200, day.text
    body = day.json()
    assert [(r["project"], r["purpose"], r["calls"], r["cost_usd"]) for r in body["rows"]] == [
        ("alpha", "review", 2, 3.5045), ("alpha", "prd.parse", 1, 0.0), ("beta", "codegen", 1, 0.0),
    ]  # fmt: skip
    assert body["total"] == {
        "calls": 4, "input_tokens": 1_041_500, "output_tokens": 108_250, "cost_usd": 3.5045, "unpriced_calls": 1,
    }  # fmt: skip
    assert ever.json()["total"]["calls"] == 5 and ever.json()["since"] is None
    assert [p["project"] for p in from_then.json()["projects"]] == ["alpha"]
    assert from_then.json()["total"]["cost_usd"] == pytest.approx(4.5045)
    assert naive.status_code == 422 and "time zone" in naive.json()["detail"]
    assert bad.status_code == 422 and nowhere.status_code == 404


async def test_a_project_limited_credential_sees_its_projects_costs_only(api: Api, calls: Calls) -> None:
    db = Database.from_settings(api.settings)
    try:
        async with db.transaction() as session:
            created = await auth_service.create_token(
                session, spec=TokenSpec(name="beta-only", role=Role.viewer, project_id=calls.beta)
            )
    finally:
        await db.dispose()
    with api.client(Authorization=f"Bearer {created.token}") as http:
        own = http.get("/api/metrics/costs")
        other = http.get("/api/metrics/costs", params={"project": "alpha"})
    assert [(r["project"], r["purpose"]) for r in own.json()["rows"]] == [("beta", "codegen")]
    assert other.status_code == 403
    with api.client() as anonymous:
        assert anonymous.get("/api/metrics/costs").status_code == 401


def test_the_pipeline_detail_and_prometheus_count_the_calls(api: Api, calls: Calls) -> None:
    with api.client(Role.viewer) as http:
        detail = http.get(f"/api/pipelines/{calls.pipeline}")
    assert detail.status_code == 200, detail.text
    assert detail.json()["ai"] == {
        "calls": 2, "input_tokens": 1_001_000, "output_tokens": 100_200, "cost_usd": 3.5045, "unpriced_calls": 0,
    }  # fmt: skip
    with api.client() as http:
        scraped = http.get("/metrics")
    found = {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(scraped.text)
        for sample in family.samples
    }
    assert found[("taskmaster_ai_cost_usd_total", (("provider", "openai"), ("purpose", "review")))] == 3.5045
    assert found[("taskmaster_ai_calls_total", (("provider", "codegen"), ("purpose", "prd.parse")))] == 1
    output = (("direction", "output"), ("provider", "ollama"), ("purpose", "prd.parse"))
    assert found[("taskmaster_ai_tokens_total", output)] == 8_000
    assert not any("alpha" in str(labels) for _, labels in found)  # no project names as labels
