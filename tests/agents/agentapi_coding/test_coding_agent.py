"""The AgentAPI coding agent end to end: a scripted terminal agent in the sandbox edits its checkout, reaches its
model server through the egress proxy and nothing else, is refused when it asks a permission, and leaves no process
behind on timeout or cancel."""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path

import pytest

from taskmaster.agents.agentapi.coding import AgentApiCodingAgent
from taskmaster.agents.agentapi.server import create_app
from taskmaster.agents.agentapi.sessions import SessionManager
from taskmaster.agents.base import AgentNotConfigured
from taskmaster.projects.credentials import Credentials
from taskmaster.secrets import SecretBox
from taskmaster.workspaces.git_cache import MirrorCache
from tests.agents.agentapi_coding.conftest import (
    WINDOW,
    ModelServer,
    make_job,
    make_project,
    make_settings,
    processes_with,
)
from tests.support import git, live_server, make_repo


def agent_for(tmp_path: Path, credentials: Credentials, command: str, **config: object) -> AgentApiCodingAgent:
    project = make_project(command, **config)
    return AgentApiCodingAgent.for_project(project, settings=make_settings(tmp_path), credentials=credentials)


async def test_the_agent_edits_its_checkout_and_its_last_message_is_the_summary(
    tmp_path: Path, credentials: Credentials, agent_command: str, checkout: Path
) -> None:
    agent = agent_for(tmp_path, credentials, agent_command)
    started: list[str] = []

    async def on_started(session_id: str) -> None:
        started.append(session_id)

    try:
        result = await agent.run(
            make_job(checkout, "write notes.txt hello from the agent\nsay all good"), on_started=on_started
        )
    finally:
        await agent.aclose()

    assert result.ok, result.error
    assert (checkout / "notes.txt").read_text() == "hello from the agent\n"
    assert agent.label == "agentapi:claude" and agent.kind == "agentapi"
    assert "Wrote notes.txt" in result.summary and "all good" in result.summary
    assert result.summary.strip().endswith("Done: 2 commands")
    assert "write notes.txt hello from the agent" in result.transcript  # the prompt, as the user's message
    assert started == [result.external_id] and result.external_id
    # The tree is given back to its owner (git refuses a tree owned by someone else).
    owner = checkout.stat().st_uid
    assert all(path.lstat().st_uid == owner for path in checkout.rglob("*"))


async def test_writes_outside_the_checkout_fail_and_leave_nothing_on_the_host(
    tmp_path: Path, credentials: Credentials, agent_command: str, checkout: Path
) -> None:
    agent = agent_for(tmp_path, credentials, agent_command)
    outside = checkout.parent / "escaped.txt"
    host_file = checkout.parent / "host-file.txt"
    host_file.write_text("untouched\n")
    (checkout / "link").symlink_to(host_file)  # a link the repository carries, pointing at the host
    commands = ["write ../escaped.txt x", f"write {outside} x", "write /etc/evil x", f"write {agent_command} x"]
    prompt = "\n".join([*commands, "write link overwritten", "write inside.txt ok"])
    try:
        result = await agent.run(make_job(checkout, prompt))
    finally:
        await agent.aclose()

    assert result.ok, result.error
    # Absolute host paths land in the sandbox's private /tmp at most; the rest of the host is read-only.
    assert result.summary.count("Error writing") == 3
    assert "Wrote inside.txt" in result.summary
    assert not outside.exists()
    assert not Path("/etc/evil").exists()
    assert Path(agent_command).read_text().startswith("#!/usr/bin/python3")
    assert (checkout / "inside.txt").read_text() == "ok\n"
    assert host_file.read_text() == "untouched\n"
    assert host_file.stat().st_uid == os.getuid()


async def test_the_proxy_lets_the_model_api_through_and_refuses_another_loopback_server(
    tmp_path: Path,
    credentials: Credentials,
    agent_command: str,
    checkout: Path,
    model_server: ModelServer,
    other_server: ModelServer,
) -> None:
    agent = agent_for(tmp_path, credentials, agent_command, env={"ANTHROPIC_BASE_URL": model_server.url})
    prompt = "\n".join(
        [
            f"fetch {model_server.url}/v1/messages",
            f"fetch {other_server.url}/steal",
            f"direct {model_server.url}/v1/direct",
            f"direct {other_server.url}/direct",
            "fetch http://example.com/",
        ]
    )
    try:
        result = await agent.run(make_job(checkout, prompt))
    finally:
        await agent.aclose()

    assert result.ok, result.error
    summary = result.summary
    assert f"Fetched {model_server.url}/v1/messages: 200 model ok /v1/messages" in summary
    assert f"Direct {model_server.url}/v1/direct: 200 model ok /v1/direct" in summary  # tunnelled on its port
    assert f"Fetch failed {other_server.url}/steal: HTTP Error 403" in summary
    assert f"Direct failed {other_server.url}/direct" in summary
    assert "Fetch failed http://example.com/: HTTP Error 403" in summary
    assert model_server.paths == ["/v1/messages", "/v1/direct"]
    assert other_server.paths == []
    assert f"network access refused to 127.0.0.1:{other_server.port}, example.com:80" in result.transcript


