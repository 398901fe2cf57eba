"""How a project's coding agent is launched: its configuration (`projects.agentapi_config`, and for Claude Code
`claude_code_config` on top), the command line with the flags of the permission policy, its environment, and the
network endpoints it may reach (its model API)."""

from __future__ import annotations

import os
import shlex
import shutil
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from taskmaster.agents.base import AgentNotConfigured
from taskmaster.core.errors import InvalidInput
from taskmaster.db.models import Project
from taskmaster.projects import agent_config
from taskmaster.projects.agent_config import AgentConfig, Permissions
from taskmaster.projects.settings import ProjectSettings
from taskmaster.workspaces.proxy import Endpoint

AGENT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
"""Where an agent command named without a directory is looked up (the toolchain the sandbox shows)."""
TOOLCHAIN = ("/usr", "/opt", "/nix", "/bin", "/sbin", "/lib", "/lib64")

DEFAULT_COMMANDS: dict[str, list[str]] = {
    "claude": ["claude"],
    "codex": ["codex", "--no-alt-screen"],
    "gemini": ["gemini"],
    "aider": ["aider"],
    "goose": ["goose", "session"],
}

# The agent's own non-interactive flags for each policy: "edits" lets it change files in its checkout without
# asking (any other request still asks, and is refused), "all" approves everything (the sandbox still bounds it).
PERMISSION_FLAGS: dict[str, dict[str, list[str]]] = {
    "claude": {"edits": ["--permission-mode", "acceptEdits"], "all": ["--permission-mode", "bypassPermissions"]},
    "codex": {
        "edits": ["--sandbox", "workspace-write", "--ask-for-approval", "on-request"],
        "all": ["--dangerously-bypass-approvals-and-sandbox"],
    },
    "gemini": {"edits": ["--approval-mode", "auto_edit"], "all": ["--approval-mode", "yolo"]},
    # Aider has no finer switch: its questions (create a file, add one to the chat, run a command) are all or none.
    "aider": {"edits": ["--yes-always"], "all": ["--yes-always"]},
}
# Flags by which a configured command already states its own policy: then none is added.
_POLICY_FLAGS = {
    "--permission-mode",
    "--dangerously-skip-permissions",
    "--allowedTools",
    "--allowed-tools",
    "--sandbox",
    "-s",
    "--ask-for-approval",
    "-a",
    "--full-auto",
    "--dangerously-bypass-approvals-and-sandbox",
    "--yolo",
    "-y",
    "--approval-mode",
    "--yes-always",
}
GOOSE_MODES = {"none": "approve", "edits": "smart_approve", "all": "auto"}

# The model APIs each CLI calls when no base URL variable says otherwise.
DEFAULT_ENDPOINTS: dict[str, tuple[str, ...]] = {
    "claude": ("https://api.anthropic.com",),
    "codex": ("https://api.openai.com",),
    "gemini": ("https://generativelanguage.googleapis.com",),
    "aider": ("https://api.openai.com",),
}


@dataclass(frozen=True, slots=True)
class LaunchPlan:
    """Everything needed to start the agent; made before anything starts."""

    agent_type: str
    argv: tuple[str, ...]
    executable: Path
    env: Mapping[str, str]
    allow: frozenset[Endpoint]
    read_only: tuple[Path, ...]
    home_files: Mapping[str, str]
    permissions: Permissions
    prompt_regex: str | None
    stability_window: float
    secrets: frozenset[str] = frozenset()
    """The decrypted secret values, masked wherever the agent's words are kept."""


def load_config(project: Project, agent_type: str | None) -> AgentConfig:
    """The project's agent configuration; `claude_code_config` is laid over `agentapi_config` for Claude Code."""
    merged: dict[str, Any] = {}
    columns = [("agentapi_config", project.agentapi_config)]
    base_type = (project.agentapi_config or {}).get("type")
    if (agent_type or base_type or "claude") == "claude":
        columns.append(("claude_code_config", project.claude_code_config))
    for column, stored in columns:
        if stored in (None, {}):
            continue
        try:
            agent_config.validate(column, stored)
        except InvalidInput as exc:
            raise AgentNotConfigured(f"project {project.name!r}: {exc.detail}") from None
        for key, value in stored.items():
            if key in ("env", "secret_env", "home_files") and isinstance(merged.get(key), dict):
                merged[key] = {**merged[key], **value}
            else:
                merged[key] = value
    return AgentConfig.model_validate(merged)


