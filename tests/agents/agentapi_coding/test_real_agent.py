"""Real agent CLIs as the coding agent (the real-agent tier): in the sandbox, reaching the fake model server only
through the egress proxy, Claude Code edits its checkout with its own tool approved by the policy's flag, and Codex
asking for more than the policy allows is refused."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from taskmaster.agents.agentapi.coding import AgentApiCodingAgent
from taskmaster.agents.base import AgentResult
from taskmaster.projects.credentials import Credentials
from taskmaster.secrets import SecretBox
from tests.agentapi.real.agents import API_KEY
from tests.agentapi.real.install import ensure_installed
from tests.agentapi.real.models import EDITED, FILE_CONTENT, Script, create_app
from tests.agents.agentapi_coding.conftest import make_job, make_project, make_settings, processes_with
from tests.support import live_server, make_repo

pytestmark = [pytest.mark.agents_real, pytest.mark.slow, pytest.mark.timeout(1200)]


@pytest.fixture(scope="module")
def agent_binaries() -> dict[str, Path]:
    return ensure_installed()


@pytest.fixture
def fake_model() -> Iterator[tuple[str, Script]]:
    script = Script()
    with live_server(create_app(script)) as url:  # type: ignore[arg-type]
        yield url, script


def agent_config(agent_type: str, binary: Path, model_url: str, box: SecretBox) -> dict[str, Any]:
    """The recipes of docs/agents.md as a project's `agentapi_config`: `{workspace}` is the checkout in the sandbox."""
    node_modules = binary.parent.parent  # the CLI's package and its platform package, shown read-only
    if agent_type == "claude":
        state = {
            "hasCompletedOnboarding": True,
            "lastOnboardingVersion": "2.1.197",
            "customApiKeyResponses": {"approved": [API_KEY[-20:]], "rejected": []},
            "autoUpdates": False,
            "projects": {"{workspace}": {"hasTrustDialogAccepted": True, "hasCompletedProjectOnboarding": True}},
        }
        return {
            "env": {
                "ANTHROPIC_BASE_URL": model_url,
                "DISABLE_AUTOUPDATER": "1",
                "DISABLE_TELEMETRY": "1",
                "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
            },
            "secret_env": {"ANTHROPIC_API_KEY": box.encrypt(API_KEY)},
            "home_files": {".claude.json": json.dumps(state)},
            "read_only": [str(node_modules)],
            "stability_window": 1.5,
        }
    config_toml = (
        'model = "gpt-5"\nmodel_provider = "fake"\ncheck_for_update_on_startup = false\n'
        f'[model_providers.fake]\nname = "fake"\nbase_url = "{model_url}/v1"\nwire_api = "responses"\n'
        'env_key = "FAKE_OPENAI_API_KEY"\n[projects."{workspace}"]\ntrust_level = "trusted"\n'
    )
    return {
        "env": {"CODEX_HOME": "/home/agent/.codex"},
        "secret_env": {"FAKE_OPENAI_API_KEY": box.encrypt(API_KEY)},
        "home_files": {".codex/config.toml": config_toml},
        "allow": [model_url],  # the base URL lives in config.toml, which the plan does not read
        "read_only": [str(node_modules)],
        "stability_window": 1.5,
    }


async def run_real(
    agent_type: str,
    binaries: dict[str, Path],
    fake_model: tuple[str, Script],
    checkout: Path,
    tmp_path: Path,
    box: SecretBox,
    credentials: Credentials,
) -> AgentResult:
    url, _ = fake_model
    binary = binaries[agent_type]
    make_repo(checkout, commits=1)
    project = make_project(str(binary), agent_type=agent_type, **agent_config(agent_type, binary, url, box))
    agent = AgentApiCodingAgent.for_project(project, settings=make_settings(tmp_path), credentials=credentials)
    try:
        return await agent.run(make_job(checkout, "please edit the greeting file", timeout=240))
    finally:
        await agent.aclose()
        assert processes_with(str(binary.parent.parent)) == []


async def test_claude_code_edits_its_checkout_through_the_proxy_with_its_edits_approved_by_flag(
    agent_binaries: dict[str, Path],
    fake_model: tuple[str, Script],
    reachable_dir: Path,
    tmp_path: Path,
    box: SecretBox,
    credentials: Credentials,
) -> None:
    checkout = reachable_dir / "checkout"
    result = await run_real("claude", agent_binaries, fake_model, checkout, tmp_path, box, credentials)

    assert result.ok, f"{result.error}\n{result.transcript}"
    assert (checkout / "hello.txt").read_text() == FILE_CONTENT
    assert EDITED in result.summary
    assert "Write(hello.txt)" in result.transcript  # its own tool, with no permission question
    assert any(kind == "anthropic" for kind, _ in fake_model[1].requests)


async def test_codex_asking_to_escalate_is_refused_and_stopped(
    agent_binaries: dict[str, Path],
    fake_model: tuple[str, Script],
    reachable_dir: Path,
    tmp_path: Path,
    box: SecretBox,
    credentials: Credentials,
) -> None:
    # The fake model asks to run its command outside Codex's own sandbox: Codex asks the user, the policy refuses.
    checkout = reachable_dir / "checkout"
    result = await run_real("codex", agent_binaries, fake_model, checkout, tmp_path, box, credentials)

    assert result.failure == "refused", f"{result.error}\n{result.transcript}"
    assert "Would you like to run the following command?" in (result.error or "")
    assert not (checkout / "hello.txt").exists()
    assert any(kind == "responses" for kind, _ in fake_model[1].requests)
