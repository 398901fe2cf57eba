"""POST /webhooks/{github,gitlab} over real HTTP, real payloads and real HMACs: accepted, or refused leaving nothing."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import subprocess
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from typing import Any
from urllib.parse import urlencode

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import event, func, select

from taskmaster.app import create_app
from taskmaster.auth.schemas import Role
from taskmaster.config import Settings
from taskmaster.config.settings import WebhookSettings
from taskmaster.core.clock import utcnow
from taskmaster.db.models import Pipeline, Project, PullRequest, WebhookDelivery
from taskmaster.db.session import Database
from taskmaster.forges.github import webhooks as github
from taskmaster.forges.gitlab import webhooks as gitlab
from taskmaster.projects import service as projects
from taskmaster.projects.credentials import Credentials
from taskmaster.projects.forges import ForgeFactory
from taskmaster.projects.schemas import ProjectCreate
from taskmaster.secrets import SecretBox
from taskmaster.webhooks import service
from taskmaster.worker.forges import ForgeUpdates
from taskmaster.worker.webhooks import ForgePermissions
from tests.api.conftest import Api
from tests.cli.conftest import TASKMASTER, clean_env
from tests.forges.fakes.gitlab import TOKEN as GITLAB_TOKEN
from tests.forges.fakes.gitlab import serve_gitlab
from tests.forges.fixtures import names, payload, payload_bytes
from tests.support import live_server

SECRET = "It's a Secret to Everybody"


def github_headers(body: bytes, event: str, *, secret: str = SECRET, delivery: str | None = None) -> dict[str, str]:
    digest = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    return {
        "Content-Type": "application/json",
        "X-GitHub-Event": event,
        "X-GitHub-Delivery": delivery or str(uuid.uuid4()),
        "X-GitHub-Hook-ID": "123456789",
        "X-Hub-Signature-256": f"sha256={digest}",
        "User-Agent": "GitHub-Hookshot/1a2b3c4",
    }


def gitlab_headers(event_header: str, *, token: str = SECRET, key: str | None = None) -> dict[str, str]:
    return {
        "Content-Type": "application/json",
        "X-Gitlab-Event": event_header,
        "X-Gitlab-Token": token,
        "Idempotency-Key": key or str(uuid.uuid4()),
    }


GITLAB_EVENTS = {
    "merge_request": "Merge Request Hook", "push": "Push Hook", "tag_push": "Tag Push Hook", "note": "Note Hook",
    "pipeline": "Pipeline Hook", "job": "Job Hook",
}  # fmt: skip


async def add_project(settings: Settings, forge: str, repository: str, secret: str = SECRET, **extra: Any) -> Project:
    db = Database.from_settings(settings)
    try:
        async with db.transaction() as session:
            spec = ProjectCreate(name=repository.replace("/", "-"), repository=repository, forge=forge,
                                 webhook_secret=secret)  # type: ignore[arg-type]  # fmt: skip
            project = await projects.create_project(session, spec=spec, box=SecretBox.from_settings(settings))
            for key, value in extra.items():
                setattr(project, key, value)
            return project
    finally:
        await db.dispose()


async def rows(settings: Settings) -> list[WebhookDelivery]:
    db = Database.from_settings(settings)
    try:
        async with db.session() as session:
            return list((await session.scalars(select(WebhookDelivery).order_by(WebhookDelivery.created_at))).all())
    finally:
        await db.dispose()


def _repositories(provider: str) -> set[str]:
    found = set()
    for name in names(provider):
        key = (github if provider == "github" else gitlab).repository_key(payload_bytes(name))
        if key is not None and key.full_name:
            found.add(key.full_name)
    return found


async def test_every_github_payload_is_verified_stored_and_parsed_into_its_event(api: Api) -> None:
    for repository in _repositories("github"):
        await add_project(api.settings, "github", repository)
    expected: dict[str, str] = {}
    with api.client() as http:
        for name in names("github"):
            body, event = payload_bytes(name), name.split("/")[1]
            answer = http.post("/webhooks/github", content=body, headers=github_headers(body, event))
            if event == "ping":
                assert (answer.status_code, answer.json()["status"]) == (200, "pong"), name
            elif event == "installation":
                assert (answer.status_code, answer.json()["status"]) == (200, "ignored"), name
            else:
                assert answer.status_code == 202, (name, answer.text)
                expected[answer.json()["id"]] = github.parse(event, body).kind.value
    stored = await rows(api.settings)
    assert {str(r.id) for r in stored} == set(expected)
    for row in stored:
        assert service.parse_delivery(row).kind.value == expected[str(row.id)]
        assert row.status == "received" and row.headers["x-github-event"] == row.event


async def test_every_gitlab_payload_is_verified_stored_and_parsed_without_keeping_the_token(api: Api) -> None:
    for repository in _repositories("gitlab"):
        await add_project(api.settings, "gitlab", repository)
    expected: dict[str, str] = {}
    with api.client() as http:
        for name in names("gitlab"):
            body, header = payload_bytes(name), GITLAB_EVENTS[name.split("/")[1]]
            answer = http.post("/webhooks/gitlab", content=body, headers=gitlab_headers(header))
            key = gitlab.repository_key(body)
            if key is None or not key.full_name:
                assert (answer.status_code, answer.json()["status"]) == (200, "ignored"), name
                continue
            assert answer.status_code == 202, (name, answer.text)
            expected[answer.json()["id"]] = gitlab.parse(header, body).kind.value
    stored = await rows(api.settings)
    assert {str(r.id) for r in stored} == set(expected)
    for row in stored:
        assert service.parse_delivery(row).kind.value == expected[str(row.id)]
        assert "x-gitlab-token" not in row.headers and SECRET.encode() not in json.dumps(row.headers).encode()


async def test_bad_deliveries_get_the_documented_refusal_and_leave_no_row(api: Api) -> None:
    await add_project(api.settings, "github", "Codertocat/Hello-World")
    body = payload_bytes("github/pull_request/opened")
    good = github_headers(body, "pull_request")
    flipped = body[:100] + bytes([body[100] ^ 1]) + body[101:]
    no_event = {k: v for k, v in good.items() if k != "X-GitHub-Event"}
    huge = b" " * (26 * 1024 * 1024)
    unknown = json.dumps({"action": "opened", "repository": {"full_name": "nobody/nothing", "id": 1}}).encode()
    cases = [
        ("one byte changed", flipped, good, 401),
        ("wrong secret", body, github_headers(body, "pull_request", secret="not it"), 401),
        ("no signature", body, {k: v for k, v in good.items() if k != "X-Hub-Signature-256"}, 401),
        ("no event header", body, no_event, 400),
        ("26 MB body", huge, github_headers(huge, "pull_request"), 413),
        ("malformed JSON", b"{not json", github_headers(b"{not json", "pull_request"), 400),
        ("wrong content type", body, {**good, "Content-Type": "text/plain"}, 415),
        ("unknown project", unknown, github_headers(unknown, "pull_request"), 404),
    ]
    with api.client() as http:
        for label, content, headers, code in cases:
            answer = http.post("/webhooks/github", content=content, headers=headers)
            assert answer.status_code == code, (label, answer.text)
            assert answer.headers["content-type"] == "application/problem+json", label
            assert answer.json()["detail"], label
    assert await rows(api.settings) == []


async def test_twenty_concurrent_copies_of_one_delivery_store_one_row_and_request_one_pipeline(api: Api) -> None:
    await add_project(api.settings, "github", "Codertocat/Hello-World")
    body = payload_bytes("github/pull_request/opened")
    headers = github_headers(body, "pull_request", delivery="72d3162e-cc78-11e3-81ab-4c9367dc0958")
    async with httpx.AsyncClient(base_url=api.url, timeout=30) as http:
        answers = await asyncio.gather(
            *(http.post("/webhooks/github", content=body, headers=headers) for _ in range(20))
        )
    assert sorted(a.status_code for a in answers) == [200] * 19 + [202]
    assert len({a.json()["id"] for a in answers}) == 1
    db = Database.from_settings(api.settings)
    try:
        while await service.process_next(db, api.settings):
            pass
        async with db.session() as session:
            assert await session.scalar(select(func.count()).select_from(WebhookDelivery)) == 1
            pipelines = (await session.scalars(select(Pipeline))).all()
    finally:
        await db.dispose()
    assert [(p.status, p.commit_sha, p.pipeline_type) for p in pipelines] == [
        ("pending", payload("github/pull_request/opened")["pull_request"]["head"]["sha"], "validation")
    ]


async def test_the_previous_secret_is_accepted_only_during_the_rotation_overlap(api: Api) -> None:
    box = SecretBox.from_settings(api.settings)
    previous = {"webhook_secret_previous": box.encrypt(SECRET), "webhook_secret_rotated_at": utcnow()}
    recent = await add_project(api.settings, "github", "Codertocat/Hello-World", secret="new-secret", **previous)
    assert recent.webhook_secret_previous is not None
    body = payload_bytes("github/pull_request/opened")
    with api.client() as http:
        assert (
            http.post("/webhooks/github", content=body, headers=github_headers(body, "pull_request")).status_code == 202
        )
        new = github_headers(body, "pull_request", secret="new-secret")
        assert http.post("/webhooks/github", content=body, headers=new).status_code == 202
    db = Database.from_settings(api.settings)
    try:
        async with db.transaction() as session:
            project = await projects.get_project(session, recent.id)
            project.webhook_secret_rotated_at = utcnow() - timedelta(days=2)
    finally:
        await db.dispose()
    with api.client() as http:
        late = http.post("/webhooks/github", content=body, headers=github_headers(body, "pull_request"))
        assert late.status_code == 401


@pytest.fixture
def strict_api(settings: Settings, migrated: dict[Role, str]) -> Iterator[Api]:
    """A server whose per-project bucket holds two deliveries and refills slowly."""
    limited = settings.model_copy(update={"webhooks": WebhookSettings(project_rate=0.1, project_burst=2)})
    with live_server(create_app(limited, run_worker=False)) as url:
        yield Api(url=url, settings=limited, tokens=migrated)


async def test_over_the_project_rate_a_delivery_gets_429_with_retry_after_and_is_not_stored(strict_api: Api) -> None:
    await add_project(strict_api.settings, "github", "Codertocat/Hello-World")
    body = payload_bytes("github/pull_request/synchronize")
    with strict_api.client() as http:
        codes = [
            http.post("/webhooks/github", content=body, headers=github_headers(body, "pull_request")) for _ in range(3)
        ]
    assert [a.status_code for a in codes] == [202, 202, 429]
    assert 1 <= int(codes[2].headers["Retry-After"]) <= 10
    assert len(await rows(strict_api.settings)) == 2


async def test_deliveries_are_listed_shown_and_redelivered_through_the_api(api: Api) -> None:
    await add_project(api.settings, "github", "Codertocat/Hello-World")
    body = payload_bytes("github/pull_request/opened")
    with api.client() as http:
        delivered = http.post("/webhooks/github", content=body, headers=github_headers(body, "pull_request")).json()
    db = Database.from_settings(api.settings)
    try:
        assert await service.process_next(db, api.settings)
    finally:
        await db.dispose()
    with api.client(Role.viewer) as http:
        page = http.get("/api/webhooks/deliveries").json()
        assert page["total"] == 1 and page["items"][0]["status"] == "processed"
        assert page["items"][0]["result"]["kind"] == "pr_opened" and page["items"][0]["result"]["pipeline_created"]
        shown = http.get(f"/api/webhooks/deliveries/{delivered['id']}").json()
        assert json.loads(shown["body"]) == json.loads(body)
        assert http.post(f"/api/webhooks/deliveries/{delivered['id']}/redeliver").status_code == 403
    with api.client(Role.admin) as http:
        again = http.post(f"/api/webhooks/deliveries/{delivered['id']}/redeliver").json()
        assert (again["status"], again["attempts"]) == ("received", 0)
        assert http.get("/api/webhooks/deliveries/not-an-id").status_code == 404


async def test_the_in_process_worker_processes_a_delivery_soon_after_it_is_acknowledged(
    settings: Settings, migrated: dict[Role, str]
) -> None:
    await add_project(settings, "github", "Codertocat/Hello-World")
    body = payload_bytes("github/pull_request/opened")
    slow_poll = settings.model_copy(update={"webhooks": WebhookSettings(poll_seconds=60)})
    with live_server(create_app(slow_poll, run_worker=True)) as url, httpx.Client(base_url=url) as http:
        answer = http.post("/webhooks/github", content=body, headers=github_headers(body, "pull_request"))
        assert answer.status_code == 202
        deadline = asyncio.get_running_loop().time() + 20
        while (stored := await rows(settings))[0].status != "processed":  # woken, not the 60 s poll
            assert asyncio.get_running_loop().time() < deadline, stored[0].status
            await asyncio.sleep(0.05)
    assert stored[0].result["pipeline_created"] is True


async def test_a_form_encoded_github_delivery_is_verified_over_the_form_and_parsed(api: Api) -> None:
    await add_project(api.settings, "github", "Codertocat/Hello-World")
    body = urlencode({"payload": payload_bytes("github/pull_request/opened").decode()}).encode()
    headers = {**github_headers(body, "pull_request"), "Content-Type": "application/x-www-form-urlencoded"}
    with api.client() as http:
        answer = http.post("/webhooks/github", content=body, headers=headers)
    assert answer.status_code == 202, answer.text
    (row,) = await rows(api.settings)
    assert (row.action, service.parse_delivery(row).kind.value) == ("opened", "pr_opened")


# -------------------------------------------------------------------------------- the remembered project


def other_process(settings: Settings, *args: str) -> None:
    """Run the real `taskmaster` command in its own process on the same database: what another server or an
    operator does, unseen by the server under test except through the database."""
    env = clean_env(TASKMASTER_HOME=str(settings.state_dir), TASKMASTER_ENV="test")
    if not settings.embedded:
        env["DATABASE_URL"] = settings.database_url
    done = subprocess.run([TASKMASTER, *args], env=env, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr


@contextmanager
def remembering_server(settings: Settings, overlap: float = 24 * 3600) -> Iterator[tuple[FastAPI, httpx.Client]]:
    """A live server that remembers a project far longer than any test runs, and a client of it."""
    hooks = WebhookSettings(project_cache_seconds=300, secret_overlap_seconds=overlap)
    app = create_app(settings.model_copy(update={"webhooks": hooks}), run_worker=False)
    with live_server(app) as url, httpx.Client(base_url=url) as http:
        yield app, http


def post_signed(http: httpx.Client, secret: str, name: str = "github/pull_request/opened") -> httpx.Response:
    body = payload_bytes(name)
    return http.post("/webhooks/github", content=body, headers=github_headers(body, "pull_request", secret=secret))


async def test_a_delivery_for_a_remembered_project_is_stored_whole_in_one_statement(
    settings: Settings, migrated: dict[Role, str]
) -> None:
    project = await add_project(settings, "github", "Codertocat/Hello-World")
    statements: list[str] = []
    body = payload_bytes("github/pull_request/synchronize")
    headers = github_headers(body, "pull_request")
    with remembering_server(settings) as (app, http):
        assert post_signed(http, SECRET).status_code == 202  # looks the project up, and remembers it
        engine = app.state.services.db.autocommit_engine.sync_engine
        event.listen(engine, "before_cursor_execute", lambda *args: statements.append(args[2]))
        answer = http.post("/webhooks/github", content=body, headers=headers)
    assert answer.status_code == 202, answer.text
    assert len(statements) == 1 and statements[0].lstrip().upper().startswith("INSERT"), statements
    row = {str(r.id): r for r in await rows(settings)}[answer.json()["id"]]
    assert (row.project_id, row.body, row.event, row.action, row.status) == (
        project.id, body, "pull_request", "synchronize", "received"
    )  # fmt: skip
    assert row.headers["x-github-delivery"] == headers["X-GitHub-Delivery"]
    assert service.parse_delivery(row).kind.value == github.parse("pull_request", body).kind.value


@pytest.mark.parametrize("overlap", [24 * 3600, 0], ids=["overlap", "no-overlap"])
async def test_a_rotation_by_another_process_accepts_the_new_secret_at_once_and_the_old_one_per_overlap(
    settings: Settings, migrated: dict[Role, str], overlap: float
) -> None:
    await add_project(settings, "github", "Codertocat/Hello-World")
    with remembering_server(settings, overlap) as (_, http):
        assert post_signed(http, SECRET).status_code == 202  # remembered with the first secret
        other_process(
            settings, "project", "rotate-webhook-secret", "Codertocat-Hello-World", "--secret", "second-secret"
        )
        new = post_signed(http, "second-secret")
        old = post_signed(http, SECRET)
    assert new.status_code == 202, new.text
    assert old.status_code == (202 if overlap else 401), old.text
    assert len(await rows(settings)) == (3 if overlap else 2)


async def test_a_project_removed_by_another_process_gets_404_and_no_row(
    settings: Settings, migrated: dict[Role, str]
) -> None:
    await add_project(settings, "github", "Codertocat/Hello-World")
    with remembering_server(settings) as (_, http):
        first = post_signed(http, SECRET)
        assert first.status_code == 202  # remembered, and its secret still matches below
        other_process(settings, "project", "remove", "Codertocat-Hello-World", "--yes")
        gone = post_signed(http, SECRET)
        again = post_signed(http, SECRET)  # now known to be gone: looked up, not remembered
    assert (gone.status_code, again.status_code) == (404, 404), gone.text
    assert gone.headers["content-type"] == "application/problem+json"
    assert [str(r.id) for r in await rows(settings)] in ([first.json()["id"]], [])


async def test_a_rotation_through_this_server_forgets_the_remembered_secret_at_once(
    settings: Settings, migrated: dict[Role, str]
) -> None:
    project = await add_project(settings, "github", "Codertocat/Hello-World")
    admin = {"Authorization": f"Bearer {migrated[Role.admin]}"}
    with remembering_server(settings, overlap=0) as (_, http):
        assert post_signed(http, SECRET).status_code == 202
        rotated = http.put(f"/api/projects/{project.id}/webhook-secret", json={"secret": "second-secret"},
                           headers=admin)  # fmt: skip
        assert rotated.status_code == 200, rotated.text
        old = post_signed(http, SECRET)  # refused at once, not after the 300 s the project is remembered
        new = post_signed(http, "second-secret")
    assert (old.status_code, new.status_code) == (401, 202), old.text


async def test_a_delivery_signed_with_the_github_apps_webhook_secret_is_accepted(
    settings: Settings, migrated: dict[Role, str]
) -> None:
    from pydantic import SecretStr

    from taskmaster.config.settings import GitHubSettings

    as_app = settings.model_copy(update={"github": GitHubSettings(webhook_secret=SecretStr("app-wide-secret"))})
    await add_project(as_app, "github", "Codertocat/Hello-World", secret="project-secret")
    body = payload_bytes("github/pull_request/opened")
    with live_server(create_app(as_app, run_worker=False)) as url, httpx.Client(base_url=url) as http:
        by_app = http.post(
            "/webhooks/github", content=body, headers=github_headers(body, "pull_request", secret="app-wide-secret")
        )
        by_project = http.post(
            "/webhooks/github", content=body, headers=github_headers(body, "pull_request", secret="project-secret")
        )
        forged = http.post("/webhooks/github", content=body, headers=github_headers(body, "pull_request", secret="x"))

    assert (by_app.status_code, by_project.status_code, forged.status_code) == (202, 202, 401)
    assert len(await rows(as_app)) == 2


# -------------------------------------------------------------------------------- hostile deliveries (issue 16)


async def test_json_nested_1000_deep_gets_400_before_the_signature_is_checked_and_leaves_no_row(api: Api) -> None:
    await add_project(api.settings, "github", "Codertocat/Hello-World")
    await add_project(api.settings, "gitlab", "gitlab-org/hello-world")
    deep = b'{"a":' * 1000 + b"1" + b"}" * 1000
    deep_array = b'{"repository": ' + b"[" * 5000 + b"]" * 5000 + b"}"
    just_over = b'{"repository": {"full_name": "Codertocat/Hello-World"}, "x": ' + b"[" * 200 + b"1" + b"]" * 200 + b"}"
    with api.client() as http:
        answers = [
            http.post("/webhooks/github", content=body, headers=github_headers(body, "pull_request", secret="any"))
            for body in (deep, deep_array, just_over)
        ]
        answers.append(http.post("/webhooks/gitlab", content=deep, headers=gitlab_headers("Merge Request Hook")))
    for answer in answers:
        assert answer.status_code == 400, answer.text
        assert answer.headers["content-type"] == "application/problem+json"
        assert "deeper than 200 levels" in answer.json()["detail"]
    assert await rows(api.settings) == []


async def test_long_delivery_and_hook_ids_get_400_naming_the_header_not_500(api: Api) -> None:
    await add_project(api.settings, "github", "Codertocat/Hello-World")
    await add_project(api.settings, "gitlab", "gitlab-org/hello-world")
    body = payload_bytes("github/pull_request/opened")
    mr = payload_bytes("gitlab/merge_request/open")
    cases = [
        ("/webhooks/github", body, {**github_headers(body, "pull_request"), "X-GitHub-Delivery": "d" * 201},
         "X-GitHub-Delivery"),
        ("/webhooks/github", body, {**github_headers(body, "pull_request"), "X-GitHub-Hook-ID": "7" * 101},
         "X-GitHub-Hook-ID"),
        ("/webhooks/gitlab", mr, gitlab_headers("Merge Request Hook", key="k" * 201), "Idempotency-Key"),
        ("/webhooks/gitlab", mr, {**gitlab_headers("Merge Request Hook"), "X-Gitlab-Event-UUID": "u" * 201,
                                  "Idempotency-Key": ""}, "X-Gitlab-Event-UUID"),
    ]  # fmt: skip
    with api.client() as http:
        for url, content, headers, named in cases:
            answer = http.post(url, content=content, headers=headers)
            assert answer.status_code == 400, (named, answer.text)
            assert named in answer.json()["detail"], answer.text
        at_limit = {
            **github_headers(body, "pull_request"),
            "X-GitHub-Delivery": "d" * 200,
            "X-GitHub-Hook-ID": "7" * 100,
        }
        assert http.post("/webhooks/github", content=body, headers=at_limit).status_code == 202
    (row,) = await rows(api.settings)
    assert (len(row.delivery_id), len(row.hook_id)) == (200, 100)


async def test_a_nul_byte_in_a_pull_request_title_is_stored_losslessly_and_processed_once(api: Api) -> None:
    await add_project(api.settings, "github", "Codertocat/Hello-World")
    opened = payload("github/pull_request/opened")
    opened["pull_request"]["title"] = "fix\x00 this"
    labeled = payload("github/pull_request/labeled")
    labeled["action"] = "labeled\x00"  # the action is a column of the delivery row itself
    labeled["pull_request"]["title"] = "fix\x00 this"
    bodies = [json.dumps(p).encode() for p in (opened, labeled)]
    assert all(b"\\u0000" in body for body in bodies)
    with api.client() as http:
        answers = [
            http.post("/webhooks/github", content=body, headers=github_headers(body, "pull_request")) for body in bodies
        ]
    assert [a.status_code for a in answers] == [202, 202], answers[1].text
    db = Database.from_settings(api.settings)
    try:
        assert await service.process_next(db, api.settings)
        assert await service.process_next(db, api.settings)
        assert not await service.process_next(db, api.settings)  # nothing left to retry
        async with db.session() as session:
            stored = (await session.scalars(select(WebhookDelivery).order_by(WebhookDelivery.created_at))).all()
            pipeline = (await session.scalars(select(Pipeline))).one()
            title = await session.scalar(select(PullRequest.title))
    finally:
        await db.dispose()
    assert [(row.body, row.status, row.attempts, row.error) for row in stored] == [
        (body, "processed", 1, None) for body in bodies
    ]
    parsed = service.parse_delivery(stored[0]).pull_request
    assert parsed is not None and parsed.title == "fix\ufffd this" == title and pipeline.status == "pending"
    assert stored[1].action == "labeled\ufffd" and stored[1].result["kind"] == "pr_updated"


async def test_signature_headers_are_not_stored_where_viewers_could_read_them(api: Api) -> None:
    await add_project(api.settings, "github", "Codertocat/Hello-World")
    signing_key = "whsec_" + base64.b64encode(b"0123456789abcdef0123456789abcdef").decode()
    await add_project(api.settings, "gitlab", "gitlab-org/hello-world", secret=signing_key)
    body = payload_bytes("github/pull_request/opened")
    legacy = "sha1=" + hmac.new(SECRET.encode(), body, hashlib.sha1).hexdigest()
    mr = payload_bytes("gitlab/merge_request/open")
    signed_mr = _gitlab_signed(mr, signing_key)
    with api.client() as http:
        github_answer = http.post(
            "/webhooks/github",
            content=body,
            headers={**github_headers(body, "pull_request"), "X-Hub-Signature": legacy},
        )
        gitlab_answer = http.post("/webhooks/gitlab", content=mr, headers=signed_mr)
    assert (github_answer.status_code, gitlab_answer.status_code) == (202, 202), gitlab_answer.text
    with api.client(Role.viewer) as http:
        shown = [http.get(f"/api/webhooks/deliveries/{a.json()['id']}").json() for a in (github_answer, gitlab_answer)]
    github_stored, gitlab_stored = (set(s["headers"]) for s in shown)
    assert "x-github-delivery" in github_stored and "webhook-id" in gitlab_stored  # the rest is kept
    assert not github_stored & {"x-hub-signature-256", "x-hub-signature"}
    assert "webhook-signature" not in gitlab_stored
    assert legacy.encode() not in json.dumps(shown).encode()


async def test_a_signature_stored_before_it_was_left_out_is_not_shown_to_viewers(api: Api) -> None:
    project = await add_project(api.settings, "github", "Codertocat/Hello-World")
    db = Database.from_settings(api.settings)
    try:
        async with db.transaction() as session:
            old = WebhookDelivery(
                provider="github", hook_id="1", delivery_id="old", event="ping", project_id=project.id, body=b"{}",
                headers={"x-hub-signature-256": "sha256=" + "0" * 64, "x-github-event": "ping"},
            )  # fmt: skip
            session.add(old)
    finally:
        await db.dispose()
    with api.client(Role.viewer) as http:
        shown = http.get(f"/api/webhooks/deliveries/{old.id}").json()
    assert shown["headers"] == {"x-github-event": "ping"}


def _gitlab_signed(body: bytes, signing_key: str) -> dict[str, str]:
    """GitLab's signing-token headers (the Standard Webhooks scheme) for `body`."""
    webhook_id, timestamp = str(uuid.uuid4()), str(int(utcnow().timestamp()))
    key = base64.b64decode(signing_key.removeprefix("whsec_"))
    mac = hmac.new(key, f"{webhook_id}.{timestamp}.".encode() + body, hashlib.sha256).digest()
    return {
        "Content-Type": "application/json", "X-Gitlab-Event": "Merge Request Hook", "webhook-id": webhook_id,
        "webhook-timestamp": timestamp, "webhook-signature": "v1," + base64.b64encode(mac).decode(),
    }  # fmt: skip


