"""`/taskmaster review` and `/taskmaster fix` in a pull request comment request workflow runs (`review`,
`recovery`) for the pull request's head, one live run per command and head, not pipelines of types that do not exist."""

from __future__ import annotations

import copy
import json
import uuid
from typing import Any

from sqlalchemy import select

from taskmaster.config import Settings
from taskmaster.db.models import Pipeline, Project, WebhookDelivery, WorkflowRun
from taskmaster.db.session import Database
from taskmaster.forges.github import webhooks as github
from taskmaster.projects import service as projects
from taskmaster.projects.schemas import ProjectCreate
from taskmaster.secrets import SecretBox
from taskmaster.webhooks import service
from tests.forges.fixtures import payload


async def _deliver(db: Database, project: Project, event: str, body: dict[str, Any]) -> None:
    headers = {"X-GitHub-Event": event, "X-GitHub-Delivery": str(uuid.uuid4()), "Content-Type": "application/json"}
    async with db.transaction() as session:
        await service.store_delivery(
            session, identity=github.identify(headers), project_id=project.id, headers=headers,
            body=json.dumps(body).encode(), action=None,
        )  # fmt: skip


async def test_review_and_fix_commands_request_one_workflow_run_each_for_the_head(
    db: Database, settings: Settings
) -> None:
    async with db.transaction() as session:
        spec = ProjectCreate(name="hello", repository="Codertocat/Hello-World", forge="github")  # type: ignore[arg-type]
        project = await projects.create_project(session, spec=spec, box=SecretBox.from_settings(settings))
    opened = copy.deepcopy(payload("github/pull_request/opened"))
    head = opened["pull_request"]["head"]["sha"]
    await _deliver(db, project, "pull_request", opened)
    comment = payload("github/issue_comment/created_on_pull_request")
    comment["issue"]["number"] = opened["pull_request"]["number"]
    comment["sender"]["login"] = comment["comment"]["user"]["login"] = "octocat"
    for body in ("/taskmaster review", "please\n/taskmaster fix", "/taskmaster review"):
        comment["comment"]["body"] = body
        await _deliver(db, project, "issue_comment", copy.deepcopy(comment))

    async def writer(_: Project, login: str) -> bool:
        return login == "octocat"

    while await service.process_next(db, settings, permission=writer):
        pass

    async with db.session() as session:
        runs = (await session.scalars(select(WorkflowRun).order_by(WorkflowRun.created_at))).all()
        pipelines = (await session.scalars(select(Pipeline))).all()
        results = [row.result for row in (await session.scalars(select(WebhookDelivery))).all()][1:]
    assert [(r.kind, r.status, r.commit_sha, r.trigger_key) for r in runs] == [
        ("review", "pending", head, f"review:pr{opened['pull_request']['number']}:{head}"),
        ("recovery", "pending", head, f"recovery:pr{opened['pull_request']['number']}:{head}"),
    ]
    assert runs[1].params == {"command": "fix", "author": "octocat"}
    assert [p.pipeline_type for p in pipelines] == ["validation"]  # the pull request's own, nothing else
    assert [(r["command"], r["workflow_run_created"]) for r in results] == [
        ("review", True), ("fix", True), ("review", False),
    ]  # fmt: skip
    assert results[2]["workflow_run"] == str(runs[0].id)