async def test_the_agent_sees_its_configured_environment_and_secrets_but_not_the_servers(
    tmp_path: Path,
    box: SecretBox,
    credentials: Credentials,
    agent_command: str,
    checkout: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("SERVER_ONLY_SECRET", "do-not-leak")
    project = make_project(
        agent_command, env={"PLAIN_SETTING": "on"}, secret_env={"MODEL_API_KEY": box.encrypt("sk-test-123")}
    )
    agent = AgentApiCodingAgent.for_project(project, settings=make_settings(tmp_path), credentials=credentials)
    try:
        prompt = "env PLAIN_SETTING\nenv MODEL_API_KEY\nenv SERVER_ONLY_SECRET\nenv HOME"
        result = await agent.run(make_job(checkout, prompt))
    finally:
        await agent.aclose()

    assert result.ok, result.error
    assert "PLAIN_SETTING=on" in result.summary
    assert "MODEL_API_KEY=***" in result.summary  # given to the agent, masked in what is kept of its words
    assert "sk-test-123" not in result.summary + result.transcript
    assert "SERVER_ONLY_SECRET=<unset>" in result.summary
    assert "HOME=/home/agent" in result.summary
    assert "sk-test-123" in credentials.masked(project)


async def test_a_permission_question_without_a_policy_flag_is_refused_and_the_agent_stopped(
    tmp_path: Path, credentials: Credentials, agent_command: str, checkout: Path
) -> None:
    agent = agent_for(tmp_path, credentials, agent_command)
    try:
        result = await agent.run(make_job(checkout, "spawn refused-agent-token\nask Run rm -rf / in the checkout?"))
    finally:
        await agent.aclose()

    assert not result.ok
    assert result.failure == "refused"
    assert result.error is not None and "Run rm -rf / in the checkout?" in result.error
    assert "(edits)" in result.error
    assert processes_with("refused-agent-token") == []


async def test_a_job_past_its_timeout_ends_timeout_with_its_processes_stopped(
    tmp_path: Path, credentials: Credentials, agent_command: str, checkout: Path
) -> None:
    agent = agent_for(tmp_path, credentials, agent_command)
    began = time.monotonic()
    try:
        result = await agent.run(make_job(checkout, "spawn timeout-agent-token\nsleep 60", timeout=3))
    finally:
        await agent.aclose()

    assert result.failure == "timeout" and not result.ok
    assert "within 3 s" in (result.error or "")
    assert time.monotonic() - began < 20
    assert processes_with("timeout-agent-token") == []
    assert processes_with(agent_command) == []


async def test_cancelling_the_run_leaves_no_process(
    tmp_path: Path, credentials: Credentials, agent_command: str, checkout: Path
) -> None:
    agent = agent_for(tmp_path, credentials, agent_command)
    task = asyncio.create_task(agent.run(make_job(checkout, "spawn cancel-agent-token\nsleep 60")))
    try:
        deadline = time.monotonic() + 20
        while not processes_with("cancel-agent-token"):
            assert time.monotonic() < deadline, "the daemon never started"
            await asyncio.sleep(0.05)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    finally:
        await agent.aclose()

    assert processes_with("cancel-agent-token") == []
    assert processes_with(agent_command) == []
    assert checkout.stat().st_uid == os.getuid()


async def test_an_agent_that_exits_fails_with_its_exit_code(
    tmp_path: Path, credentials: Credentials, agent_command: str, checkout: Path
) -> None:
    agent = agent_for(tmp_path, credentials, agent_command)
    try:
        result = await agent.run(make_job(checkout, "say partial work\nexit 7"))
    finally:
        await agent.aclose()

    assert result.failure == "failed"
    assert "code 7" in (result.error or "")
    assert "partial work" in result.transcript


async def test_an_external_server_runs_the_session_with_its_bearer_token(
    tmp_path: Path, credentials: Credentials, agent_command: str, checkout: Path
) -> None:
    # The external server passes its own environment on, as `agentapi serve` does; the sandbox keeps none of it.
    manager = SessionManager(base_env={"PATH": "/usr/bin:/bin", "SERVER_ONLY_SECRET": "do-not-leak"})
    app = create_app(manager, multi=True, auth_token="agentapi-test-token", stability_window=WINDOW)
    with live_server(app) as url:
        external = {"url": url, "token": "agentapi-test-token", "sessions": "external"}
        settings = make_settings(tmp_path, agentapi=external)
        agent = AgentApiCodingAgent.for_project(make_project(agent_command), settings=settings, credentials=credentials)
        try:
            result = await agent.run(make_job(checkout, "write remote.txt made over HTTP\nenv SERVER_ONLY_SECRET"))
        finally:
            await agent.aclose()
        remaining = list(manager.sessions)

    assert result.ok, result.error
    assert (checkout / "remote.txt").read_text() == "made over HTTP\n"
    assert "SERVER_ONLY_SECRET=<unset>" in result.summary
    assert remaining == []  # the session was deleted on the server


async def test_with_the_sandbox_off_by_name_the_agent_runs_in_the_checkout(
    tmp_path: Path, credentials: Credentials, agent_command: str, checkout: Path
) -> None:
    settings = make_settings(tmp_path, executor={"sandbox": "off"})
    agent = AgentApiCodingAgent.for_project(make_project(agent_command), settings=settings, credentials=credentials)
    try:
        result = await agent.run(make_job(checkout, "write plain.txt unsandboxed\nenv HOME"))
    finally:
        await agent.aclose()

    assert result.ok, result.error
    assert (checkout / "plain.txt").read_text() == "unsandboxed\n"
    assert "/taskmaster-agent-home-" in result.summary


def test_a_missing_bubblewrap_refuses_the_agent_before_it_starts(
    tmp_path: Path, credentials: Credentials, agent_command: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    empty = tmp_path / "no-tools"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))
    with pytest.raises(AgentNotConfigured, match="bwrap"):
        agent_for(tmp_path, credentials, agent_command)


