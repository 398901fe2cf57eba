"""/api/projects/{id}/tasks: CRUD, graph edges, ready/next/claim over HTTP, with roles and problem+json."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from taskmaster.auth.schemas import Role
from tests.api.conftest import Api


def _project(api: Api, name: str = "app") -> str:
    with api.client(Role.admin) as http:
        response = http.post("/api/projects", json={"name": name, "repository": f"/{name}"})
        assert response.status_code == 201, response.text
        return str(response.json()["id"])


def test_create_list_update_and_status_through_http(api: Api) -> None:
    project = _project(api)
    with api.client(Role.developer) as http:
        base = f"/api/projects/{project}/tasks"
        first = http.post(base, json={"title": "Schema", "priority": 1}).json()
        second = http.post(base, json={"title": "API", "dependencies": [first["id"]]})
        assert second.status_code == 201
        assert second.json()["dependencies"] == [first["id"]] and second.json()["number"] == 2
        page = http.get(base).json()
        assert page["total"] == 2 and set(page["items"][0]) >= {"id", "number", "title", "status", "dependencies"}
        assert "details" not in page["items"][0]  # summaries unless details=true
        assert "details" in http.get(base, params={"details": True}).json()["items"][0]
        by_name = http.get("/api/projects/app/tasks/1").json()
        assert by_name["id"] == first["id"] and by_name["dependents_count"] == 1
        assert http.patch(f"{base}/2", json={"priority": 2}).json()["priority"] == 2
        assert http.get(f"{base}/next").json()["title"] == "Schema"
        done = http.post(f"{base}/1/status", json={"status": "done"}).json()
        assert [t["status"] for t in done] == ["done"]
        assert http.get(f"{base}/next").json()["title"] == "API"
        cycle = http.post(f"{base}/1/dependencies", json={"depends_on": "2"})
        assert cycle.status_code == 422 and "cycle: #1 -> #2 -> #1" in cycle.json()["detail"]
        bad = http.post(base, json={"title": "x", "priority": 9})
        assert bad.status_code == 422 and "body.priority" in bad.json()["detail"]
        missing = http.get(f"{base}/99")
        assert missing.status_code == 404 and missing.headers["content-type"] == "application/problem+json"
    with api.client(Role.viewer) as http:
        assert http.post(f"/api/projects/{project}/tasks", json={"title": "no"}).status_code == 403


def test_concurrent_claims_over_http_get_distinct_tasks(api: Api) -> None:
    project = _project(api, "agents")
    with api.client(Role.developer) as http:
        for n in range(20):
            assert http.post(f"/api/projects/{project}/tasks", json={"title": f"t{n}"}).status_code == 201

    def claim(n: int) -> int | None:
        with api.client(Role.developer) as http:
            body = http.post(f"/api/projects/{project}/tasks/claim", json={"assignee": f"agent-{n}"}).json()
            return None if body is None else int(body["number"])

    with ThreadPoolExecutor(max_workers=10) as pool:
        numbers = list(pool.map(claim, range(25)))
    assert sorted(n for n in numbers if n is not None) == list(range(1, 21))
    assert numbers.count(None) == 5


def test_prd_upload_makes_the_task_graph(api: Api) -> None:
    project = _project(api, "billing")
    prd = (Path(__file__).parents[2] / "examples" / "prd-saas-billing.md").read_bytes()
    with api.client(Role.developer) as http:
        response = http.post(f"/api/projects/{project}/prd", files={"file": ("billing.md", prd, "text/markdown")})
        assert response.status_code == 201, response.text
        body = response.json()
        assert body["created"] == len(body["tasks"]) > 10
        assert (body["first_number"], body["replaced"]) == (1, 0)
        assert http.get(f"/api/projects/{project}/tasks/validate").json()["ok"] is True
        binary = http.post(f"/api/projects/{project}/prd", files={"file": ("x.md", b"\xff\xfe\x00", "text/plain")})
        assert binary.status_code == 422 and "not UTF-8" in binary.json()["detail"]
        empty = http.post(f"/api/projects/{project}/prd", files={"file": ("x.md", b"  \n", "text/plain")})
        assert empty.status_code == 422 and "no requirements" in empty.json()["detail"]
    with api.client(Role.viewer) as http:
        assert http.post(f"/api/projects/{project}/prd", files={"file": ("b.md", prd)}).status_code == 403
