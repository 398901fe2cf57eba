"""From a pull request webhook to a finished pipeline: the in-process worker plans and runs what was requested."""

from __future__ import annotations

import asyncio
import copy
import json
from pathlib import Path

import httpx
from sqlalchemy import select

from taskmaster.app import create_app
from taskmaster.config import Settings
from taskmaster.config.settings import WebhookSettings, WorkspaceSettings
from taskmaster.db import migrate
from taskmaster.db.models import Pipeline, PipelineStep
from taskmaster.db.session import Database
from taskmaster.projects import service as projects
from taskmaster.projects.schemas import ProjectCreate
from taskmaster.secrets import SecretBox
from tests.api.test_webhooks import SECRET, github_headers
from tests.forges.fixtures import payload
from tests.pipelines.conftest import make_pipeline_repo
from tests.support import live_server

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
