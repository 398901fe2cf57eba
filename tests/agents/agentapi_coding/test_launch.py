"""The launch plan of a project's agent: command, the permission policy's own flags per CLI, environment with
decrypted secrets, the endpoints the proxy lets through, and what the sandbox shows of an agent installed elsewhere."""

from __future__ import annotations

from pathlib import Path

import pytest

from taskmaster.agents.agentapi.launch import plan
from taskmaster.projects.credentials import Credentials
from taskmaster.secrets import SecretBox
from taskmaster.workspaces.proxy import Endpoint
from tests.agents.agentapi_coding.conftest import make_project


@pytest.mark.parametrize(
    ("agent_type", "permissions", "flags"),
    [
        ("claude", "edits", ["--permission-mode", "acceptEdits"]),
        ("claude", "all", ["--permission-mode", "bypassPermissions"]),
        ("codex", "edits", ["--sandbox", "workspace-write", "--ask-for-approval", "on-request"]),
        ("codex", "all", ["--dangerously-bypass-approvals-and-sandbox"]),
        ("gemini", "edits", ["--approval-mode", "auto_edit"]),
        ("gemini", "all", ["--approval-mode", "yolo"]),
        ("aider", "edits", ["--yes-always"]),
        ("claude", "none", []),
        ("custom", "edits", []),
    ],
)
def test_the_policy_adds_the_agents_own_non_interactive_flags(
    agent_command: str, agent_type: str, permissions: str, flags: list[str]
) -> None:
    project = make_project(agent_command, agent_type=agent_type, permissions=permissions, args=["--model", "m"])
    launch = plan(project, secrets={})
    assert launch.argv == (agent_command, "--model", "m", *flags)
    assert launch.agent_type == agent_type


def test_a_command_that_states_its_own_policy_gets_no_flags_added(agent_command: str) -> None:
    project = make_project(f"{agent_command} --allowedTools 'Edit Write'")
    assert plan(project, secrets={}).argv == (agent_command, "--allowedTools", "Edit Write")


def test_goose_gets_its_mode_in_the_environment(agent_command: str) -> None:
    assert plan(make_project(agent_command, agent_type="goose"), secrets={}).env["GOOSE_MODE"] == "smart_approve"


def test_the_model_api_is_the_base_url_variable_or_the_clis_default(agent_command: str) -> None:
    configured = make_project(agent_command, env={"ANTHROPIC_BASE_URL": "http://127.0.0.1:8123"})
    assert plan(configured, secrets={}).allow == {Endpoint("127.0.0.1", 8123)}
    default = make_project(agent_command, agent_type="codex", allow=["mcp.internal:8443"])
    assert plan(default, secrets={}).allow == {Endpoint("api.openai.com", 443), Endpoint("mcp.internal", 8443)}
    secret_url = plan(make_project(agent_command, agent_type="aider"), secrets={"OPENAI_API_BASE": "https://llm:9/v1"})
    assert secret_url.allow == {Endpoint("llm", 9)}


def test_claude_code_config_is_laid_over_agentapi_config_with_secrets_decrypted(
    agent_command: str, box: SecretBox, credentials: Credentials
) -> None:
    project = make_project(
        agent_command, env={"A": "1", "B": "1"}, secret_env={"ANTHROPIC_API_KEY": box.encrypt("sk-base")}
    )
    project.claude_code_config = {"env": {"B": "2"}, "secret_env": {"ANTHROPIC_API_KEY": box.encrypt("sk-claude")}}
    launch = plan(project, secrets=credentials.agent_env(project))
    assert launch.env == {"A": "1", "B": "2", "ANTHROPIC_API_KEY": "sk-claude"}
    # For another agent type the Claude Code configuration does not apply.
    codex = plan(project, secrets={}, agent_type="codex")
    assert codex.env == {"A": "1", "B": "1"} and codex.agent_type == "codex"


def test_one_runs_type_and_command_override_the_projects(agent_command: str) -> None:
    project = make_project("/nonexistent/agent", agent_type="gemini")
    launch = plan(project, secrets={}, agent_type="custom", command=f"{agent_command} --fast")
    assert launch.argv == (agent_command, "--fast") and launch.agent_type == "custom"


def test_an_agent_installed_outside_the_toolchain_is_shown_read_only(agent_command: str) -> None:
    launch = plan(make_project(agent_command, read_only=["/srv/agent-models"]), secrets={})
    assert launch.read_only == (Path("/srv/agent-models"), Path(agent_command).parent)
    assert plan(make_project("/usr/bin/python3"), secrets={}).read_only == ()
