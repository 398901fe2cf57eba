"""GET /api/metrics/pipelines (Viewer) and GET /metrics (Prometheus, no credentials) on a live server."""

from __future__ import annotations

from datetime import timedelta

import pytest
from prometheus_client.parser import text_string_to_metric_families

from taskmaster.auth import service as auth_service
from taskmaster.auth.schemas import Role, TokenSpec
from taskmaster.db.models import Pipeline
from taskmaster.db.session import Database
from tests.api.conftest import Api
from tests.pipelines.test_metrics import ALL_VALIDATION, ALPHA_VALIDATION, PUSH, Seeded, seed


@pytest.fixture
async def seeded(api: Api) -> Seeded:
    db = Database.from_settings(api.settings)
    try:
        return await seed(db)
    finally:
        await db.dispose()


def test_pipeline_figures_come_as_json_for_the_window_and_project_asked(api: Api, seeded: Seeded) -> None:
    with api.client(Role.viewer) as http:
        everything = http.get("/api/metrics/pipelines")
        alpha = http.get("/api/metrics/pipelines", params={"window": "24h", "project": "alpha", "top": 1})
        recent = http.get("/api/metrics/pipelines", params={"window": "90m"})
        week = http.get("/api/metrics/pipelines", params={"window": "7d"})
    assert everything.status_code == 200, everything.text
    body = everything.json()
    assert body["by_type"] == {"push": PUSH, "validation": ALL_VALIDATION}
    assert body["overall"]["success_rate"] == 5 / 8 and body["overall"]["median_duration_ms"] == 4000.0
    assert body["project_id"] is None
    assert [(s["step_name"], s["failures"], s["recent_errors"]) for s in body["failing_steps"]] == [
        ("unit-tests", 3, ["assertion failed: 1 != 2", "step timed out after 600 s"]),
        ("lint", 2, ["E501 line too long", "ruff: command not found"]),
    ]
    assert [(p["id"], p["status"]) for p in body["stuck"]] == [
        (str(seeded.ids["b2"]), "running"),
        (str(seeded.ids["r1"]), "running"),
        (str(seeded.ids["q1"]), "pending"),
    ]
    assert 3 * 3600 <= body["stuck"][0]["age_seconds"] < 3 * 3600 + 120

    assert alpha.status_code == 200, alpha.text
    assert alpha.json()["project_id"] == str(seeded.alpha)
    assert alpha.json()["by_type"]["validation"] == ALPHA_VALIDATION
    assert [s["step_name"] for s in alpha.json()["failing_steps"]] == ["lint"]
    assert [p["id"] for p in alpha.json()["stuck"]] == [str(seeded.ids["r1"]), str(seeded.ids["q1"])]
    assert recent.json()["overall"]["total"] == 5
    # A week reaches v6 (30 h ago, 100 s, success).
    assert week.json()["by_type"]["validation"]["total"] == 12
    assert week.json()["by_type"]["validation"]["succeeded"] == 4


def test_bad_window_unknown_project_and_missing_credentials_are_refused(api: Api) -> None:
    with api.client(Role.viewer) as http:
        soon = http.get("/api/metrics/pipelines", params={"window": "soon"})
        nowhere = http.get("/api/metrics/pipelines", params={"project": "nowhere"})
    assert soon.status_code == 422
    assert soon.headers["content-type"] == "application/problem+json"
    assert (
        soon.json()["detail"]
        == "window must be a whole number followed by m, h, d or w (like 90m, 24h, 7d), not 'soon'"
    )
    assert soon.json()["errors"][0]["location"] == "query.window"
    assert nowhere.status_code == 404 and "nowhere" in nowhere.json()["detail"]
    with api.client() as anonymous:
        assert anonymous.get("/api/metrics/pipelines").status_code == 401


