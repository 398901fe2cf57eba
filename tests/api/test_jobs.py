"""/api/jobs with the in-process worker: enqueued through HTTP, run durably, visible through HTTP."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from taskmaster.app import create_app
from taskmaster.auth.schemas import Role
from taskmaster.config import Settings
from tests.api.conftest import Api
from tests.support import live_server


@pytest.fixture
def api_with_worker(settings: Settings, migrated: dict[Role, str]) -> Iterator[Api]:
    fast = settings.model_copy(update={"worker": settings.worker.model_copy(update={"shutdown_grace_seconds": 0})})
    with live_server(create_app(fast, run_worker=True)) as url:
        yield Api(url=url, settings=fast, tokens=migrated)


def test_noop_job_runs_on_the_in_process_worker(api_with_worker: Api) -> None:
    with api_with_worker.client(Role.admin, **{"X-Request-ID": "job-req-1"}) as http:
        enqueued = http.post("/api/jobs/noop", json={"steps": 3, "step_seconds": 0})
        assert enqueued.status_code == 202, enqueued.text
        job_id = enqueued.json()["id"]
        deadline = time.monotonic() + 60
        while (job := http.get(f"/api/jobs/{job_id}").json())["status"] not in {"SUCCESS", "ERROR"}:
            assert time.monotonic() < deadline, job
            time.sleep(0.1)
        health = http.get("/health").json()
    assert job["status"] == "SUCCESS"
    assert job["result"]["steps"] == 3
    assert job["executor_id"].endswith(":in-process")
    assert health["workers"]["alive"] == 1
    assert health["workers"]["items"][0]["mode"] == "in-process"


def test_job_routes_check_roles_and_ids(api_with_worker: Api) -> None:
    with api_with_worker.client(Role.developer) as http:
        assert http.post("/api/jobs/noop", json={}).status_code == 403
        missing = http.get("/api/jobs/no-such-job")
        assert missing.status_code == 404
        assert "no job" in missing.json()["detail"]
    with api_with_worker.client(Role.admin) as http:
        bad = http.post("/api/jobs/noop", json={"steps": 0})
        assert bad.status_code == 422
        assert "body.steps" in bad.json()["detail"]
