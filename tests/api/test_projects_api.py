"""/api/projects/{id}/settings: every setting with its default; PATCH by dotted name, validated, admins only."""

from __future__ import annotations

from taskmaster.auth.schemas import Role
from tests.api.conftest import Api


def test_settings_are_read_and_patched_by_dotted_name(api: Api) -> None:
    with api.client(Role.admin) as http:
        created = http.post("/api/projects", json={"name": "tuned", "repository": "/r"})
        assert created.status_code == 201, created.text
        project_id = created.json()["id"]
        assert created.json()["settings"]["review"] == {
            "reviewer": "offline",
            "fail_on": "major",
            "min_confidence": 0.8,
            "allowed": [],
            "skip": None,
            "max_tokens_per_chunk": 12000,
        }

        patched = http.patch(
            f"/api/projects/{project_id}/settings",
            json={"review.fail_on": "minor", "recovery": {"agent": "anthropic", "budget_usd": 2.5}},
        )
        assert patched.status_code == 200, patched.text
        assert patched.json()["review"]["fail_on"] == "minor"
        assert patched.json()["recovery"] == {
            "agent": "anthropic",
            "mode": "suggest",
            "max_rounds": 2,
            "budget_usd": 2.5,
            "daily_budget_usd": 10.0,
            "allow_config_changes": False,
        }

        unknown = http.patch(f"/api/projects/{project_id}/settings", json={"review.failon": "minor"})
        assert unknown.status_code == 422
        assert unknown.headers["content-type"] == "application/problem+json"
        assert "unknown project setting 'review.failon'" in unknown.json()["detail"]
        bad = http.patch(
            f"/api/projects/{project_id}/settings", json={"review.fail_on": "none", "codegen.max_parallel": 0}
        )
        assert bad.status_code == 422
        assert "codegen.max_parallel: Input should be greater than or equal to 1" in bad.json()["detail"]
        empty = http.patch(f"/api/projects/{project_id}/settings", json={})
        assert empty.status_code == 422

        refused = http.post("/api/projects", json={"name": "typo", "repository": "/r", "settings": {"agent.typ": "x"}})
        assert refused.status_code == 422
        assert "unknown project setting 'agent.typ'" in refused.json()["detail"]

    with api.client(Role.viewer) as http:
        shown = http.get(f"/api/projects/{project_id}/settings")
        assert shown.status_code == 200
        assert (shown.json()["review"]["fail_on"], shown.json()["codegen"]["max_parallel"]) == ("minor", 2)
        assert http.patch(f"/api/projects/{project_id}/settings", json={"push_pipelines": True}).status_code == 403
