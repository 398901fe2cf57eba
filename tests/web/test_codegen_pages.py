"""Code-generation pages: ready tasks picked on the tasks page start runs, which are listed, shown and canceled."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import update

from taskmaster.auth.schemas import Role
from taskmaster.config import Settings
from taskmaster.db.models import Project
from taskmaster.db.session import Database
from tests.support.git import make_repo
from tests.web.conftest import Dashboard, add_project
from tests.web.test_more_pages import PRD, _csrf


async def _local_repository(settings: Settings, name: str, path: Path) -> None:
    make_repo(path, commits=1)
    db = Database.from_settings(settings)
    try:
        async with db.transaction() as session:
            await session.execute(update(Project).where(Project.name == name).values(repository=str(path)))
    finally:
        await db.dispose()


async def test_ready_tasks_picked_on_the_tasks_page_start_runs_listed_shown_and_canceled(
    dashboard: Dashboard, settings: Settings, tmp_path: Path
) -> None:
    await add_project(settings, "notes")
    await _local_repository(settings, "notes", tmp_path / "notes")
    with dashboard.signed_in(Role.developer) as client:
        page = client.get("/tasks?project=notes").text
        client.post(
            "/tasks/prd",
            data={"csrf_token": _csrf(page), "project": "notes"},
            files={"file": ("prd.md", PRD.encode(), "text/markdown")},
        )
        page = client.get("/tasks?project=notes").text
        # Only the ready task (1) can be picked; 2 and 3 wait on their dependencies.
        assert 'name="task" value="1"' in page
        assert 'name="task" value="2"' not in page and 'name="task" value="3"' not in page

        refused = client.post("/codegen/start", data={"csrf_token": _csrf(page), "project": "notes", "task": "2"})
        assert refused.status_code == 422 and "2" in refused.text

        started = client.post(
            "/codegen/start", data={"csrf_token": _csrf(page), "project": "notes", "task": "1", "agent": "offline"}
        )
        assert started.status_code == 303
        run_url = started.headers["location"]
        assert run_url.startswith("/codegen/")

        shown = client.get(run_url).text
        assert "Task #1" in shown and "offline" in shown and "s-pending" in shown
        listed = client.get("/codegen?project=notes").text
        assert run_url in listed and "#1 " in listed

        canceled = client.post(f"{run_url}/cancel", data={"csrf_token": _csrf(shown)})
        assert canceled.status_code == 303
        assert "s-canceled" in client.get(run_url).text


def test_a_viewer_sees_runs_but_cannot_start_them(dashboard: Dashboard) -> None:
    with dashboard.signed_in(Role.viewer) as client:
        assert client.get("/codegen").status_code == 200
        page = client.get("/tasks").text
        assert "codegen-form" not in page
        assert client.post("/codegen/start", data={"project": "x", "task": "1"}).status_code == 403
        assert client.get("/codegen?status=bogus").status_code == 422
