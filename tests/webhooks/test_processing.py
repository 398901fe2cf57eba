"""Processing stored deliveries: pipeline requests, supersede, cancel, drafts, pushes, commands, retries."""

from __future__ import annotations

import copy
import json
import uuid
from typing import Any

from sqlalchemy import select, text

from taskmaster.config import Settings
from taskmaster.config.settings import WebhookSettings
from taskmaster.db.models import Pipeline, Project, PullRequest, WebhookDelivery
from taskmaster.db.session import Database
from taskmaster.forges.github import webhooks as github
from taskmaster.forges.gitlab import webhooks as gitlab
from taskmaster.projects import service as projects
from taskmaster.projects.schemas import ProjectCreate
from taskmaster.secrets import SecretBox
from taskmaster.webhooks import service
from tests.forges.fixtures import payload

REPO = "Codertocat/Hello-World"


async def _project(db: Database, settings: Settings, **project_settings: Any) -> Project:
    async with db.transaction() as session:
        spec = ProjectCreate(name="hello", repository=REPO, forge="github")  # type: ignore[arg-type]
        project = await projects.create_project(session, spec=spec, box=SecretBox.from_settings(settings))
        project.settings = project_settings
        return project


async def _deliver(db: Database, project: Project, event: str, body: dict[str, Any] | bytes) -> uuid.UUID:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    headers = {"X-GitHub-Event": event, "X-GitHub-Delivery": str(uuid.uuid4()), "Content-Type": "application/json"}
    async with db.transaction() as session:
        stored = await service.store_delivery(
            session, identity=github.identify(headers), project_id=project.id, headers=headers, body=raw, action=None
        )
    return stored.id


async def _drain(db: Database, settings: Settings, **kwargs: Any) -> None:
    while await service.process_next(db, settings, **kwargs):
        pass


async def _pipelines(db: Database) -> list[Pipeline]:
    async with db.session() as session:
        return list((await session.scalars(select(Pipeline).order_by(Pipeline.created_at))).all())


def _pr(action: str, *, sha: str, draft: bool = False) -> dict[str, Any]:
    body = copy.deepcopy(payload("github/pull_request/opened"))
    body["action"] = action
    body["pull_request"]["head"]["sha"] = sha
    body["pull_request"]["draft"] = draft
    body["pull_request"]["state"] = "closed" if action == "closed" else "open"
    return body


async def test_new_commits_supersede_the_running_pipeline_and_closing_cancels_the_rest(
    db: Database, settings: Settings
) -> None:
    project = await _project(db, settings)
    await _deliver(db, project, "pull_request", _pr("opened", sha="a" * 40))
    await _deliver(db, project, "pull_request", _pr("opened", sha="a" * 40))  # a burst: the same head sha
    await _drain(db, settings)
    (first,) = await _pipelines(db)
    async with db.transaction() as session:
        running = await session.get(Pipeline, first.id)
        assert running is not None
        running.status = "running"

    await _deliver(db, project, "pull_request", _pr("synchronize", sha="b" * 40))
    await _drain(db, settings)
    old, new = await _pipelines(db)
    assert (old.status, old.superseded_by, old.error_message) == ("canceled", new.id, f"superseded by {'b' * 40}")
    assert (new.status, new.commit_sha, new.trigger_key) == ("pending", "b" * 40, f"validation:pr2:{'b' * 40}")
    assert old.finished_at is not None

    await _deliver(db, project, "pull_request", _pr("closed", sha="b" * 40))
    await _drain(db, settings)
    assert [(p.status, p.error_message) for p in await _pipelines(db)] == [
        ("canceled", f"superseded by {'b' * 40}"),
        ("canceled", "pull request closed"),
    ]
    async with db.session() as session:
        pull = await session.scalar(select(PullRequest))
    assert pull is not None and (pull.number, pull.state, pull.head_sha) == (2, "closed", "b" * 40)


async def test_a_draft_waits_for_ready_for_review(db: Database, settings: Settings) -> None:
    project = await _project(db, settings)
    await _deliver(db, project, "pull_request", _pr("opened", sha="c" * 40, draft=True))
    await _drain(db, settings)
    assert await _pipelines(db) == []
    await _deliver(db, project, "pull_request", _pr("ready_for_review", sha="c" * 40))
    await _drain(db, settings)
    assert [(p.status, p.commit_sha) for p in await _pipelines(db)] == [("pending", "c" * 40)]


