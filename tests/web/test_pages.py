"""The dashboard over HTTP: sign-in, sessions and CSRF, roles, scripts with a bearer token, escaping, paging."""

from __future__ import annotations

import re

from taskmaster.auth.schemas import Role
from taskmaster.config import Settings
from tests.web.conftest import Dashboard, add_pipeline, add_project


def test_a_page_without_credentials_redirects_to_the_sign_in_form(dashboard: Dashboard) -> None:
    with dashboard.client() as client:
        answer = client.get("/pipelines?status=failed")
    assert answer.status_code == 303
    assert answer.headers["location"] == "/login?next=/pipelines?status=failed"


def test_signing_in_with_a_token_sets_a_strict_http_only_session_cookie(dashboard: Dashboard) -> None:
    with dashboard.client() as client:
        form = client.get("/login")
        csrf = re.search(r'name="csrf_token" value="([^"]+)"', form.text)
        assert csrf is not None
        answer = client.post(
            "/login", data={"csrf_token": csrf.group(1), "token": dashboard.tokens[Role.viewer], "next": "/pipelines"}
        )
        assert answer.status_code == 303
        assert answer.headers["location"] == "/pipelines"
        cookie = answer.headers["set-cookie"]
        assert "tm_session=" in cookie
        assert "HttpOnly" in cookie
        assert "SameSite=strict" in cookie or "samesite=strict" in cookie.lower()
        page = client.get("/pipelines")
    assert page.status_code == 200
    assert "token:viewer · viewer" in page.text


def test_a_wrong_token_is_refused_on_the_form_with_the_reason(dashboard: Dashboard) -> None:
    with dashboard.client() as client:
        csrf = re.search(r'name="csrf_token" value="([^"]+)"', client.get("/login").text)
        assert csrf is not None
        answer = client.post("/login", data={"csrf_token": csrf.group(1), "token": "tm_nope"})
    assert answer.status_code == 401
    assert "unknown API token" in answer.text
    assert "tm_session" not in answer.headers.get("set-cookie", "")


def test_sign_in_without_the_form_csrf_token_is_refused(dashboard: Dashboard) -> None:
    with dashboard.client() as client:
        answer = client.post("/login", data={"token": dashboard.tokens[Role.admin]})
    assert answer.status_code == 403
    assert "tm_session" not in answer.headers.get("set-cookie", "")


def test_an_open_redirect_after_sign_in_is_not_followed(dashboard: Dashboard) -> None:
    with dashboard.client() as client:
        csrf = re.search(r'name="csrf_token" value="([^"]+)"', client.get("/login").text)
        assert csrf is not None
        answer = client.post(
            "/login",
            data={"csrf_token": csrf.group(1), "token": dashboard.tokens[Role.viewer], "next": "//evil.example/x"},
        )
    assert answer.headers["location"] == "/"


async def test_a_post_without_the_session_csrf_token_is_refused_and_changes_nothing(
    dashboard: Dashboard, settings: Settings
) -> None:
    project = await add_project(settings)
    pipeline = await add_pipeline(settings, project, status="running")
    with dashboard.signed_in(Role.developer) as client:
        refused = client.post(f"/pipelines/{pipeline}/cancel")
        assert refused.status_code == 403
        assert "CSRF" in refused.text
        assert "running" in client.get(f"/pipelines/{pipeline}").text
        page = client.get(f"/pipelines/{pipeline}").text
        csrf = re.search(r'name="csrf_token" value="([^"]+)"', page)
        assert csrf is not None
        done = client.post(f"/pipelines/{pipeline}/cancel", data={"csrf_token": csrf.group(1)})
        assert done.status_code == 303
        assert 'class="status s-canceled"' in client.get(f"/pipelines/{pipeline}").text


async def test_a_viewer_sees_no_write_buttons_and_cannot_post(dashboard: Dashboard, settings: Settings) -> None:
    project = await add_project(settings)
    pipeline = await add_pipeline(settings, project, status="failed")
    with dashboard.signed_in(Role.viewer) as viewer:
        page = viewer.get(f"/pipelines/{pipeline}").text
        assert 'id="retry"' not in page and 'id="cancel"' not in page
        assert "Run a pipeline" not in viewer.get("/pipelines").text
        csrf = re.search(r'"X-CSRF-Token": "([^"]+)"', page)
        assert csrf is not None
        refused = viewer.post(f"/pipelines/{pipeline}/retry", data={"csrf_token": csrf.group(1)})
        assert refused.status_code == 403
        assert "developer role" in refused.text
    with dashboard.signed_in(Role.developer) as developer:
        assert 'id="retry"' in developer.get(f"/pipelines/{pipeline}").text


