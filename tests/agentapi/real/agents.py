"""Offline recipes for the real CLIs (docs/agents.md): the files and environment that start each one with no
onboarding, update check or telemetry, against a fake model server, in a given working directory."""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path

from tests.agentapi.real.install import litellm_price_map

API_KEY = "sk-test-key-0123456789abcdef"


@dataclass(frozen=True)
class Recipe:
    """How to run one agent: its command, environment, and the raw keys that pick "yes" in its permission menu."""

    agent_type: str
    argv: list[str]
    env: dict[str, str]
    answer_yes: str


def recipe(agent_type: str, binary: Path, model_url: str, home: Path, work: Path) -> Recipe:
    home.mkdir(parents=True, exist_ok=True)
    work.mkdir(parents=True, exist_ok=True)
    # Some CLIs turn non-interactive when `CI` is set, as it is on CI machines.
    base = {"HOME": str(home), "CI": ""}
    if agent_type == "claude":
        state = {
            "hasCompletedOnboarding": True,
            "lastOnboardingVersion": "2.1.197",
            # Claude Code asks once per API key; it remembers the key's last 20 characters.
            "customApiKeyResponses": {"approved": [API_KEY[-20:]], "rejected": []},
            "autoUpdates": False,
            "projects": {str(work): {"hasTrustDialogAccepted": True, "hasCompletedProjectOnboarding": True}},
        }
        (home / ".claude.json").write_text(json.dumps(state))
        env = {
            "ANTHROPIC_BASE_URL": model_url,
            "ANTHROPIC_API_KEY": API_KEY,
            "DISABLE_AUTOUPDATER": "1",
            "DISABLE_TELEMETRY": "1",
            "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
        }
        return Recipe("claude", [str(binary)], {**base, **env}, "1")
    if agent_type == "codex":
        codex_home = home / ".codex"
        codex_home.mkdir(exist_ok=True)
        (codex_home / "config.toml").write_text(
            'model = "gpt-5"\n'
            'model_provider = "fake"\n'
            "check_for_update_on_startup = false\n"
            "[model_providers.fake]\n"
            'name = "fake"\n'
            f'base_url = "{model_url}/v1"\n'
            'wire_api = "responses"\n'
            'env_key = "FAKE_OPENAI_API_KEY"\n'
            f'[projects."{work}"]\n'
            'trust_level = "trusted"\n'
        )
        env = {"CODEX_HOME": str(codex_home), "FAKE_OPENAI_API_KEY": API_KEY}
        argv = [str(binary), "--no-alt-screen", "-a", "on-request", "-s", "workspace-write"]
        return Recipe("codex", argv, {**base, **env}, "y")
    if agent_type == "gemini":
        settings_dir = home / ".gemini"
        settings_dir.mkdir(exist_ok=True)
        settings = {
            "security": {"auth": {"selectedType": "gemini-api-key"}, "folderTrust": {"enabled": False}},
            "general": {"enableAutoUpdate": False, "enableAutoUpdateNotification": False},
            "privacy": {"usageStatisticsEnabled": False},
            "ui": {"hideTips": True, "hideBanner": True},
        }
        (settings_dir / "settings.json").write_text(json.dumps(settings))
        env = {"GOOGLE_GEMINI_BASE_URL": model_url, "GEMINI_API_KEY": API_KEY}
        return Recipe("gemini", [str(binary)], {**base, **env}, "1")
    if agent_type == "aider":
        caches = home / ".aider" / "caches"
        caches.mkdir(parents=True, exist_ok=True)
        shutil.copy(litellm_price_map(binary), caches / "model_prices_and_context_window.json")
        env = {"OPENAI_API_BASE": f"{model_url}/v1", "OPENAI_API_KEY": API_KEY, "LITELLM_LOCAL_MODEL_COST_MAP": "True"}
        argv = [
            str(binary),
            "--model",
            "openai/gpt-4o",
            "--edit-format",
            "whole",
            "--no-git",
            "--no-check-update",
            "--analytics-disable",
            "--no-show-release-notes",
            "--no-show-model-warnings",
        ]
        return Recipe("aider", argv, {**base, **env}, "y\r")
    raise ValueError(f"no recipe for {agent_type!r}")