@pytest.mark.parametrize(
    ("agent_type", "command", "config", "message"),
    [
        ("custom", None, {}, "a custom agent needs a command"),
        ("claude", "/nonexistent/claude", {}, "'/nonexistent/claude' is not installed"),
        ("claude", "no-such-agent-cli --flag", {}, "'no-such-agent-cli' is not installed"),
        ("claude", "relative/agent", {}, "must be an absolute path"),
        ("claude", "AGENT", {"unknown_key": 1}, "agentapi_config is invalid: unknown_key"),
        ("claude", "AGENT", {"allow": ["not a url"]}, "agent network"),
        ("claude", "AGENT", {"home_files": {"../outside": "x"}}, "must stay in the home"),
    ],
)
def test_an_agent_that_cannot_run_here_is_not_configured(
    tmp_path: Path,
    credentials: Credentials,
    agent_command: str,
    agent_type: str,
    command: str | None,
    config: dict[str, object],
    message: str,
) -> None:
    project = make_project(agent_command if command == "AGENT" else command, agent_type=agent_type, **config)
    with pytest.raises(AgentNotConfigured, match=message.replace("(", r"\(")) as caught:
        AgentApiCodingAgent.for_project(project, settings=make_settings(tmp_path), credentials=credentials)
    assert "'demo'" in caught.value.detail


def test_an_unknown_agent_type_for_one_run_is_not_configured(tmp_path: Path, credentials: Credentials) -> None:
    with pytest.raises(AgentNotConfigured, match="unknown agent type 'cursor'"):
        AgentApiCodingAgent.for_project(
            make_project(None), settings=make_settings(tmp_path), credentials=credentials, agent_type="cursor"
        )


async def test_git_works_in_a_mirror_checkout_and_the_mirror_stays_read_only(
    tmp_path: Path, reachable_dir: Path, credentials: Credentials, agent_command: str
) -> None:
    source = tmp_path / "source"
    shas = make_repo(source, commits=2)
    cache = MirrorCache(reachable_dir / "mirrors", max_bytes=1024**3)
    checkout = reachable_dir / "mirror-checkout"
    await cache.checkout(str(source), shas[-1], checkout)
    mirror = cache.mirror_path(str(source))
    agent = agent_for(tmp_path, credentials, agent_command)
    prompt = f"write app.txt changed\nrun git log --format=%s -1 && git status --short\nwrite {mirror}/objects/x y"
    try:
        result = await agent.run(make_job(checkout, prompt))
    finally:
        await agent.aclose()

    assert result.ok, result.error
    assert "ran (0): commit 1\n M app.txt" in result.summary
    assert "/objects/x: Read-only file system" in result.summary
    assert not (mirror / "objects" / "x").exists()
    assert git(checkout, "status", "--short").strip() == "M app.txt"  # and git still works here as its owner
