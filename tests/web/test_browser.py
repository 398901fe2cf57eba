"""The dashboard in a real browser: Debian's chromium driven by Playwright against `taskmaster serve`.

A screenshot of each page is kept under `.artifacts/screenshots/` for people to look at.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from taskmaster.workspaces.cleanup import remove_tree_sync
from tests.api.test_webhooks import SECRET, github_headers
from tests.cli.conftest import TASKMASTER, clean_env
from tests.forges.fixtures import payload, payload_bytes
from tests.support import commit, free_port, git

pytestmark = [pytest.mark.slow, pytest.mark.browser]

CHROMIUM = "/usr/bin/chromium"
SCREENSHOTS = Path(__file__).resolve().parents[2] / ".artifacts" / "screenshots"
LINES = 30
GREEN_LINE = "\\\\033[32mline %s\\\\033[0m\\\\n"
PIPELINE = f"steps:\n  count: {{run: 'for i in $(seq 1 {LINES}); do printf \"{GREEN_LINE}\" $i; sleep 0.1; done'}}\n"
FAILING = (
    "steps:\n  lint: {run: 'echo lint ok'}\n  docs: {run: 'echo docs built'}\n"
    "  test: {run: 'echo 1 test failed; exit 1', needs: [lint]}\n"
)
SLOW = "steps:\n  wait: {run: 'echo waiting; sleep 120'}\n"
PRD = """# Notes app

