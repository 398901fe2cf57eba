"""Task, webhook and settings pages over HTTP."""

from __future__ import annotations

import re
import uuid

from taskmaster.auth.schemas import Role
from taskmaster.config import Settings
from taskmaster.db.models import WebhookDelivery
from taskmaster.db.session import Database
from tests.web.conftest import Dashboard, add_project

PRD = """# Notes app

## Requirements
- R1: Users can sign up with an email address.
- R2: Users can write notes. Depends on R1.
- R3: Users can share a note with another user. Depends on R2.
"""


def _csrf(page: str) -> str:
    found = re.search(r'name="csrf_token" value="([^"]+)"', page) or re.search(r'"X-CSRF-Token": "([^"]+)"', page)
    assert found is not None
    return found.group(1)


async def test_a_prd_uploaded_on_the_tasks_page_becomes_tasks_drawn_as_a_graph(
    dashboard: Dashboard, settings: Settings
) -> None:
    await add_project(settings, "notes")
    with dashboard.signed_in(Role.developer) as client:
        page = client.get("/tasks?project=notes").text
        assert "No tasks yet" in page
        answer = client.post(
            "/tasks/prd",
            data={"csrf_token": _csrf(page), "project": "notes", "provider": "offline"},
            files={"file": ("prd.md", PRD.encode(), "text/markdown")},
        )
        assert answer.status_code == 303, answer.text
        page = client.get("/tasks?project=notes").text
    assert page.count('<tr id="task-') >= 3
    assert "<svg" in page and "Task dependencies" in page
    assert 'class="node s-ready' in page and "s-blocked-by-deps" in page
    assert "critical" in page  # the chain sign up -> write -> share is the critical path


async def test_a_task_page_shows_its_dependencies_and_changes_status_with_csrf(
    dashboard: Dashboard, settings: Settings
) -> None:
    await add_project(settings, "notes")
    with dashboard.signed_in(Role.developer) as client:
        page = client.get("/tasks?project=notes").text
        client.post(
            "/tasks/prd",
            data={"csrf_token": _csrf(page), "project": "notes"},
            files={"file": ("prd.md", PRD.encode(), "text/markdown")},
        )
        task = client.get("/tasks/notes/2").text
        assert "Depends on" in task and "/tasks/notes/1" in task
        assert client.post("/tasks/notes/1/status", data={"status": "done"}).status_code == 403
        changed = client.post("/tasks/notes/1/status", data={"status": "done", "csrf_token": _csrf(task)})
        assert changed.status_code == 303
        assert 'class="status s-done"' in client.get("/tasks/notes/1").text
        assert (
            client.post("/tasks/notes/1/status", data={"status": "bogus", "csrf_token": _csrf(task)}).status_code == 422
        )


async def _delivery(settings: Settings, project_id: uuid.UUID) -> uuid.UUID:
    db = Database.from_settings(settings)
    try:
        async with db.transaction() as session:
            row = WebhookDelivery(
                provider="github", hook_id="1", delivery_id="d-1", event="pull_request", action="opened",
                project_id=project_id, status="failed", attempts=5, error="boom",
                headers={"X-GitHub-Event": "pull_request", "X-Hub-Signature-256": "sha256=abc"},
                body=b'{"action": "opened", "title": "<b>x</b>"}',
            )  # fmt: skip
            session.add(row)
            await session.flush()
            return row.id
    finally:
        await db.dispose()


async def test_a_delivery_page_masks_signatures_and_an_admin_redelivers_it(
    dashboard: Dashboard, settings: Settings
) -> None:
    project = await add_project(settings, "hooks")
    delivery = await _delivery(settings, project)
    with dashboard.signed_in(Role.admin) as admin:
        listing = admin.get("/webhooks?status=failed").text
        assert f"/webhooks/{delivery}" in listing
        page = admin.get(f"/webhooks/{delivery}").text
        assert "sha256=abc" not in page and "••••••" in page
        assert "&lt;b&gt;x&lt;/b&gt;" in page
        done = admin.post(f"/webhooks/{delivery}/redeliver", data={"csrf_token": _csrf(page)})
        assert done.status_code == 303
        assert 'class="status s-received"' in admin.get(f"/webhooks/{delivery}").text
    with dashboard.signed_in(Role.developer) as developer:
        page = developer.get(f"/webhooks/{delivery}").text
        assert 'id="redeliver"' not in page
        assert developer.post(f"/webhooks/{delivery}/redeliver", data={"csrf_token": _csrf(page)}).status_code == 403


async def test_an_admin_creates_a_token_shown_once_and_revokes_it(dashboard: Dashboard) -> None:
    with dashboard.signed_in(Role.admin) as admin:
        page = admin.get("/settings").text
        made = admin.post("/settings/tokens", data={"csrf_token": _csrf(page), "name": "ci", "role": "viewer"})
        assert made.status_code == 200
        token = re.search(r'<code id="new-token">(tm_[^<]+)</code>', made.text)
        assert token is not None
        with dashboard.client() as script:
            script.headers["Authorization"] = f"Bearer {token.group(1)}"
            assert script.get("/").status_code == 200
        rows = re.findall(r"<td>ci</td>.*?/settings/tokens/([0-9a-f-]+)/revoke", made.text, re.S)
        assert rows
        revoked = admin.post(f"/settings/tokens/{rows[0]}/revoke", data={"csrf_token": _csrf(page)})
        assert revoked.status_code == 303
        with dashboard.client() as script:
            script.headers["Authorization"] = f"Bearer {token.group(1)}"
            answer = script.get("/")
        assert answer.status_code == 401 and "revoked" in answer.text
    with dashboard.signed_in(Role.viewer) as viewer:
        page = viewer.get("/settings").text
        assert "API tokens" not in page and "Prompt templates" in page