# -------------------------------------------------------------------------------- a repository of two projects


async def _two_projects(settings: Settings, first_secret: str, second_secret: str) -> tuple[Project, Project]:
    """Two projects of one repository (`hello`, `hello-again`), each with its own webhook secret."""
    first = await add_project(settings, "github", "Codertocat/Hello-World", secret=first_secret)
    db = Database.from_settings(settings)
    try:
        async with db.transaction() as session:
            spec = ProjectCreate(name="hello-again", repository="Codertocat/Hello-World", forge="github",
                                 webhook_secret=second_secret)  # type: ignore[arg-type]  # fmt: skip
            second = await projects.create_project(session, spec=spec, box=SecretBox.from_settings(settings))
    finally:
        await db.dispose()
    return first, second


async def _process_all(settings: Settings) -> list[Pipeline]:
    db = Database.from_settings(settings)
    try:
        while await service.process_next(db, settings):
            pass
        async with db.session() as session:
            return list((await session.scalars(select(Pipeline).order_by(Pipeline.created_at))).all())
    finally:
        await db.dispose()


async def test_webhooks_for_a_repository_shared_by_two_projects_reach_both_each_by_its_own_secret(api: Api) -> None:
    first, second = await _two_projects(api.settings, "first-secret", "second-secret")
    body = payload_bytes("github/pull_request/opened")
    with api.client() as http:
        # Two webhooks on the repository (GitHub wants distinct URLs: a query string is ignored by the receiver).
        by_first = http.post("/webhooks/github?project=hello", content=body, headers={
            **github_headers(body, "pull_request", secret="first-secret"), "X-GitHub-Hook-ID": "1"})  # fmt: skip
        by_second = http.post("/webhooks/github?project=hello-again", content=body, headers={
            **github_headers(body, "pull_request", secret="second-secret"), "X-GitHub-Hook-ID": "2"})  # fmt: skip
        forged = http.post("/webhooks/github", content=body, headers=github_headers(body, "pull_request", secret="x"))
    assert (by_first.status_code, by_second.status_code, forged.status_code) == (202, 202, 401), forged.text
    assert (len(by_first.json()["ids"]), len(by_second.json()["ids"])) == (1, 1)
    stored = await rows(api.settings)
    assert [(r.project_id, str(r.id)) for r in stored] == [
        (first.id, by_first.json()["id"]), (second.id, by_second.json()["id"])
    ]  # fmt: skip
    pipelines = await _process_all(api.settings)
    assert sorted(str(p.project_id) for p in pipelines) == sorted([str(first.id), str(second.id)])


