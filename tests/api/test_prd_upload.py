"""POST /api/projects/{id}/prd with a Word file, and what a second upload of the same PRD does."""

from __future__ import annotations

from pathlib import Path

from taskmaster.auth.schemas import Role
from tests.api.conftest import Api

DOCX = Path(__file__).parents[1] / "tasks" / "prds" / "warehouse-returns.docx"


def test_a_docx_prd_is_planned_and_a_second_upload_needs_replace_or_append(api: Api) -> None:
    with api.client(Role.admin) as http:
        project = http.post("/api/projects", json={"name": "returns", "repository": "/r"}).json()["id"]
    upload = {"file": ("returns.docx", DOCX.read_bytes(), "application/octet-stream")}
    with api.client(Role.developer) as http:
        first = http.post(f"/api/projects/{project}/prd", files=upload)
        assert first.status_code == 201, first.text
        assert first.json()["created"] == 6
        again = http.post(f"/api/projects/{project}/prd", files=upload)
        assert again.status_code == 409 and "already parsed" in again.json()["detail"]
        appended = http.post(f"/api/projects/{project}/prd", files=upload, data={"append": "true"})
        assert appended.status_code == 201 and appended.json()["first_number"] == 7
        replaced = http.post(f"/api/projects/{project}/prd", files=upload, data={"replace": "true"})
        assert replaced.status_code == 201 and replaced.json()["replaced"] == 12
        odt = http.post(f"/api/projects/{project}/prd", files={"file": ("prd.odt", b"PK", "application/zip")})
        assert odt.status_code == 422 and "cannot read .odt files" in odt.json()["detail"]