async def test_an_agent_session_shows_its_transcript_escaped_and_refreshes_while_running(
    dashboard: Dashboard, settings: Settings
) -> None:
    from taskmaster.core.clock import utcnow
    from taskmaster.db.models import AgentSession

    db = Database.from_settings(settings)
    async with db.transaction() as session:
        row = AgentSession(
            agent_type="claude", provider="agentapi", status="running", started_at=utcnow(),
            config={"messages": [
                {"id": 0, "role": "user", "content": "Fix the <b>bug</b>", "time": "2026-12-04T10:00:00Z"},
                {"id": 1, "role": "agent", "content": "Done: edited app.py", "time": "2026-12-04T10:00:05Z"},
            ]},
        )  # fmt: skip
        session.add(row)
        await session.flush()
        agent_id = row.id
    await db.dispose()
    with dashboard.client(Role.viewer) as client:
        listing = client.get("/agents").text
        assert f"/agents/{agent_id}" in listing
        page = client.get(f"/agents/{agent_id}").text
        assert "Fix the &lt;b&gt;bug&lt;/b&gt;" in page and "Done: edited app.py" in page
        assert 'hx-trigger="every 2s"' in page
        fragment = client.get(f"/agents/{agent_id}", headers={"HX-Request": "true"}).text
        assert fragment.lstrip().startswith('<section id="transcript"')
        assert client.get(f"/agents/{uuid.uuid4()}").status_code == 404


def test_the_first_run_button_makes_the_demo_and_opens_its_pipeline(dashboard: Dashboard) -> None:
    with dashboard.signed_in(Role.developer) as client:
        page = client.get("/").text
        assert 'id="demo"' in page
        made = client.post("/demo", data={"csrf_token": _csrf(page)})
        assert made.status_code == 303 and made.headers["location"].startswith("/pipelines/")
        pipeline = client.get(made.headers["location"]).text
        assert "demo" in pipeline and "compile" in pipeline and "test" in pipeline
        assert client.get("/tasks?project=demo").text.count('<tr id="task-') == 4
        again = client.post("/demo", data={"csrf_token": _csrf(page)})
        assert again.status_code == 409 and "already exists" in again.text


async def test_an_admin_changes_project_settings_in_the_browser_form_validated_as_the_cli(
    dashboard: Dashboard, settings: Settings
) -> None:
    from taskmaster.projects import settings as project_settings

    project = await add_project(settings, "tuned")
    with dashboard.signed_in(Role.admin) as admin:
        page = admin.get("/settings").text
        assert 'name="review.fail_on" value="major"' in page
        form = {
            "csrf_token": _csrf(page),
            "review.fail_on": "blocker",
            "codegen.max_parallel": "4",
            "limits.memory": "",
        }
        saved = admin.post("/settings/projects/tuned", data=form)
        assert saved.status_code == 303, saved.text
        refused = admin.post("/settings/projects/tuned", data={"csrf_token": _csrf(page), "recovery.mode": "yolo"})
        assert refused.status_code == 422 and "recovery.mode" in refused.text
    with dashboard.signed_in(Role.developer) as developer:
        page = developer.get("/settings").text
        assert 'id="save-tuned"' not in page and "blocker" in page
        assert developer.post("/settings/projects/tuned", data={"csrf_token": _csrf(page)}).status_code == 403
    db = Database.from_settings(settings)
    async with db.autocommit_session() as session:
        from taskmaster.db.models import Project

        stored = project_settings.load((await session.get(Project, project)).settings)  # type: ignore[union-attr]
    await db.dispose()
    assert (stored.review.fail_on, stored.codegen.max_parallel, stored.recovery.mode) == ("blocker", 4, "suggest")


async def test_an_admin_adds_a_template_version_and_activates_an_older_one(
    dashboard: Dashboard, settings: Settings
) -> None:
    from taskmaster.templates import service as templates

    # A template of the team's own: the shipped ones (review.pr, …) are already at version 1, seeded by migration.

    db = Database.from_settings(settings)
    async with db.transaction() as session:
        await templates.add_version(session, "team.review", "Review {{ diff }}")
    await db.dispose()
    with dashboard.signed_in(Role.admin) as admin:
        listing = admin.get("/settings").text
        assert "/settings/templates/team.review/1" in listing
        page = admin.get("/settings/templates/team.review/1").text
        added = admin.post(
            "/settings/templates/team.review", data={"csrf_token": _csrf(page), "content": "Review <b>{{ diff }}</b>"}
        )
        assert added.status_code == 303 and added.headers["location"] == "/settings/templates/team.review/2"
        second = admin.get("/settings/templates/team.review/2").text
        assert "version 2 · active" in second and "&lt;b&gt;" in second
        activated = admin.post("/settings/templates/team.review/1/activate", data={"csrf_token": _csrf(second)})
        assert activated.status_code == 303
        assert "version 1 · active" in admin.get("/settings/templates/team.review/1").text
        assert admin.get("/settings/templates/team.review/9").status_code == 404
    db = Database.from_settings(settings)
    async with db.autocommit_session() as session:
        active = await templates.active_version(session, "team.review")
        assert active is not None
    await db.dispose()
    assert (active.version, active.content) == (1, "Review {{ diff }}")