async def test_pages_answer_a_bearer_token_with_the_same_roles(dashboard: Dashboard, settings: Settings) -> None:
    project = await add_project(settings)
    pipeline = await add_pipeline(settings, project)
    with dashboard.client(Role.viewer) as script:
        assert script.get(f"/pipelines/{pipeline}").status_code == 200
        assert script.post(f"/pipelines/{pipeline}/retry").status_code == 403
    with dashboard.client() as anonymous:
        bad = anonymous.get("/", headers={"Authorization": "Bearer tm_unknown"})
    assert bad.status_code == 401
    assert "unknown API token" in bad.text


async def test_the_pipeline_page_escapes_step_output_and_renders_its_colours(
    dashboard: Dashboard, settings: Settings
) -> None:
    project = await add_project(settings)
    text = "<script>alert(1)</script>\n\x1b[31mred\x1b[0m plain\n"
    pipeline = await add_pipeline(settings, project, steps={"test": ("failed", [], text)})
    with dashboard.client(Role.viewer) as client:
        page = client.get(f"/pipelines/{pipeline}").text
    assert "<script>alert(1)</script>" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert '<span class="fg-red">red</span> plain' in page
    assert "<svg" in page and "Steps and their needs" in page


async def test_a_big_log_shows_its_last_lines_and_loads_earlier_ones_on_demand(
    dashboard: Dashboard, settings: Settings
) -> None:
    project = await add_project(settings)
    text = "".join(f"line {n}\n" for n in range(5000))
    pipeline = await add_pipeline(settings, project, steps={"build": ("success", [], text)})
    with dashboard.client(Role.viewer) as client:
        page = client.get(f"/pipelines/{pipeline}").text
        assert "line 4999\n" in page and "line 4500\n" in page
        assert "line 4499\n" not in page
        before = re.search(r"earlier\?before=(\d+)", page)
        assert before is not None
        earlier = client.get(f"/pipelines/{pipeline}/steps/build/earlier?before={before.group(1)}").text
        assert "line 4000\n" in earlier and "line 4499\n" in earlier and "line 4500\n" not in earlier
        raw = client.get(f"/pipelines/{pipeline}/steps/build/raw")
    assert raw.text == text
    assert "attachment" in raw.headers["content-disposition"]


async def test_the_pipeline_list_filters_in_the_url_and_pages_by_key(dashboard: Dashboard, settings: Settings) -> None:
    project = await add_project(settings)
    ids = [await add_pipeline(settings, project, branch=f"b{n}") for n in range(55)]
    await add_pipeline(settings, project, status="success", branch="other")
    with dashboard.client(Role.viewer) as client:
        first = client.get("/pipelines?status=failed").text
        assert first.count('href="/pipelines/') - first.count("/pipelines/?") >= 50
        older = re.search(r'href="(/pipelines\?[^"]*before=[^"]+)"', first)
        assert older is not None
        second = client.get(older.group(1).replace("&amp;", "&")).text
        assert str(ids[0])[:8] in second
        assert "other" not in second and "status=failed" in older.group(1)
        assert client.get("/pipelines?status=nonsense").status_code == 422


async def test_another_projects_pipeline_is_not_found_for_a_limited_credential(
    dashboard: Dashboard, settings: Settings
) -> None:
    from taskmaster.auth import service as auth_service
    from taskmaster.auth.schemas import TokenSpec
    from taskmaster.db.session import Database

    mine = await add_project(settings, "mine")
    theirs = await add_project(settings, "theirs")
    hidden = await add_pipeline(settings, theirs)
    db = Database.from_settings(settings)
    async with db.transaction() as session:
        token = (
            await auth_service.create_token(session, spec=TokenSpec(name="lim", role=Role.viewer, project_id=mine))
        ).token
    await db.dispose()
    with dashboard.client() as client:
        client.headers["Authorization"] = f"Bearer {token}"
        assert client.get(f"/pipelines/{hidden}").status_code == 404
        assert "theirs" not in client.get("/").text


def test_static_assets_are_served_from_the_package(dashboard: Dashboard) -> None:
    with dashboard.client() as client:
        script = client.get("/static/htmx.min.js")
        style = client.get("/static/app.css")
    assert script.status_code == 200 and "htmx" in script.text[:200]
    assert style.status_code == 200 and ".fg-red" in style.text