def plan(
    project: Project,
    *,
    secrets: Mapping[str, str],
    agent_type: str | None = None,
    command: str | None = None,
) -> LaunchPlan:
    """The launch plan of the project's agent; `agent_type`/`command` override the project's (one run's options).

    Raises AgentNotConfigured naming the project and what is wrong: an unknown type, a custom agent without a
    command, a command that is not installed, an invalid configuration.
    """
    stored_agent = (project.settings or {}).get("agent") or {}
    try:
        typed = ProjectSettings.model_validate(project.settings or {})
    except ValidationError as exc:
        raise AgentNotConfigured(f"project {project.name!r}: invalid settings: {_describe(exc)}") from None
    if agent_type is not None and agent_type not in ("claude", "codex", "gemini", "aider", "goose", "custom"):
        raise AgentNotConfigured(
            f"unknown agent type {agent_type!r}: expected claude, codex, gemini, aider, goose or custom"
        )
    chosen_type = agent_type or (typed.agent.type if "type" in stored_agent else None)
    config = load_config(project, chosen_type)
    kind = chosen_type or config.type or typed.agent.type
    line: str | list[str] | None = command or typed.agent.command or config.command
    if line is None:
        if kind not in DEFAULT_COMMANDS:
            raise AgentNotConfigured(
                f"project {project.name!r}: a {kind} agent needs a command (project update --set agent.command=…)"
            )
        argv = list(DEFAULT_COMMANDS[kind])
    else:
        try:
            argv = shlex.split(line) if isinstance(line, str) else list(line)
        except ValueError as exc:
            raise AgentNotConfigured(f"project {project.name!r}: agent command {line!r}: {exc}") from None
    if not argv:
        raise AgentNotConfigured(f"project {project.name!r}: the agent command is empty")
    executable = _resolve(argv[0], project.name)
    argv += config.args
    if config.permissions != "none" and not _POLICY_FLAGS.intersection(argv[1:]):
        argv += PERMISSION_FLAGS.get(kind, {}).get(config.permissions, [])
    env = {**config.env, **secrets}
    if kind == "goose":
        env.setdefault("GOOSE_MODE", GOOSE_MODES[config.permissions])
    for name, value in env.items():
        if not name or "=" in name or "\0" in name or "\0" in value:
            raise AgentNotConfigured(f"project {project.name!r}: invalid environment variable {name!r}")
    try:
        allow = _endpoints(kind, env, config.allow)
    except InvalidInput as exc:
        raise AgentNotConfigured(f"project {project.name!r}: agent network: {exc.detail}") from None
    read_only = [Path(p) for p in config.read_only]
    if any(not p.is_absolute() for p in read_only):
        raise AgentNotConfigured(f"project {project.name!r}: read_only paths must be absolute: {config.read_only}")
    if not _visible(executable):
        # An agent installed outside the toolchain (npm's node_modules, a venv): show its package read-only.
        read_only += [Path(argv[0]).parent if "/" in argv[0] else executable.parent, executable.resolve().parent]
    for relative in config.home_files:
        parts = Path(relative).parts
        if not parts or Path(relative).is_absolute() or ".." in parts:
            raise AgentNotConfigured(f"project {project.name!r}: home_files path {relative!r} must stay in the home")
    return LaunchPlan(
        agent_type=kind,
        argv=tuple(argv),
        executable=executable,
        env=env,
        allow=allow,
        read_only=tuple(dict.fromkeys(read_only)),
        home_files=dict(config.home_files),
        permissions=config.permissions,
        prompt_regex=config.prompt_regex,
        stability_window=config.stability_window,
        secrets=frozenset(value for value in secrets.values() if len(value) >= 4),
    )


def _resolve(program: str, project: str) -> Path:
    if "/" in program:
        path = Path(program)
        if not path.is_absolute():
            raise AgentNotConfigured(f"project {project!r}: the agent command {program!r} must be an absolute path")
        if not (path.is_file() and os.access(path, os.X_OK)):
            raise AgentNotConfigured(f"project {project!r}: the agent command {program!r} is not installed")
        return path
    found = shutil.which(program, path=AGENT_PATH)
    if found is None:
        raise AgentNotConfigured(
            f"project {project!r}: the agent command {program!r} is not installed (looked in {AGENT_PATH}; "
            "set agent.command to its absolute path)"
        )
    return Path(found)


def _visible(path: Path) -> bool:
    return any(str(path) == root or str(path).startswith(root + "/") for root in TOOLCHAIN)


def _endpoints(kind: str, env: Mapping[str, str], extra: list[str]) -> frozenset[Endpoint]:
    """`extra`, and the model API: the URLs of base-URL variables, else the CLI's default API."""
    named = [
        value
        for name, value in env.items()
        if value.startswith(("http://", "https://")) and (name.endswith("_BASE_URL") or name.endswith("_API_BASE"))
    ]
    urls = named or list(DEFAULT_ENDPOINTS.get(kind, ()))
    return frozenset(Endpoint.parse(value) for value in [*urls, *extra])


def _describe(exc: ValidationError) -> str:
    return "; ".join(f"{'.'.join(map(str, error['loc']))}: {error['msg']}" for error in exc.errors())