async def test_a_credential_limited_to_a_project_sees_only_that_project(api: Api, seeded: Seeded) -> None:
    db = Database.from_settings(api.settings)
    try:
        async with db.transaction() as session:
            created = await auth_service.create_token(
                session, spec=TokenSpec(name="beta-only", role=Role.viewer, project_id=seeded.beta)
            )
    finally:
        await db.dispose()
    with api.client(Authorization=f"Bearer {created.token}") as http:
        own = http.get("/api/projects/beta/metrics/pipelines", params={"window": "7d"})
        other = http.get("/api/projects/alpha/metrics/pipelines")
        named = http.get("/api/metrics/pipelines", params={"project": "beta", "window": "7d"})
        unnamed = http.get("/api/metrics/pipelines", params={"window": "7d"})
        elsewhere = http.get("/api/metrics/pipelines", params={"project": "alpha"})
    assert own.status_code == 200, own.text
    assert own.json()["project_id"] == str(seeded.beta)
    assert own.json()["overall"]["by_status"] == {"success": 1, "running": 1}
    assert [p["id"] for p in own.json()["stuck"]] == [str(seeded.ids["b2"])]
    assert other.status_code == 403
    # Without a project in the path, the figures are its project's whether it names it or not.
    assert named.status_code == unnamed.status_code == 200, unnamed.text
    for body in (named.json(), unnamed.json()):
        assert body["project_id"] == str(seeded.beta)
        assert body["by_type"] == own.json()["by_type"] and body["overall"] == own.json()["overall"]
        assert [p["id"] for p in body["stuck"]] == [str(seeded.ids["b2"])]
    assert elsewhere.status_code == 403 and elsewhere.headers["content-type"] == "application/problem+json"
    assert elsewhere.json()["detail"] == f"the credential is limited to project {seeded.beta}"


def test_prometheus_metrics_are_read_from_the_database_without_credentials(api: Api, seeded: Seeded) -> None:
    with api.client() as http:
        response = http.get("/metrics")
        openmetrics = http.get("/metrics", headers={"Accept": "application/openmetrics-text; version=1.0.0"})
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain; version=0.0.4")
    found = {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    }
    assert found[("taskmaster_pipelines_total", (("status", "success"), ("type", "validation")))] == 4
    assert found[("taskmaster_pipelines_total", (("status", "timed_out"), ("type", "push")))] == 1
    push_success = (("status", "success"), ("type", "push"))
    assert found[("taskmaster_pipeline_duration_seconds_sum", push_success)] == 6.0
    assert found[("taskmaster_pipeline_duration_seconds_bucket", (("le", "1.0"), *push_success))] == 0
    assert found[("taskmaster_pipeline_duration_seconds_bucket", (("le", "5.0"), *push_success))] == 2
    assert found[("taskmaster_pipeline_steps_total", (("status", "failed"), ("step_type", "run")))] == 5
    assert found[("taskmaster_pipelines_live", (("status", "running"),))] == 3
    assert found[("taskmaster_pipelines_stuck", (("status", "pending"),))] == 1
    # Only bounded vocabularies as labels: no project names, branches or error text.
    labels = {value for _, pairs in found for _, value in pairs}
    assert not labels & {"alpha", "beta", "br-b2", "assertion failed: 1 != 2"}
    assert openmetrics.status_code == 200
    assert openmetrics.headers["content-type"].startswith("application/openmetrics-text")
    assert openmetrics.text.rstrip().endswith("# EOF")


async def test_each_scrape_reads_the_current_figures(api: Api, seeded: Seeded) -> None:

    def running() -> float:
        with api.client() as http:
            text = http.get("/metrics").text
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                if sample.name == "taskmaster_pipelines_live" and sample.labels == {"status": "running"}:
                    return sample.value
        raise AssertionError("no running gauge")

    assert running() == 3

    async def add_running() -> None:
        # Written by another "process": its own connection, as a worker would.
        db = Database.from_settings(api.settings)
        try:
            async with db.transaction() as session:
                session.add(
                    Pipeline(
                        project_id=seeded.alpha, pipeline_type="push", status="running",
                        started_at=seeded.now - timedelta(minutes=1), trigger_key="later",
                    )
                )  # fmt: skip
        finally:
            await db.dispose()

    await add_running()
    assert running() == 4