def test_a_fresh_install_shows_the_first_run_guide(dashboard: Dashboard) -> None:
    with dashboard.client(Role.admin) as client:
        page = client.get("/")
    assert page.status_code == 200
    assert "Welcome to Taskmaster" in page.text and "taskmaster project add" in page.text


async def test_a_live_cursor_with_a_non_ascii_digit_is_a_422_page_not_a_500(
    dashboard: Dashboard, settings: Settings
) -> None:
    project = await add_project(settings)
    pipeline = await add_pipeline(settings, project)
    with dashboard.client(Role.viewer) as client:
        bad = client.get(f"/pipelines/{pipeline}/live", params={"after": "test:\u00b2"})
    assert bad.status_code == 422 and "not a log resume token" in bad.text


async def test_the_pipeline_page_shows_recovery_rounds_the_manual_review_issue_and_the_review_report(
    dashboard: Dashboard, settings: Settings
) -> None:
    from taskmaster.db.models import AiCall, Pipeline, RecoveryRound, ReviewReport
    from taskmaster.db.session import Database

    project = await add_project(settings)
    pipeline = await add_pipeline(settings, project, steps={"test": ("failed", [], "FAILED\n")})
    plain = await add_pipeline(settings, project, steps={"test": ("success", [], "ok\n")})
    patch = "--- a/app.sh\n+++ b/app.sh\n@@ -1 +1 @@\n-<b>old</b>\n+new\n"
    db = Database.from_settings(settings)
    try:
        async with db.transaction() as session:
            row = await session.get(Pipeline, pipeline)
            assert row is not None
            row.review_issue_url = f"/api/projects/{project}/issues/3"
            session.add_all([
                RecoveryRound(pipeline_id=pipeline, step_name="test", round=1, agent="agentapi:custom",
                              input_tokens=1200, output_tokens=340, cost_usd=0.0123, patch=patch, result="red",
                              detail="trial ended failed: FAILED", fix_sha="f" * 40),
                RecoveryRound(pipeline_id=pipeline, step_name="test", round=2, agent="openai", input_tokens=10,
                              output_tokens=20, result="no_fix", detail="the agent found no fix"),
                AiCall(project_id=project, pipeline_id=pipeline, purpose="recovery", provider="agentapi",
                       input_tokens=1200, output_tokens=340, cost_usd=0.0123),
                AiCall(project_id=project, pipeline_id=pipeline, purpose="recovery", provider="openai",
                       model="gpt-x", input_tokens=10, output_tokens=20, cost_usd=None),
                ReviewReport(project_id=project, pipeline_id=pipeline, step_name="review", commit_sha="a" * 40,
                             reviewer="offline", passed=False, report={
                                 "markdown": "### Review\n\n1 blocker: <script>x</script>",
                                 "coverage": [{"path": "app.sh", "status": "reviewed", "reason": None},
                                              {"path": "poetry.lock", "status": "skipped", "reason": "lock file"}],
                             }),
            ])  # fmt: skip
    finally:
        await db.dispose()

    with dashboard.client(Role.viewer) as client:
        page = client.get(f"/pipelines/{pipeline}").text
        other = client.get(f"/pipelines/{plain}").text

    rounds = re.findall(r'<tr class="round" data-step="test" data-round="(\d)">(.*?)</tr>', page, re.S)
    assert [number for number, _ in rounds] == ["1", "2"]
    first, second = (re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html)).strip() for _, html in rounds)
    assert first.startswith("test 1 agentapi:custom red trial ended failed: FAILED Patch")
    assert first.endswith("ffffffffffff 1200 in · 340 out $0.0123")
    assert second == "test 2 openai no_fix the agent found no fix – 10 in · 20 out –"
    assert "-&lt;b&gt;old&lt;/b&gt;" in page and "<b>old</b>" not in page
    assert f'<a href="/api/projects/{project}/issues/3">the issue for manual review</a>' in page
    assert "1 blocker: &lt;script&gt;x&lt;/script&gt;" in page and "<script>x</script>" not in page
    assert "Coverage: 2 file(s)" in page and "<code>poetry.lock</code></td><td>skipped</td><td>lock file</td>" in page
    assert 'id="recovery"' not in other and 'id="reviews"' not in other
    usage = re.search(r'<p class="muted" id="ai-usage">(.*?)</p>', page, re.S)
    assert usage is not None
    assert usage.group(1) == "AI: 2 calls · 1,210 tokens in · 360 out · $0.0123 (1 without a price)"
    assert 'id="ai-usage"' not in other