## Requirements
- R1: Users can sign up with an email address.
- R2: Users can write notes. Depends on R1.
- R3: Users can share a note with another user. Depends on R2.
- R4: Users can export their notes. Depends on R2.
"""
DELIVERY = "github/pull_request/opened"
GITHUB_REPOSITORY = payload(DELIVERY)["repository"]["full_name"]


@dataclass
class Server:
    url: str
    env: dict[str, str]

    def cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [TASKMASTER, *args], env=clean_env(**self.env), capture_output=True, text=True, timeout=60, check=False
        )


@pytest.fixture(scope="module")
def server() -> Iterator[Server]:
    """`taskmaster serve` on the embedded default with its worker, and a project on a local repository with
    three branches: `main` counts slowly, `bad` fails its test step, `slow` waits for two minutes."""
    home = Path(tempfile.mkdtemp(prefix="taskmaster-web-", dir="/tmp"))
    home.chmod(0o755)
    repo = home / "repo"
    repo.mkdir()
    git(repo, "init", "-q", "-b", "main")
    commit(repo, ".taskmaster.yml", PIPELINE)
    for branch, text in (("bad", FAILING), ("slow", SLOW)):
        git(repo, "checkout", "-q", "-b", branch, "main")
        commit(repo, ".taskmaster.yml", text)
    env = {"TASKMASTER_HOME": str(home / "state"), "TASKMASTER_LOG_LEVEL": "warning"}
    port = free_port()
    server = Server(f"http://127.0.0.1:{port}", env)
    assert server.cli("db", "migrate").returncode == 0
    added = server.cli("project", "add", "app", "--repo", str(repo), "--forge", "local")
    assert added.returncode == 0, added.stderr
    hooked = server.cli(
        "project", "add", "hooked", "--repo", GITHUB_REPOSITORY, "--forge", "github", "--webhook-secret", SECRET
    )
    assert hooked.returncode == 0, hooked.stderr
    log = (home / "serve.log").open("w")
    process = subprocess.Popen(
        [TASKMASTER, "serve", "--port", str(port)], env=clean_env(**env), stdout=log, stderr=subprocess.STDOUT
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{server.url}/health", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert process.poll() is None, (home / "serve.log").read_text()
            assert time.monotonic() < deadline, "taskmaster serve did not answer within 60 s"
            time.sleep(0.2)
        yield server
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
        log.close()
        remove_tree_sync(home)


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    from playwright.sync_api import sync_playwright

    assert shutil.which(CHROMIUM) or Path(CHROMIUM).exists(), "chromium is missing: ./dev test installs it"
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(
            executable_path=CHROMIUM,
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update"],
        )
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture
def page(browser: object, server: Server) -> Iterator[object]:
    from playwright.sync_api import Browser

    assert isinstance(browser, Browser)
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    page = context.new_page()
    page.set_default_timeout(30_000)
    try:
        yield page
    finally:
        context.close()


def shot(page: object, name: str) -> None:
    from playwright.sync_api import Page

    assert isinstance(page, Page)
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)


def sign_in_locally(page: object, server: Server) -> None:
    from playwright.sync_api import Page, expect

    assert isinstance(page, Page)
    page.goto(f"{server.url}/")
    expect(page).to_have_url(f"{server.url}/login?next=/")
    shot(page, "login")
    page.click("#local-sign-in")
    expect(page).to_have_url(f"{server.url}/")


def run_pipeline(page: object, server: Server, ref: str) -> str:
    from playwright.sync_api import Page

    assert isinstance(page, Page)
    page.goto(f"{server.url}/pipelines")
    page.select_option("select[name=project] >> nth=-1", "app")
    page.fill("input[name=ref]", ref)
    page.click("form.inline button[type=submit]")
    page.wait_for_url(f"{server.url}/pipelines/*")
    return page.url


def test_sign_in_home_and_live_log_lines_arrive_once_across_a_reconnect(page: object, server: Server) -> None:
    from playwright.sync_api import Page, expect

    assert isinstance(page, Page)
    sign_in_locally(page, server)
    expect(page.locator("h1")).to_have_text("Home")
    shot(page, "home")
    run_pipeline(page, server, "main")
    log = page.locator('pre.log[data-step="count"]')
    expect(log).to_contain_text("line 3", timeout=60_000)
    # Lines arrive while the step still runs: the live stream, not a reload.
    assert page.locator("#pipeline-status .status").inner_text() in ("running", "queued", "pending")
    page.evaluate("window.tmLive.reconnect()")
    page.wait_for_selector("body[data-pipeline-ended=true]", timeout=60_000)
    text = log.inner_text()
    for n in range(1, LINES + 1):
        assert text.count(f"line {n}\n") == 1, (n, text)
    assert log.locator("span.fg-green").count() >= LINES
    expect(page.locator("#pipeline-status")).to_contain_text("success")
    shot(page, "pipeline-live")


def test_a_failed_pipeline_is_retried_from_its_page_whole_or_one_step(page: object, server: Server) -> None:
    from playwright.sync_api import Page, expect

    assert isinstance(page, Page)
    sign_in_locally(page, server)
    first = run_pipeline(page, server, "bad")
    page.wait_for_selector("body[data-pipeline-ended=true]", timeout=60_000)
    page.reload()
    expect(page.locator("#pipeline-status")).to_contain_text("failed")
    expect(page.locator('pre.log[data-step="test"]')).to_contain_text("1 test failed")
    shot(page, "pipeline-failed")
    page.click("#retry")
    page.wait_for_url(f"{server.url}/pipelines/*")
    second = page.url
    assert second != first
    page.wait_for_selector("body[data-pipeline-ended=true]", timeout=60_000)
    expect(page.locator('pre.log[data-step="test"]')).to_contain_text("1 test failed")
    # One step: the test step and the lint step it needs run again; docs, off its path, is kept.
    page.reload()
    page.click('.retry-step[data-step="test"]')
    page.wait_for_url(f"{server.url}/pipelines/*")
    assert page.url not in (first, second)
    page.wait_for_selector("body[data-pipeline-ended=true]", timeout=60_000)
    page.reload()
    expect(page.locator("#step-docs .error")).to_contain_text("reused from pipeline")
    expect(page.locator('pre.log[data-step="lint"]')).to_contain_text("lint ok")
    expect(page.locator('pre.log[data-step="test"]')).to_contain_text("1 test failed")
    shot(page, "pipeline-step-retried")


def test_a_running_pipeline_is_canceled_from_its_page(page: object, server: Server) -> None:
    from playwright.sync_api import Page, expect

    assert isinstance(page, Page)
    sign_in_locally(page, server)
    run_pipeline(page, server, "slow")
    expect(page.locator('pre.log[data-step="wait"]')).to_contain_text("waiting", timeout=60_000)
    page.click("#cancel")
    page.wait_for_url(f"{server.url}/pipelines/*")
    expect(page.locator("#pipeline-status")).to_contain_text("canceled", timeout=30_000)
    shot(page, "pipeline-canceled")


def test_a_viewer_signed_in_with_a_token_sees_no_write_buttons(page: object, server: Server) -> None:
    from playwright.sync_api import Page, expect

    assert isinstance(page, Page)
    made = server.cli("token", "create", "--role", "viewer", "--json")
    assert made.returncode == 0, made.stderr
    token = json.loads(made.stdout)["token"]
    page.goto(f"{server.url}/login")
    page.fill("#token", token)
    page.click("form:has(#token) button[type=submit]")
    expect(page).to_have_url(f"{server.url}/")
    page.goto(f"{server.url}/pipelines")
    expect(page.locator("text=Run a pipeline")).to_have_count(0)
    page.locator("table.list a").first.click()
    expect(page.locator("#retry")).to_have_count(0)
    expect(page.locator("#cancel")).to_have_count(0)
    shot(page, "viewer-pipeline")


def test_a_prd_uploaded_in_the_browser_shows_its_task_graph(page: object, server: Server, tmp_path: Path) -> None:
    from playwright.sync_api import Page, expect

    assert isinstance(page, Page)
    prd = tmp_path / "notes.md"
    prd.write_text(PRD)
    sign_in_locally(page, server)
    page.goto(f"{server.url}/tasks?project=app")
    page.set_input_files("input[type=file]", str(prd))
    page.click("#parse-prd")
    page.wait_for_url(f"{server.url}/tasks?project=app")
    graph = page.locator("svg.graph")
    expect(graph).to_be_visible()
    expect(graph.locator("g.node")).to_have_count(4)
    expect(graph.locator("g.node.s-ready")).to_have_count(1)
    expect(graph.locator("g.node.critical")).to_have_count(3)
    shot(page, "tasks-graph")


def test_a_webhook_delivery_is_shown_masked_and_redelivered(page: object, server: Server) -> None:
    from playwright.sync_api import Page, expect

    assert isinstance(page, Page)
    body = payload_bytes(DELIVERY)
    sent = httpx.post(f"{server.url}/webhooks/github", content=body, headers=github_headers(body, "pull_request"))
    assert sent.status_code == 202, sent.text
    sign_in_locally(page, server)
    page.goto(f"{server.url}/webhooks")
    page.locator("table.list a").first.click()
    expect(page.locator("h1")).to_contain_text("github pull_request.opened")
    expect(page.locator("text=sha256=")).to_have_count(0)
    page.wait_for_timeout(500)  # let the worker process it first, so redelivery is allowed
    page.reload()
    page.click("#redeliver")
    expect(page.locator("h1 .status")).to_have_text(re.compile("received|processed"))
    shot(page, "webhook")


def test_a_post_without_the_csrf_token_is_refused_even_with_the_session_cookie(page: object, server: Server) -> None:
    from playwright.sync_api import Page

    assert isinstance(page, Page)
    sign_in_locally(page, server)
    # The browser's own request context carries the session cookie, as a forged form would.
    answer = page.request.post(f"{server.url}/pipelines", form={"project": "app", "ref": "main"})
    assert answer.status == 403
    assert "CSRF" in answer.text()


def test_pages_fit_a_phone_screen_in_dark_mode(browser: object, server: Server) -> None:
    from playwright.sync_api import Browser

    assert isinstance(browser, Browser)
    context = browser.new_context(viewport={"width": 390, "height": 844}, color_scheme="dark")
    page = context.new_page()
    try:
        sign_in_locally(page, server)
        for path, name in (("/", "home-phone-dark"), ("/pipelines", "pipelines-phone-dark")):
            page.goto(server.url + path)
            overflow = page.evaluate("() => document.documentElement.scrollWidth - window.innerWidth")
            assert overflow <= 1, (path, overflow)
            shot(page, name)
        background = page.evaluate("() => getComputedStyle(document.body).backgroundColor")
        assert background == "rgb(13, 17, 23)"
    finally:
        context.close()
