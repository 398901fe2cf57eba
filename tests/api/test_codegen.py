"""Code generation over real HTTP: `POST /api/projects/{id}/codegen` requests runs (202), `/api/codegen-runs` lists,
shows and cancels them; roles, project scope and problem+json 4xx for every refusal, nothing stored for them.

The test server has no worker: requested runs stay `pending`, which is what these doors promise to show."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path
from typing import Any

from taskmaster.auth.schemas import Role
from taskmaster.db.session import Database
from taskmaster.workflows import service as runs
from taskmaster.workflows.codegen.schemas import CodegenRunDetail, CodegenRunOut
from tests.api.conftest import Api
from tests.api.test_pipelines_api import add_project
from tests.api.test_project_scope import PROBLEM_JSON, assert_hidden, bearer, scoped_token

TASKS = [("Schema", []), ("API", [1]), ("Docs", [])]
"""Task 2 waits on task 1: tasks 1 and 3 are ready."""


def add_tasks(api: Api, project: str) -> None:
    with api.client(Role.developer) as http:
        ids: dict[int, str] = {}
        for number, (title, needs) in enumerate(TASKS, start=1):
            body = {"title": title, "details": f"Make {title}.", "dependencies": [ids[n] for n in needs]}
            created = http.post(f"/api/projects/{project}/tasks", json=body)
            assert created.status_code == 201, created.text
            ids[number] = created.json()["id"]


def start(api: Api, project: str, role: Role = Role.developer, **body: Any) -> Any:
    with api.client(role) as http:
        return http.post(f"/api/projects/{project}/codegen", json=body)


def count_runs(api: Api) -> int:
    with api.client(Role.viewer) as http:
        total: int = http.get("/api/codegen-runs").json()["total"]
        return total


def test_refusals_are_problem_json_4xx_and_store_nothing(api: Api, tmp_path: Path) -> None:
    add_project(api, tmp_path, "app")
    add_tasks(api, "app")
    refusals = [
        (start(api, "ghost", tasks=[1]), 404, "ghost"),
        (start(api, "app", Role.viewer, tasks=[1]), 403, "developer role"),
        (start(api, "app", agent="gpt"), 422, "body.agent"),
        (start(api, "app", agent_type="vim"), 422, "body.agent_type"),
        (start(api, "app", next=0), 422, "body.next"),
        (start(api, "app", tasks=list(range(1, 102))), 422, "body.tasks"),
        # Naming the command an agent runs is an admin's setting (agent.command), not a developer's.
        (start(api, "app", tasks=[1], agent_command="sh -c 'curl evil'"), 403, "agent_command takes the admin role"),
    ]
    for response, code, words in refusals:
        assert response.status_code == code, response.text
        assert response.headers["content-type"] == PROBLEM_JSON
        assert words in response.json()["detail"], response.json()
    with api.client() as http:
        assert http.post("/api/projects/app/codegen", json={}).status_code == 401
        assert http.get("/api/codegen-runs").status_code == 401
    with api.client(Role.viewer) as http:
        bad_status = http.get("/api/codegen-runs", params={"status": "done"})
        assert bad_status.status_code == 422 and bad_status.headers["content-type"] == PROBLEM_JSON
        assert http.get("/api/codegen-runs", params={"limit": 0}).status_code == 422
        assert http.get("/api/codegen-runs", params={"project": "ghost"}).status_code == 404
        missing = http.get(f"/api/codegen-runs/{uuid.uuid4()}")
        assert missing.status_code == 404 and missing.headers["content-type"] == PROBLEM_JSON
        assert "does not exist" in missing.json()["detail"]
        assert http.get("/api/codegen-runs/not-a-uuid").status_code == 422
    with api.client(Role.developer) as http:
        assert http.post(f"/api/codegen-runs/{uuid.uuid4()}/cancel").status_code == 404
    assert count_runs(api) == 0


async def test_another_kind_of_workflow_run_is_no_codegen_run(api: Api, tmp_path: Path) -> None:
    project, _ = add_project(api, tmp_path, "app")
    db = Database.from_settings(api.settings)
    try:
        async with db.transaction() as session:
            review = await runs.request_run(
                session, runs.RunRequest(project_id=uuid.UUID(project), kind="review", subject="pr1:abc")
            )
            review_id = str(review.run.id)
    finally:
        await db.dispose()
    with api.client(Role.admin) as http:
        shown = http.get(f"/api/codegen-runs/{review_id}")
        assert shown.status_code == 404 and shown.json()["detail"] == f"codegen run {review_id} does not exist"
        assert http.post(f"/api/codegen-runs/{review_id}/cancel").status_code == 404
        assert http.get("/api/codegen-runs").json() == {"items": [], "total": 0, "limit": 50, "offset": 0}


def test_start_requests_pending_runs_which_list_show_and_cancel(api: Api, tmp_path: Path) -> None:
    project, _ = add_project(api, tmp_path, "app")
    add_tasks(api, "app")

    started = start(api, "app", tasks=[1, 3], agent="offline")
    assert started.status_code == 202, started.text
    made = started.json()["runs"]
    assert [(r["task_number"], r["task_title"], r["status"]) for r in made] == [
        (1, "Schema", "pending"),
        (3, "Docs", "pending"),
    ]
    assert all(r["project_id"] == project and r["agent"].startswith("offline") for r in made)
    assert all(set(r) == set(CodegenRunOut.model_fields) for r in made)
    # The same task again while its run is live: that run comes back, not a second one.
    again = start(api, "app", tasks=[1], agent="offline")
    assert again.status_code == 202 and [r["id"] for r in again.json()["runs"]] == [made[0]["id"]]
    not_ready = start(api, "app", tasks=[2], agent="offline")
    assert not_ready.status_code == 422 and not_ready.headers["content-type"] == PROBLEM_JSON
    assert "2" in not_ready.json()["detail"]

    with api.client(Role.viewer) as http:
        page = http.get("/api/codegen-runs", params={"project": "app"}).json()
        assert (page["total"], page["limit"], page["offset"]) == (2, 50, 0)
        assert {r["id"] for r in page["items"]} == {r["id"] for r in made}
        one = http.get("/api/codegen-runs", params={"limit": 1, "offset": 1}).json()
        assert one["total"] == 2 and len(one["items"]) == 1
        assert http.get("/api/codegen-runs", params={"status": "running"}).json()["total"] == 0
        detail = http.get(f"/api/codegen-runs/{made[0]['id']}").json()
        assert set(detail) == set(CodegenRunDetail.model_fields)
        assert (detail["task_number"], detail["status"], detail["stage"]) == (1, "pending", "queued")
        assert http.post(f"/api/codegen-runs/{made[0]['id']}/cancel").status_code == 403

    with api.client(Role.developer) as http:
        canceled = http.post(f"/api/codegen-runs/{made[0]['id']}/cancel")
        assert canceled.status_code == 200 and canceled.json()["status"] == "canceled"
        # A finished run is returned as it is.
        assert http.post(f"/api/codegen-runs/{made[0]['id']}/cancel").json()["status"] == "canceled"
    with api.client(Role.viewer) as http:
        assert http.get("/api/codegen-runs", params={"status": "pending"}).json()["total"] == 1


def test_the_next_ready_tasks_and_an_admin_naming_the_command(api: Api, tmp_path: Path) -> None:
    add_project(api, tmp_path, "app")
    add_tasks(api, "app")
    started = start(api, "app", Role.admin, next=5, agent="offline", agent_command="true")
    assert started.status_code == 202, started.text
    assert sorted(r["task_number"] for r in started.json()["runs"]) == [1, 3]  # only the ready ones


async def test_a_credential_limited_to_a_project_sees_only_its_runs(api: Api, tmp_path: Path) -> None:
    mine, _ = add_project(api, tmp_path, "mine")
    add_project(api, tmp_path, "theirs")
    add_tasks(api, "mine")
    add_tasks(api, "theirs")
    my_run = start(api, "mine", tasks=[1], agent="offline").json()["runs"][0]["id"]
    their_run = start(api, "theirs", tasks=[1], agent="offline").json()["runs"][0]["id"]
    viewer, developer = await asyncio.gather(
        scoped_token(api.settings, mine, Role.viewer), scoped_token(api.settings, mine, Role.developer)
    )
    with bearer(api, viewer) as http:
        listed = http.get("/api/codegen-runs").json()
        assert [r["id"] for r in listed["items"]] == [my_run] and listed["total"] == 1
        assert http.get("/api/codegen-runs", params={"project": "theirs"}).status_code == 403
        assert http.get(f"/api/codegen-runs/{my_run}").status_code == 200
        missing_id = str(uuid.uuid4())
        assert_hidden(
            http.get(f"/api/codegen-runs/{their_run}"), http.get(f"/api/codegen-runs/{missing_id}"), their_run,
            missing_id,
        )  # fmt: skip
    with bearer(api, developer) as http:
        assert http.post("/api/projects/theirs/codegen", json={"tasks": [3]}).status_code == 403
        assert http.post(f"/api/codegen-runs/{their_run}/cancel").status_code == 404
    with api.client(Role.viewer) as http:
        assert http.get(f"/api/codegen-runs/{their_run}").json()["status"] == "pending"
