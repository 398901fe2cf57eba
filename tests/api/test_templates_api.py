"""/api/templates: viewers read the seeded templates and their versions; admins add a version (refused with a 422
naming the line when it does not parse) and activate an older one; the prompt then renders from the active one."""

from __future__ import annotations

import pytest

from taskmaster.auth.schemas import Role
from taskmaster.db.session import Database
from taskmaster.templates.render import render
from taskmaster.templates.syntax import default_names, default_text
from tests.api.conftest import Api


async def test_viewers_read_admins_add_and_activate_versions(api: Api) -> None:
    with api.client(Role.viewer) as viewer, api.client(Role.admin) as admin, api.client(Role.developer) as dev:
        listed = viewer.get("/api/templates").json()
        assert {t["name"]: (t["active_version"], t["versions"]) for t in listed} == {
            name: (1, 1) for name in default_names()
        }
        detail = viewer.get("/api/templates/task.expand").json()
        assert [v["content"] for v in detail["versions"]] == [default_text("task.expand")]

        new = {"content": "Split {{ title }} into {{ num }} parts."}
        assert viewer.post("/api/templates/task.expand/versions", json=new).status_code == 403
        assert dev.post("/api/templates/task.expand/versions", json=new).status_code == 403
        added = admin.post("/api/templates/task.expand/versions", json=new)
        assert added.status_code == 201, added.text
        assert (added.json()["version"], added.json()["is_active"]) == (2, True)

        back = admin.post("/api/templates/task.expand/activate", json={"version": 1})
        assert back.status_code == 200 and back.json()["version"] == 1
        detail = viewer.get("/api/templates/task.expand").json()
        assert detail["active_version"] == 1
        assert [(v["version"], v["is_active"]) for v in detail["versions"]] == [(1, True), (2, False)]

    db = Database.from_settings(api.settings)
    try:
        async with db.transaction() as session:
            rendered = await render(session, "task.expand", {
                "title": "t", "description": "d", "details": "x", "test_strategy": "y", "num": 2, "context": "",
            })  # fmt: skip
    finally:
        await db.dispose()
    assert rendered.ref == "task.expand@1" and rendered.text.startswith("Break this task into 2 subtasks")


@pytest.mark.parametrize(
    ("content", "complaint"),
    [
        ("Line one\n{% for x in %}\n", "line 2"),
        ("ok\n\n{{ title }\n", "line 3: unexpected '}'"),
    ],
)
def test_a_version_that_does_not_parse_is_a_422_naming_the_line_and_nothing_is_stored(
    api: Api, content: str, complaint: str
) -> None:
    with api.client(Role.admin) as admin:
        answer = admin.post("/api/templates/prd.parse/versions", json={"content": content})
        assert answer.status_code == 422, answer.text
        assert complaint in answer.json()["detail"] and "'prd.parse'" in answer.json()["detail"]
        assert admin.get("/api/templates/prd.parse").json()["active_version"] == 1
        assert len(admin.get("/api/templates/prd.parse").json()["versions"]) == 1


def test_unknown_templates_and_versions_are_404_and_bad_bodies_422(api: Api) -> None:
    with api.client(Role.admin) as admin:
        assert admin.get("/api/templates/no.such").status_code == 404
        assert admin.post("/api/templates/no.such/versions", json={"content": "x"}).status_code == 404
        assert admin.post("/api/templates/prd.parse/activate", json={"version": 9}).status_code == 404
        assert admin.post("/api/templates/prd.parse/activate", json={"version": 0}).status_code == 422
        assert admin.post("/api/templates/prd.parse/versions", json={"content": ""}).status_code == 422
    with api.client() as anonymous:
        assert anonymous.get("/api/templates").status_code == 401


def test_odd_names_and_huge_versions_are_404_or_422_never_500(api: Api) -> None:
    with api.client(Role.admin) as admin:
        assert admin.get("/api/templates/%00").status_code == 422  # the request guard refuses NUL in a path
        for name in ("D%C2%81%C3%9B", "a" * 300, "..%2F..%2Fetc", "-x"):
            assert admin.get(f"/api/templates/{name}").status_code == 404
            assert admin.post(f"/api/templates/{name}/versions", json={"content": "x"}).status_code == 404
            assert admin.post(f"/api/templates/{name}/activate", json={"version": 1}).status_code == 404
        assert admin.post("/api/templates/prd.parse/activate", json={"version": 3090240666}).status_code == 422
