"""From a pull request webhook to a finished pipeline: the in-process worker plans and runs what was requested."""

from __future__ import annotations

import asyncio
import copy
import json
import uuid
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import select, update

from taskmaster.app import create_app
from taskmaster.config import Settings
from taskmaster.config.settings import WebhookSettings, WorkspaceSettings
from taskmaster.core.clock import utcnow
from taskmaster.db import migrate
from taskmaster.db.models import Pipeline, PipelineStep
from taskmaster.db.session import Database
from taskmaster.projects import service as projects
from taskmaster.projects.schemas import ProjectCreate
from taskmaster.runtime import Runtime
from taskmaster.secrets import SecretBox
from taskmaster.worker.pipelines import PipelineLoop
from tests.api.test_webhooks import SECRET, github_headers
from tests.forges.fixtures import payload
from tests.support import eventually, live_server, make_pipeline_repo, processes_with, wait_for_process
from tests.support.pipelines import Harness, load

DEFINITION = """\
steps:
  greet: {run: "echo hello from the sandbox"}
  check: {run: "test -f README.md", needs: [greet]}
"""


async def test_a_pull_request_webhook_ends_in_a_pipeline_run_by_the_in_process_worker(
    settings: Settings, reachable_dir: Path
) -> None:
    repo = reachable_dir / "Codertocat" / "Hello-World"
    sha = make_pipeline_repo(repo, DEFINITION)
    configured = settings.model_copy(
        update={
            "workspace": WorkspaceSettings(root=reachable_dir / "workspaces", mirror_root=reachable_dir / "mirrors"),
            "webhooks": WebhookSettings(poll_seconds=0.2),
        }
    )
    db = Database.from_settings(configured)
    try:
        await migrate.upgrade(db)
        async with db.transaction() as session:
            spec = ProjectCreate(name="hello", repository=str(repo), forge="github", webhook_secret=SECRET)  # type: ignore[arg-type]
            await projects.create_project(session, spec=spec, box=SecretBox.from_settings(configured))
        event = copy.deepcopy(payload("github/pull_request/opened"))
        event["pull_request"]["head"]["sha"] = sha
        event["pull_request"]["head"]["ref"] = "main"
        body = json.dumps(event).encode()
        with live_server(create_app(configured, run_worker=True)) as url, httpx.Client(base_url=url) as http:
            answer = http.post("/webhooks/github", content=body, headers=github_headers(body, "pull_request"))
            assert answer.status_code == 202
            deadline = asyncio.get_running_loop().time() + 60
            while True:
                async with db.session() as session:
                    pipeline = await session.scalar(select(Pipeline))
                if pipeline is not None and pipeline.status in {"success", "failed", "error"}:
                    break
                assert asyncio.get_running_loop().time() < deadline, pipeline and pipeline.status
                await asyncio.sleep(0.2)
        async with db.session() as session:
            steps = {s.step_name: s.status for s in (await session.scalars(select(PipelineStep))).all()}
        assert (pipeline.status, pipeline.commit_sha, pipeline.pipeline_type) == ("success", sha, "validation")
        assert steps == {"greet": "success", "check": "success"}
        assert pipeline.duration_ms is not None and pipeline.finished_at is not None
    finally:
        await db.dispose()


def _loop_settings(settings: Settings, reachable_dir: Path) -> Settings:
    return settings.model_copy(
        update={
            "workspace": WorkspaceSettings(root=reachable_dir / "workspaces", mirror_root=reachable_dir / "mirrors"),
            "webhooks": WebhookSettings(poll_seconds=0.1),
            "worker": settings.worker.model_copy(update={"heartbeat_seconds": 0.2}),
        }
    )


async def _until_status(db: Database, pipeline_id: uuid.UUID, wanted: set[str], timeout: float = 60) -> Pipeline:
    async def reached() -> Pipeline | None:
        pipeline, _, _ = await load(db, pipeline_id)
        return pipeline if pipeline.status in wanted else None

    return await eventually(reached, timeout=timeout, what=f"pipeline {pipeline_id} in {sorted(wanted)}")


async def test_a_worker_restarted_under_its_name_resumes_its_pipeline_and_redoes_the_lost_attempt(
    harness_factory: Any, settings: Settings, reachable_dir: Path
) -> None:
    marker = f"marker-{uuid.uuid4().hex}"
    harness: Harness = await harness_factory(
        f"steps:\n  first: {{run: 'true'}}\n"
        f"  work: {{run: 'test $TASKMASTER_ATTEMPT = 2 || sleep 30; echo {marker} done', needs: [first]}}\n"
    )
    configured = _loop_settings(settings, reachable_dir)
    box = SecretBox.from_settings(configured)
    created = await harness.create()

    before = PipelineLoop(Runtime(configured, harness.db, box=box), worker_id="w1")
    before.start()
    await wait_for_process(marker, timeout=60)
    await before.stop()  # the process goes away mid-step: its steps stop, their attempts stay `running`
    stopped, _, attempts = await load(harness.db, created.id)
    left_running = [a.status for a in attempts["work"]]

    after = PipelineLoop(Runtime(configured, harness.db, box=box), worker_id="w1")
    after.start()
    try:
        finished = await _until_status(harness.db, created.id, {"success", "failed", "error"})
    finally:
        await after.stop()

    assert (stopped.status, stopped.worker_id, left_running) == ("running", "w1", ["running"])
    assert processes_with(marker) == []
    _, _, attempts = await load(harness.db, created.id)
    assert finished.status == "success"
    assert [a.status for a in attempts["first"]] == ["success"]
    assert [(a.status, a.failure_reason, a.error_message) for a in attempts["work"]] == [
        ("failed", "infra", "agent lost"),
        ("success", None, None),
    ]


async def test_the_loop_ends_a_stuck_pipeline_and_runs_a_pending_one(
    harness_factory: Any, settings: Settings, reachable_dir: Path
) -> None:
    harness: Harness = await harness_factory("steps:\n  only: {run: 'true'}\n")
    configured = _loop_settings(settings, reachable_dir)
    stuck = await harness.create()
    async with harness.db.transaction() as session:
        await session.execute(
            update(Pipeline)
            .where(Pipeline.id == stuck.id)
            .values(status="running", started_at=utcnow() - timedelta(hours=2), worker_id="hung-worker")
        )
    pending = await harness.create()

    loop = PipelineLoop(Runtime(configured, harness.db), worker_id="w1")
    loop.start()
    try:
        ran = await _until_status(harness.db, pending.id, {"success", "failed", "error"})
        ended = await _until_status(harness.db, stuck.id, {"timed_out"})
    finally:
        await loop.stop()

    assert (ran.status, ran.worker_id) == ("success", "w1")
    assert ended.failure_reason == "timeout" and ended.error_message is not None
    assert ended.error_message.startswith("stuck: running for more than 3600 s")
    assert ended.worker_id == "hung-worker"  # ended, not taken over