async def test_a_push_without_a_pull_request_runs_only_when_the_project_enables_it(
    db: Database, settings: Settings
) -> None:
    push = payload("github/push/branch_created")
    push["repository"]["full_name"] = REPO
    project = await _project(db, settings)
    await _deliver(db, project, "push", push)
    await _drain(db, settings)
    assert await _pipelines(db) == []
    async with db.transaction() as session:
        stored = await session.get(Project, project.id)
        assert stored is not None
        stored.settings = {"push_pipelines": True}
    await _deliver(db, project, "push", push)
    await _drain(db, settings)
    (pipeline,) = await _pipelines(db)
    assert (pipeline.pipeline_type, pipeline.commit_sha) == ("push", push["after"])


async def test_comment_commands_need_write_access_and_bots_are_ignored(db: Database, settings: Settings) -> None:
    project = await _project(db, settings)
    await _deliver(db, project, "pull_request", _pr("opened", sha="d" * 40))
    await _drain(db, settings)
    comment = payload("github/issue_comment/created_on_pull_request")
    comment["issue"]["number"] = 2
    comment["comment"]["body"] = "Looks flaky.\n/taskmaster retry"
    asked: list[str] = []

    async def only_octocat(_: Project, login: str) -> bool:
        asked.append(login)
        return login == "octocat"

    async def results() -> list[dict[str, Any]]:
        async with db.session() as session:
            rows = await session.scalars(select(WebhookDelivery).order_by(WebhookDelivery.created_at))
            return [row.result for row in rows.all()][1:]

    await _deliver(db, project, "issue_comment", comment)  # no way to check permission: refused
    comment["sender"]["login"] = comment["comment"]["user"]["login"] = "octocat"
    await _deliver(db, project, "issue_comment", comment)
    bot = copy.deepcopy(comment)
    bot["sender"]["type"] = bot["comment"]["user"]["type"] = "Bot"
    bot["sender"]["login"] = bot["comment"]["user"]["login"] = "taskmaster[bot]"
    await _deliver(db, project, "issue_comment", bot)
    await _drain(db, settings, permission=None)
    first = (await results())[0]
    assert first["refused"].startswith("cannot check whether ") and " may write to " in first["refused"]
    assert "has no forge token (store one with --forge-token) and no GitHub App covers it" in first["refused"]

    await _deliver(db, project, "issue_comment", comment)
    async with db.transaction() as session:  # the pending pipeline finished, so a retry makes a new one
        for pipeline in (await session.scalars(select(Pipeline))).all():
            pipeline.status = "failed"
    await _drain(db, settings, permission=only_octocat)
    outcomes = await results()
    assert outcomes[2]["ignored"] == "comment by a bot"
    assert outcomes[3]["command"] == "retry" and outcomes[3]["pipeline_created"] is True
    assert asked == ["octocat"]
    assert [p.status for p in await _pipelines(db)] == ["failed", "pending"]


async def test_a_delivery_that_cannot_be_processed_is_retried_with_backoff_then_failed(
    db: Database, settings: Settings
) -> None:
    strict = settings.model_copy(update={"webhooks": WebhookSettings(max_attempts=2, retry_base_seconds=0.001)})
    project = await _project(db, settings)
    broken = _pr("opened", sha="e" * 40)
    del broken["pull_request"]["head"]
    delivery_id = await _deliver(db, project, "pull_request", broken)
    assert await service.process_next(db, strict)
    async with db.session() as session:
        row = await session.get(WebhookDelivery, delivery_id)
        assert row is not None and (row.status, row.attempts) == ("retry", 1)
        assert row.next_attempt_at is not None and "head" in (row.error or "")
    await _drain(db, strict)
    async with db.session() as session:
        row = await session.get(WebhookDelivery, delivery_id)
        assert row is not None and (row.status, row.attempts) == ("failed", 2) and row.error
    assert await _pipelines(db) == []