async def test_one_webhook_whose_secret_both_projects_of_a_repository_hold_reaches_both_once(api: Api) -> None:
    first, second = await _two_projects(api.settings, "shared-secret", "shared-secret")
    body = payload_bytes("github/pull_request/opened")
    headers = github_headers(body, "pull_request", secret="shared-secret")
    with api.client() as http:
        answer = http.post("/webhooks/github", content=body, headers=headers)
        again = http.post("/webhooks/github", content=body, headers=headers)
    assert (answer.status_code, again.status_code) == (202, 200), answer.text
    assert again.json()["ids"] == answer.json()["ids"] and again.json()["duplicate"] is True
    stored = await rows(api.settings)
    assert sorted(str(r.id) for r in stored) == sorted(answer.json()["ids"])
    assert sorted(str(r.project_id) for r in stored) == sorted([str(first.id), str(second.id)])
    assert sorted(str(p.project_id) for p in await _process_all(api.settings)) == sorted(
        [str(first.id), str(second.id)]
    )


async def test_a_gitlab_project_in_a_subgroup_gets_its_webhooks_and_is_addressed_by_its_whole_path(api: Api) -> None:
    """Added by its URL, a project of subgroup `acme/platform` receives the deliveries naming `acme/platform/api`
    (not the project `platform/api` that a cut namespace would have matched), asks GitLab about a command's author
    and reports its pipeline under `/projects/acme%2Fplatform%2Fapi/…` of the fake GitLab."""
    with serve_gitlab() as (gitlab_url, fake):
        fake.state.users.update({"sytses": 7, "mallory": 8})
        fake.state.members[(fake.state.projects["acme/platform/api"], 7)] = 30  # a developer: may write
        with api.client(Role.admin) as admin:
            created = admin.post("/api/projects", json={
                "name": "api", "repository": "https://gitlab.com/acme/platform/api.git", "forge": "gitlab",
                "webhook_secret": SECRET, "forge_token": GITLAB_TOKEN, "settings": {"forge_api_url": gitlab_url},
            })  # fmt: skip
            decoy = admin.post("/api/projects", json={
                "name": "decoy", "repository": "https://gitlab.com/platform/api.git", "forge": "gitlab",
                "webhook_secret": SECRET,
            })  # fmt: skip
            github = admin.post("/api/projects", json={
                "name": "gh", "repository": "https://github.com/acme/platform/api", "forge": "github"})  # fmt: skip
        assert created.status_code == decoy.status_code == 201, created.text
        project = created.json()
        assert (project["owner"], project["repo_name"]) == ("acme/platform", "api")
        assert github.status_code == 422 and "a GitHub repository is owner/name" in github.json()["detail"]

        opened = payload("gitlab/merge_request/open")
        opened["project"]["path_with_namespace"] = "acme/platform/api"
        sha = opened["object_attributes"]["last_commit"]["id"]
        notes = []
        for author in ("mallory", "sytses"):
            note = payload("gitlab/note/merge_request_comment")
            note["project"]["path_with_namespace"] = "acme/platform/api"
            note["user"]["username"], note["object_attributes"]["note"] = author, "/taskmaster retry"
            notes.append(note)
        with api.client() as http:
            answers = [
                http.post("/webhooks/gitlab", content=json.dumps(body).encode(), headers=gitlab_headers(event))
                for body, event in ((opened, "Merge Request Hook"), (notes[0], "Note Hook"), (notes[1], "Note Hook"))
            ]
        assert [a.status_code for a in answers] == [202, 202, 202], answers[0].text
        assert {str(r.project_id) for r in await rows(api.settings)} == {project["id"]}

        db = Database.from_settings(api.settings)
        forges = ForgeFactory(api.settings, Credentials.from_settings(api.settings))
        updates = ForgeUpdates(db, forges)
        try:
            while await service.process_next(db, api.settings, permission=ForgePermissions(forges)):
                pass
            async with db.session() as session:
                (pipeline,) = (await session.scalars(select(Pipeline))).all()
            await updates(pipeline.id)
            await updates.drain()
        finally:
            await updates.aclose()
            await db.dispose()

        results = [r.result for r in await rows(api.settings)]
        assert results[0]["pipeline_created"] is True and pipeline.commit_sha == sha
        assert results[1]["refused"] == "mallory has no write access to acme/platform/api"
        assert "refused" not in results[2] and results[2]["pipeline"] == str(pipeline.id)
        member = "/api/v4/projects/acme%2Fplatform%2Fapi/members/all/"
        assert [r.path for r in fake.matching("GET", member)] == [f"{member}8", f"{member}7"]
        statuses = fake.matching("POST", "/statuses/")
        assert statuses and {r.path for r in statuses} == {f"/api/v4/projects/acme%2Fplatform%2Fapi/statuses/{sha}"}
        assert {s["sha"] for s in fake.state.statuses} == {sha}
