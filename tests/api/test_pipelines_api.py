"""/api/pipelines over real HTTP: list, show, status, logs as Server-Sent Events (complete, resumed, followed),
create from a local repository, retry and cancel, with roles and problem+json; pipelines run by the real engine."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from taskmaster.auth.schemas import Role
from taskmaster.config.settings import WorkspaceSettings
from taskmaster.db.session import Database
from taskmaster.pipelines.engine import PipelineEngine
from taskmaster.pipelines.states import PipelineStatus
from taskmaster.workspaces.git_cache import MirrorCache
from tests.api.conftest import Api
from tests.support import commit, make_pipeline_repo
from tests.support.pipelines import FAST

TWO_STEPS = """\
steps:
  greet: {run: "echo one; sleep 0.6; echo two"}
  flaky:
    run: 'echo try $TASKMASTER_ATTEMPT; test "$TASKMASTER_ATTEMPT" -ge 2 || exit 75'
    needs: [greet]
    retry_on: [75]
"""
SUMMARY_FIELDS = {
    "id", "project_id", "pipeline_type", "status", "failure_reason", "branch_name", "commit_sha", "pull_request_id",
    "trigger_event", "superseded_by", "created_at", "started_at", "finished_at", "duration_ms", "error_message",
    "worker_id", "trial_of", "review_issue_url",
}  # fmt: skip


@dataclass
class Event:
    data: str
    id: str | None = None
    event: str = "message"

    @property
    def json(self) -> Any:
        return json.loads(self.data)


def parse_sse(lines: Iterable[str]) -> Iterator[Event]:
    """Events from the lines of a `text/event-stream` body (comments, i.e. pings, are dropped)."""
    fields: dict[str, list[str]] = {}
    for line in lines:
        if not line:
            if "data" in fields:
                ids = fields.get("id")
                yield Event("\n".join(fields["data"]), ids[-1] if ids else None, fields.get("event", ["message"])[-1])
            fields = {}
            continue
        if line.startswith(":"):
            continue
        name, _, value = line.partition(":")
        fields.setdefault(name, []).append(value.removeprefix(" "))


def read_events(api: Api, pipeline_id: str, **params: Any) -> list[Event]:
    headers = params.pop("headers", {})
    with api.client(Role.viewer) as http, http.stream(
        "GET", f"/api/pipelines/{pipeline_id}/logs", params=params, headers=headers
    ) as response:  # fmt: skip
        assert response.status_code == 200, response.read()
        assert response.headers["content-type"].startswith("text/event-stream")
        return list(parse_sse(response.iter_lines()))


def add_project(api: Api, tmp_path: Path, name: str, definition: str | None = TWO_STEPS) -> tuple[str, str]:
    """A local repository with `definition` and its project; returns (project id, head sha)."""
    repo = tmp_path / name
    sha = make_pipeline_repo(repo, definition)
    with api.client(Role.admin) as http:
        response = http.post("/api/projects", json={"name": name, "repository": str(repo)})
        assert response.status_code == 201, response.text
        return str(response.json()["id"]), sha


def create(api: Api, project: str, ref: str = "main", **extra: Any) -> dict[str, Any]:
    with api.client(Role.developer) as http:
        response = http.post("/api/pipelines", json={"project": project, "ref": ref, **extra})
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


async def run(api: Api, pipeline_id: str, reachable_dir: Path) -> PipelineStatus:
    """Run the pipeline with the real engine in this process (the test server has no worker)."""
    settings = api.settings.model_copy(update={"workspace": WorkspaceSettings(root=reachable_dir / "workspaces")})
    db = Database.from_settings(settings)
    try:
        mirror = MirrorCache(reachable_dir / "mirrors", max_bytes=1 << 30)
        engine = PipelineEngine(db, settings, mirror, backoff=FAST, poll_seconds=0.1, grace=1.0)
        return await engine.run(uuid.UUID(pipeline_id))
    finally:
        await db.dispose()


def by_step(events: list[Event]) -> dict[str, str]:
    text: dict[str, str] = {}
    for event in events:
        text[event.json["step"]] = text.get(event.json["step"], "") + event.json["content"]
    return text


def test_create_plans_a_pending_run_of_a_local_ref_and_refuses_unknown_refs(api: Api, tmp_path: Path) -> None:
    project, sha = add_project(api, tmp_path, "app")
    created = create(api, "app")
    assert created["status"] == "pending" and created["commit_sha"] == sha and created["branch_name"] == "main"
    assert created["project_id"] == project and created["pipeline_type"] == "validation"
    assert [(s["name"], s["status"], s["needs"]) for s in created["steps"]] == [
        ("greet", "pending", []), ("flaky", "waiting", ["greet"]),
    ]  # fmt: skip
    by_sha = create(api, project, ref=sha[:10])
    assert by_sha["commit_sha"] == sha and by_sha["branch_name"] is None
    with api.client(Role.developer) as http:
        unknown = http.post("/api/pipelines", json={"project": "app", "ref": "no-such-branch"})
        assert unknown.status_code == 404 and unknown.headers["content-type"] == "application/problem+json"
        assert "no-such-branch" in unknown.json()["detail"]
        assert http.post("/api/pipelines", json={"project": "ghost", "ref": "main"}).status_code == 404
        bad_type = http.post("/api/pipelines", json={"project": "app", "ref": "main", "type": "deploy"})
        assert bad_type.status_code == 422 and "body.type" in bad_type.json()["detail"]
    with api.client(Role.viewer) as http:
        denied = http.post("/api/pipelines", json={"project": "app", "ref": "main"})
        assert denied.status_code == 403 and denied.headers["content-type"] == "application/problem+json"
    with api.client() as http:
        assert http.post("/api/pipelines", json={"project": "app", "ref": "main"}).status_code == 401
        assert http.get("/api/pipelines").status_code == 401
    with api.client(Role.viewer) as http:
        assert http.get("/api/pipelines").json()["total"] == 2  # nothing was stored for the refused requests


def test_an_invalid_pipeline_file_gives_an_error_pipeline_with_its_problems(api: Api, tmp_path: Path) -> None:
    add_project(api, tmp_path, "broken", definition="steps:\n  lint: {run: 3, nope: true}\n")
    created = create(api, "broken")
    assert created["status"] == "error" and created["failure_reason"] == "code"
    assert created["steps"] == [] and ".taskmaster.yml:2: steps.lint.run" in created["error_message"]


def test_list_is_newest_first_filters_by_project_status_and_type_and_paginates(api: Api, tmp_path: Path) -> None:
    first, _ = add_project(api, tmp_path, "one")
    add_project(api, tmp_path, "two")
    made = [create(api, "one"), create(api, "one", type="push"), create(api, "two"), create(api, "one")]
    with api.client(Role.developer) as http:
        assert http.post(f"/api/pipelines/{made[0]['id']}/cancel").status_code == 200
    with api.client(Role.viewer) as http:
        page = http.get("/api/pipelines").json()
        assert page["total"] == 4 and (page["limit"], page["offset"]) == (50, 0)
        assert [p["id"] for p in page["items"]] == [p["id"] for p in reversed(made)]
        assert set(page["items"][0]) == SUMMARY_FIELDS
        window = http.get("/api/pipelines", params={"limit": 2, "offset": 1}).json()
        assert window["total"] == 4 and [p["id"] for p in window["items"]] == [made[2]["id"], made[1]["id"]]
        one = http.get("/api/pipelines", params={"project": "one"}).json()
        assert one["total"] == 3 and {p["project_id"] for p in one["items"]} == {first}
        assert http.get("/api/pipelines", params={"project": first}).json()["total"] == 3
        pushes = http.get("/api/pipelines", params={"type": "push"}).json()["items"]
        assert [p["id"] for p in pushes] == [made[1]["id"]]
        canceled = http.get("/api/pipelines", params={"status": "canceled"}).json()["items"]
        assert [p["id"] for p in canceled] == [made[0]["id"]]
        combined = http.get("/api/pipelines", params={"project": "one", "status": "pending", "type": "validation"})
        assert [p["id"] for p in combined.json()["items"]] == [made[3]["id"]]
        bad = http.get("/api/pipelines", params={"status": "sleeping"})
        assert bad.status_code == 422 and bad.headers["content-type"] == "application/problem+json"
        assert http.get("/api/pipelines", params={"project": "nowhere"}).status_code == 404
        assert http.get("/api/pipelines", params={"limit": 0}).status_code == 422


async def test_show_status_and_logs_of_a_finished_pipeline_and_resuming_gives_only_the_rest(
    api: Api, tmp_path: Path, reachable_dir: Path
) -> None:
    add_project(api, tmp_path, "app")
    pipeline = create(api, "app")["id"]
    assert await run(api, pipeline, reachable_dir) is PipelineStatus.SUCCESS

    with api.client(Role.viewer) as http:
        shown = http.get(f"/api/pipelines/{pipeline}").json()
        assert shown["status"] == "success" and shown["duration_ms"] >= 600 and shown["finished_at"]
        greet, flaky = shown["steps"]
        assert (greet["name"], greet["status"], greet["exit_code"], len(greet["attempts"])) == (
            "greet",
            "success",
            0,
            1,
        )
        assert (flaky["retry_count"], flaky["max_retries"], flaky["type"]) == (1, 3, "run")
        assert [(a["attempt"], a["status"], a["exit_code"], a["failure_reason"]) for a in flaky["attempts"]] == [
            (1, "failed", 75, "code"), (2, "success", 0, None),
        ]  # fmt: skip
        state = http.get(f"/api/pipelines/{pipeline}/status").json()
        assert state == {
            "id": pipeline, "status": "success", "failure_reason": None, "finished": True,
            "steps": {"greet": "success", "flaky": "success"},
        }  # fmt: skip
        missing = http.get(f"/api/pipelines/{uuid.uuid4()}")
        assert missing.status_code == 404 and missing.headers["content-type"] == "application/problem+json"
        assert http.get("/api/pipelines/not-a-uuid").status_code == 422
        text = http.get(f"/api/pipelines/{pipeline}/logs", headers={"Accept": "text/plain"})
        assert text.headers["content-type"].startswith("text/plain")
        assert text.text == "--- greet (attempt 1) ---\none\ntwo\n--- flaky (attempt 1) ---\ntry 1\n" \
            "--- flaky (attempt 2) ---\ntry 2\n"  # fmt: skip

    events = read_events(api, pipeline)
    assert all(e.event == "message" for e in events)
    assert by_step(events) == {"greet": "one\ntwo\n", "flaky": "try 1\ntry 2\n"}
    assert [e.json["step"] for e in events][:2] == ["greet", "greet"]  # the sleep split greet's output in two
    assert [(e.json["attempt"], e.json["offset"]) for e in events if e.json["step"] == "flaky"] == [(1, 0), (2, 6)]
    assert events[-1].id == "greet:8,flaky:12"

    # Resuming from any event's id gives exactly the events after it, whichever way the token arrives.
    for index, event in enumerate(events):
        rest = read_events(api, pipeline, headers={"Last-Event-ID": event.id})
        assert [(e.data, e.id) for e in rest] == [(e.data, e.id) for e in events[index + 1 :]]
    assert read_events(api, pipeline, offset=events[0].id) == events[1:]
    assert read_events(api, pipeline, offset="0") == events

    only_greet = read_events(api, pipeline, step="greet")
    assert [e.id for e in only_greet] == ["4", "8"] and only_greet[0].json == {
        "step": "greet", "attempt": 1, "offset": 0, "content": "one\n",
    }  # fmt: skip
    assert [e.json["content"] for e in read_events(api, pipeline, step="greet", offset="4")] == ["two\n"]
    # The header wins over the query (a browser reconnects with the URL it started from).
    assert read_events(api, pipeline, step="greet", offset="0", headers={"Last-Event-ID": "6"})[0].json == {
        "step": "greet", "attempt": 1, "offset": 6, "content": "o\n",
    }  # fmt: skip
    assert read_events(api, pipeline, step="greet", offset="8") == []

    with api.client(Role.viewer) as http:
        bad = http.get(f"/api/pipelines/{pipeline}/logs", params={"offset": "greet=4"})
        assert bad.status_code == 422 and "resume token" in bad.json()["detail"]
        unknown = http.get(f"/api/pipelines/{pipeline}/logs", params={"step": "deploy"})
        assert unknown.status_code == 404 and "deploy" in unknown.json()["detail"]
    with api.client() as http:
        assert http.get(f"/api/pipelines/{pipeline}/logs").status_code == 401


async def test_following_logs_receives_chunks_written_after_the_request_and_ends_with_an_end_event(
    api: Api, tmp_path: Path, reachable_dir: Path
) -> None:
    add_project(api, tmp_path, "app")
    pipeline = create(api, "app")["id"]
    headers = {"Authorization": f"Bearer {api.tokens[Role.viewer]}"}
    events: list[Event] = []
    async with (
        httpx.AsyncClient(base_url=api.url, headers=headers, timeout=30) as http,
        http.stream("GET", f"/api/pipelines/{pipeline}/logs", params={"follow": "true"}) as response,
    ):
        assert response.status_code == 200
        # The stream is open and the pipeline has not started: every chunk is written from here on.
        runner = asyncio.create_task(run(api, pipeline, reachable_dir))
        lines: list[str] = []
        async for line in response.aiter_lines():
            lines.append(line)
            events = list(parse_sse(lines))
            if events and events[-1].event == "end":
                break
        assert await runner is PipelineStatus.SUCCESS
    *chunks, end = events
    assert end.event == "end" and end.json == {"status": "success", "failure_reason": None}
    assert by_step(chunks) == {"greet": "one\ntwo\n", "flaky": "try 1\ntry 2\n"}
    assert chunks[-1].id == "greet:8,flaky:12"
    # A follower joining after the end gets the stored chunks, then the end at once.
    resume = chunks[1].id
    assert resume is not None
    with api.client(Role.viewer) as client, client.stream(
        "GET", f"/api/pipelines/{pipeline}/logs", params={"follow": "true"}, headers={"Last-Event-ID": resume}
    ) as late:  # fmt: skip
        rest = list(parse_sse(late.iter_lines()))
    assert [e.data for e in rest] == [e.data for e in events[2:]]


def test_cancel_stops_a_live_pipeline_once_then_answers_409(api: Api, tmp_path: Path) -> None:
    add_project(api, tmp_path, "app")
    pipeline = create(api, "app")["id"]
    with api.client(Role.viewer) as http:
        refused = http.post(f"/api/pipelines/{pipeline}/cancel")
        assert refused.status_code == 403
    with api.client(Role.developer) as http:
        canceled = http.post(f"/api/pipelines/{pipeline}/cancel", json={"reason": "wrong branch"})
        assert canceled.status_code == 200, canceled.text
        body = canceled.json()
        assert (body["status"], body["error_message"]) == ("canceled", "wrong branch") and body["finished_at"]
        assert {s["name"]: s["status"] for s in body["steps"]} == {"greet": "pending", "flaky": "waiting"}
        again = http.post(f"/api/pipelines/{pipeline}/cancel")
        assert again.status_code == 409 and again.headers["content-type"] == "application/problem+json"
        assert "canceled" in again.json()["detail"]
        assert http.post(f"/api/pipelines/{uuid.uuid4()}/cancel").status_code == 404
        assert http.get(f"/api/pipelines/{pipeline}/status").json()["finished"] is True
    # Following a finished pipeline's (empty) log ends at once with its status.
    events = read_events(api, pipeline, follow="true")
    assert [(e.event, e.json["status"]) for e in events] == [("end", "canceled")]


async def test_cancel_through_the_api_stops_a_running_engine_and_ends_its_followers(
    api: Api, tmp_path: Path, reachable_dir: Path
) -> None:
    add_project(api, tmp_path, "app", definition='steps:\n  slow: {run: "echo started; sleep 60"}\n')
    pipeline = create(api, "app")["id"]
    runner = asyncio.create_task(run(api, pipeline, reachable_dir))
    headers = {"Authorization": f"Bearer {api.tokens[Role.developer]}"}
    async with httpx.AsyncClient(base_url=api.url, headers=headers, timeout=30) as http:
        for _ in range(100):
            if (await http.get(f"/api/pipelines/{pipeline}/status")).json()["steps"]["slow"] == "running":
                break
            await asyncio.sleep(0.1)
        async with http.stream("GET", f"/api/pipelines/{pipeline}/logs", params={"follow": "true"}) as response:
            lines: list[str] = []
            async for line in response.aiter_lines():
                lines.append(line)
                if line.startswith("data:") and "started" in line:
                    canceled = await http.post(f"/api/pipelines/{pipeline}/cancel")
                    assert canceled.status_code == 200 and canceled.json()["status"] == "canceled"
        events = list(parse_sse(lines))
        assert await asyncio.wait_for(runner, 10) is PipelineStatus.CANCELED
        state = (await http.get(f"/api/pipelines/{pipeline}/status")).json()
    assert events[0].json["content"] == "started\n"
    assert (events[-1].event, events[-1].json["status"]) == ("end", "canceled")
    assert state["steps"] == {"slow": "canceled"} and state["finished"] is True


def test_retry_creates_a_new_pending_pipeline_of_the_same_commit_and_type(api: Api, tmp_path: Path) -> None:
    add_project(api, tmp_path, "app")
    repo = tmp_path / "app"
    source = create(api, "app", type="push")
    with api.client(Role.developer) as http:
        live = http.post(f"/api/pipelines/{source['id']}/retry")
        assert live.status_code == 409 and "pending" in live.json()["detail"]
        assert http.post(f"/api/pipelines/{source['id']}/cancel").status_code == 200
        commit(repo, "later.txt", "a newer commit on main\n")
        retried = http.post(f"/api/pipelines/{source['id']}/retry")
        assert retried.status_code == 201, retried.text
        body = retried.json()
        assert body["id"] != source["id"] and body["status"] == "pending" and body["trigger_event"] == "retry"
        assert (body["commit_sha"], body["pipeline_type"], body["branch_name"], body["project_id"]) == (
            source["commit_sha"], "push", "main", source["project_id"],
        )  # fmt: skip
        assert [s["status"] for s in body["steps"]] == ["pending", "waiting"]
        assert http.post(f"/api/pipelines/{uuid.uuid4()}/retry").status_code == 404
    with api.client(Role.viewer) as http:
        assert http.post(f"/api/pipelines/{source['id']}/retry").status_code == 403
        listed = http.get("/api/pipelines").json()["items"]
        assert [p["id"] for p in listed] == [body["id"], source["id"]]


STEP_RETRY = (
    "steps:\n"
    "  install: {run: 'echo installed > done.txt'}\n"
    "  docs: {run: 'echo docs built'}\n"
    "  test: {run: 'test -f done.txt && test -f fixed.txt', needs: [install]}\n"
    "  report: {run: 'echo reported', needs: [test]}\n"
    "  notify: {run: 'echo failure noted', when: on_failure}\n"
)


async def test_retrying_one_step_reruns_its_path_and_keeps_the_other_successes(
    api: Api, tmp_path: Path, reachable_dir: Path
) -> None:
    _, sha = add_project(api, tmp_path, "app", STEP_RETRY)
    source = create(api, "app")
    assert await run(api, source["id"], reachable_dir) is PipelineStatus.FAILED
    with api.client(Role.developer) as http:
        unknown = http.post(f"/api/pipelines/{source['id']}/retry", json={"step": "nosuch"})
        assert unknown.status_code == 404 and "install, docs, test, report, notify" in unknown.json()["detail"]
        retried = http.post(f"/api/pipelines/{source['id']}/retry", json={"step": "test"})
        assert retried.status_code == 201, retried.text
    body = retried.json()
    steps = {s["name"]: s for s in body["steps"]}
    assert body["commit_sha"] == sha and body["status"] == "pending"
    # docs succeeded and is off test's path: kept; install (needed by test), test, report (needs test) and the
    # on_failure step run again.
    assert steps["docs"]["status"] == "success" and steps["docs"]["attempts"] == []
    assert f"reused from pipeline {source['id']}" in steps["docs"]["error_message"]
    assert {name: steps[name]["status"] for name in ("install", "test", "report", "notify")} == {
        "install": "pending", "test": "waiting", "report": "waiting", "notify": "waiting",
    }  # fmt: skip
    assert await run(api, body["id"], reachable_dir) is PipelineStatus.FAILED  # the commit still lacks fixed.txt
    with api.client(Role.viewer) as http:
        ran = {s["name"]: s for s in http.get(f"/api/pipelines/{body['id']}").json()["steps"]}
    assert [a["attempt"] for a in ran["install"]["attempts"]] == [1] and ran["docs"]["attempts"] == []
    assert ran["test"]["status"] == "failed" and ran["report"]["status"] == "skipped"