async def test_a_commands_author_is_asked_about_with_no_transaction_open_and_the_command_then_runs(
    db: Database, settings: Settings
) -> None:
    async with db.transaction() as session:
        spec = ProjectCreate(name="lab", repository="gitlab-org/hello-world", forge="gitlab")  # type: ignore[arg-type]
        project = await projects.create_project(session, spec=spec, box=SecretBox.from_settings(settings))
    note = payload("gitlab/note/merge_request_comment")
    note["object_attributes"]["note"] = "/taskmaster retry"
    headers = {"X-Gitlab-Event": "Note Hook", "Idempotency-Key": str(uuid.uuid4())}
    async with db.transaction() as session:
        await service.store_delivery(
            session, identity=gitlab.identify(headers), project_id=project.id, headers=headers,
            body=json.dumps(note).encode(), action=None,
        )  # fmt: skip
    asked: list[str] = []

    async def writes_meanwhile(_: Project, login: str) -> bool:
        # Were the delivery's row locked (PostgreSQL) or the write lock held (SQLite, after the pull request row
        # was flushed), this write from another connection would wait: the forge's HTTP call would hold them.
        async with db.transaction() as other:
            if db.dialect == "postgresql":
                await other.execute(text("SET LOCAL lock_timeout = '2s'"))
            else:
                await other.execute(text("PRAGMA busy_timeout = 2000"))
            await other.execute(text("UPDATE webhook_deliveries SET attempts = attempts"))
        asked.append(login)
        return True

    await _drain(db, settings, permission=writes_meanwhile)
    async with db.session() as session:
        (delivery,) = (await session.scalars(select(WebhookDelivery))).all()
    assert asked == ["sytses"]
    assert (delivery.status, delivery.error, delivery.result["command"]) == ("processed", None, "retry")
    (pipeline,) = await _pipelines(db)
    assert (pipeline.project_id, pipeline.status) == (project.id, "pending")
    assert pipeline.trigger_event == "gitlab:Note Hook:command:retry"


async def test_a_forge_error_while_asking_about_a_commands_author_is_a_retried_failure(
    db: Database, settings: Settings
) -> None:
    project = await _project(db, settings)
    await _deliver(db, project, "pull_request", _pr("opened", sha="f" * 40))
    await _drain(db, settings)
    comment = payload("github/issue_comment/created_on_pull_request")
    comment["issue"]["number"] = 2
    comment["comment"]["body"] = "/taskmaster retry"
    delivery_id = await _deliver(db, project, "issue_comment", comment)

    async def unreachable(_: Project, __: str) -> bool:
        raise ConnectionError("forge unreachable")

    assert await service.process_next(db, settings, permission=unreachable)
    async with db.session() as session:
        row = await session.get(WebhookDelivery, delivery_id)
    assert row is not None and (row.status, row.attempts) == ("retry", 1)
    assert row.error == "ConnectionError: forge unreachable"


async def test_the_pull_requests_body_is_recorded_from_its_deliveries_and_kept_when_a_comment_arrives(
    db: Database, settings: Settings
) -> None:
    project = await _project(db, settings)

    async def body() -> str | None:
        async with db.session() as session:
            pull = await session.scalar(select(PullRequest))
        assert pull is not None
        return pull.body

    opened = _pr("opened", sha="e" * 40)
    await _deliver(db, project, "pull_request", opened)
    await _drain(db, settings)
    assert await body() == "This is a pretty simple change that we need to pull into master."

    edited = _pr("edited", sha="e" * 40)
    edited["pull_request"]["body"] = "Now with the reasons.\r\n\r\nAnd a second paragraph."
    await _deliver(db, project, "pull_request", edited)
    comment = payload("github/issue_comment/created_on_pull_request")
    comment["issue"]["number"] = 2
    comment["issue"]["body"] = "an older copy of the description"
    await _deliver(db, project, "issue_comment", comment)
    await _drain(db, settings)
    assert await body() == "Now with the reasons.\r\n\r\nAnd a second paragraph."

    cleared = _pr("edited", sha="e" * 40)
    cleared["pull_request"]["body"] = None  # GitHub sends null for an empty description
    await _deliver(db, project, "pull_request", cleared)
    await _drain(db, settings)
    assert await body() == ""


def test_a_merge_requests_description_is_its_body_and_a_delivery_without_one_says_nothing() -> None:
    event = gitlab.parse("Merge Request Hook", payload("gitlab/merge_request/open"))
    assert event.pull_request is not None and event.pull_request.body == "adding build instructions to readme"
    data = copy.deepcopy(payload("gitlab/merge_request/open"))
    data["object_attributes"]["description"] = None
    empty = gitlab.parse("Merge Request Hook", data)
    assert empty.pull_request is not None and empty.pull_request.body == ""
    del data["object_attributes"]["description"]
    absent = gitlab.parse("Merge Request Hook", data)
    assert absent.pull_request is not None and absent.pull_request.body is None
