"""Read the settings once: defaults < `taskmaster.toml` < environment < explicit overrides.

Invalid input raises `ConfigurationError` with one line per problem naming the variable or file key.
"""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from taskmaster.config.settings import Settings

# The seed's variable names first, then Taskmaster's own. Each maps to a dotted path in the tree.
ENV_VARS: dict[str, str] = {
    "DATABASE_URL": "database.url",
    "DB_HOST": "database.host",
    "DB_PORT": "database.port",
    "DB_NAME": "database.name",
    "DB_USER": "database.user",
    "DB_PASSWORD": "database.password",
    "DB_SSLMODE": "database.sslmode",
    "DB_POOL_SIZE": "database.pool_size",
    "DB_MAX_OVERFLOW": "database.max_overflow",
    "DB_POOL_TIMEOUT": "database.pool_timeout",
    "DB_ECHO": "database.echo",
    "ANTHROPIC_API_KEY": "llm.anthropic_api_key",
    "ANTHROPIC_BASE_URL": "llm.anthropic_base_url",
    "OPENAI_API_KEY": "llm.openai_api_key",
    "OPENAI_BASE_URL": "llm.openai_base_url",
    "CODEGEN_API_KEY": "codegen.api_key",
    "CODEGEN_API_URL": "codegen.api_url",
    "CODEGEN_ORG_ID": "codegen.org_id",
    "AGENTAPI_URL": "agentapi.url",
    "AGENTAPI_TOKEN": "agentapi.token",
    "TASKMASTER_AGENTAPI_SESSIONS": "agentapi.sessions",
    "GITHUB_APP_ID": "github.app_id",
    "GITHUB_APP_PRIVATE_KEY": "github.private_key",
    "GITHUB_APP_PRIVATE_KEY_PATH": "github.private_key_file",
    "GITHUB_APP_WEBHOOK_SECRET": "github.webhook_secret",
    "GITHUB_API_URL": "github.api_url",
    "WSL2_INSTANCE_PATH": "workspace.root",
    "TASKMASTER_MIRROR_ROOT": "workspace.mirror_root",
    "TASKMASTER_MIRROR_MAX_BYTES": "workspace.mirror_max_bytes",
    "TASKMASTER_EXECUTOR": "executor.kind",
    "TASKMASTER_EXECUTOR_SANDBOX": "executor.sandbox",
    "TASKMASTER_STEP_CPU_SECONDS": "executor.limits.cpu_seconds",
    "TASKMASTER_STEP_MEMORY_BYTES": "executor.limits.memory_bytes",
    "TASKMASTER_STEP_MAX_PROCESSES": "executor.limits.max_processes",
    "TASKMASTER_STEP_DISK_BYTES": "executor.limits.disk_bytes",
    "TASKMASTER_STEP_TMP_BYTES": "executor.limits.tmp_bytes",
    "TASKMASTER_STEP_CPUS": "executor.limits.cpus",
    "TASKMASTER_STEP_MAX_CPU_SECONDS": "executor.max_limits.cpu_seconds",
    "TASKMASTER_STEP_MAX_MEMORY_BYTES": "executor.max_limits.memory_bytes",
    "TASKMASTER_STEP_MAX_MAX_PROCESSES": "executor.max_limits.max_processes",
    "TASKMASTER_STEP_MAX_DISK_BYTES": "executor.max_limits.disk_bytes",
    "TASKMASTER_STEP_MAX_TMP_BYTES": "executor.max_limits.tmp_bytes",
    "TASKMASTER_HOME": "state_dir",
    "TASKMASTER_ENV": "environment",
    "TASKMASTER_HOST": "server.host",
    "TASKMASTER_PORT": "server.port",
    "TASKMASTER_MAX_BODY_BYTES": "server.max_body_bytes",
    "TASKMASTER_BODY_TIMEOUT_SECONDS": "server.body_timeout_seconds",
    "TASKMASTER_LOG_LEVEL": "logging.level",
    "TASKMASTER_LOG_FORMAT": "logging.format",
    "TASKMASTER_WORKER_ID": "worker.id",
    "TASKMASTER_WORKER_HEARTBEAT_SECONDS": "worker.heartbeat_seconds",
    "TASKMASTER_WORKER_STALE_AFTER_SECONDS": "worker.stale_after_seconds",
    "TASKMASTER_WORKER_CONCURRENCY": "worker.concurrency",
    "TASKMASTER_WORKER_MAX_STEPS": "worker.max_steps",
    "TASKMASTER_PROJECT_CONCURRENCY": "worker.project_concurrency",
    "TASKMASTER_PIPELINE_MAX_SECONDS": "worker.pipeline_max_seconds",
    "TASKMASTER_JWT_SECRET": "auth.jwt_secret",
    "TASKMASTER_JWT_PUBLIC_KEY": "auth.jwt_public_key",
    "TASKMASTER_JWT_AUDIENCE": "auth.jwt_audience",
    "TASKMASTER_JWT_ISSUER": "auth.jwt_issuer",
    "TASKMASTER_SECRET_KEYS": "auth.secret_keys",
    "TASKMASTER_TOKEN_CACHE_SECONDS": "auth.token_cache_seconds",
    "TASKMASTER_URL": "client.url",
    "TASKMASTER_TOKEN": "client.token",
    "TASKMASTER_WEBHOOK_SECRET_OVERLAP_SECONDS": "webhooks.secret_overlap_seconds",
    "TASKMASTER_WEBHOOK_PROJECT_RATE": "webhooks.project_rate",
    "TASKMASTER_WEBHOOK_PROJECT_BURST": "webhooks.project_burst",
    "TASKMASTER_WEBHOOK_SOURCE_RATE": "webhooks.source_rate",
    "TASKMASTER_WEBHOOK_SOURCE_BURST": "webhooks.source_burst",
    "TASKMASTER_WEBHOOK_MAX_ATTEMPTS": "webhooks.max_attempts",
    "TASKMASTER_WEBHOOK_PROJECT_CACHE_SECONDS": "webhooks.project_cache_seconds",
    "TASKMASTER_LOCAL_FORGE_POLL_SECONDS": "forges.local_poll_seconds",
}
_PATH_TO_ENV = {path: name for name, path in ENV_VARS.items()}
_URL_PASSWORD = re.compile(r"://([^:/@\s]*):[^@/\s]+@")  # the password in scheme://user:password@host
CONFIG_FILE_VAR = "TASKMASTER_CONFIG"
DEFAULT_CONFIG_FILE = "taskmaster.toml"


class ConfigurationError(Exception):
    """Configuration could not be read; `problems` holds one readable line per fault."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems


def load_settings(
    environ: Mapping[str, str] | None = None,
    *,
    config_file: Path | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> Settings:
    """Build the settings tree. `environ` defaults to the process environment (read here and only here)."""
    env = os.environ if environ is None else environ
    origin: dict[tuple[str, ...], str] = {}
    tree: dict[str, Any] = {"state_dir": str(default_state_dir(env))}

    path = config_file or _config_file_path(env)
    if path is not None:
        for dotted, value in _flatten(_read_toml(path)):
            _put(tree, dotted, value)
            origin[tuple(dotted.split("."))] = f"{path} [{dotted.rpartition('.')[0] or 'top'}] {dotted}"

    for name, dotted in ENV_VARS.items():
        if name in env and env[name] != "":
            _put(tree, dotted, env[name])
            origin[tuple(dotted.split("."))] = name

    for dotted, value in (overrides or {}).items():
        _put(tree, dotted, value)
        origin[tuple(dotted.split("."))] = dotted

    try:
        return Settings.model_validate(tree)
    except ValidationError as exc:
        raise ConfigurationError([_describe(err, origin) for err in exc.errors()]) from None


def default_state_dir(env: Mapping[str, str]) -> Path:
    """Where state lives unless TASKMASTER_HOME says otherwise: `$XDG_STATE_HOME/taskmaster`, by default
    `~/.local/state/taskmaster`; outside any repository, so no step of a pipeline run from a checkout sees it."""
    base = env.get("XDG_STATE_HOME") or ""
    if not Path(base).is_absolute():  # the XDG specification: a relative value is invalid and ignored
        home = env.get("HOME") or str(Path.home())
        base = str(Path(home) / ".local" / "state")
    return Path(base) / "taskmaster"


def _config_file_path(env: Mapping[str, str]) -> Path | None:
    explicit = env.get(CONFIG_FILE_VAR)
    if explicit:
        if not Path(explicit).is_file():
            raise ConfigurationError([f"{CONFIG_FILE_VAR}: file {explicit} does not exist"])
        return Path(explicit)
    default = Path(DEFAULT_CONFIG_FILE)
    return default if default.is_file() else None


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as fh:
            return tomllib.load(fh)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigurationError([f"{path}: not valid TOML ({exc})"]) from None
    except OSError as exc:
        raise ConfigurationError([f"{path}: cannot be read ({exc.strerror})"]) from None


def _flatten(data: Mapping[str, Any], prefix: str = "") -> list[tuple[str, Any]]:
    items: list[tuple[str, Any]] = []
    for key, value in data.items():
        dotted = f"{prefix}{key}"
        if isinstance(value, Mapping):
            items.extend(_flatten(value, dotted + "."))
        else:
            items.append((dotted, value))
    return items


def _put(tree: dict[str, Any], dotted: str, value: Any) -> None:
    *parents, leaf = dotted.split(".")
    node = tree
    for part in parents:
        child = node.setdefault(part, {})
        if not isinstance(child, dict):
            child = node[part] = {}
        node = child
    node[leaf] = value


def _describe(error: Any, origin: Mapping[tuple[str, ...], str]) -> str:
    loc = tuple(str(part) for part in error["loc"])
    where = origin.get(loc) or _PATH_TO_ENV.get(".".join(loc)) or ".".join(loc)
    message = error["msg"]
    if error["type"] == "extra_forbidden":
        return f"{where}: unknown setting"
    value = error.get("input")
    secret = any(word in where.lower() for word in ("password", "key", "secret"))
    shown = "" if secret or isinstance(value, dict) else f" (got {_redact(repr(value))})"
    return f"{where}: {message}{shown}"


def _redact(text: str) -> str:
    return _URL_PASSWORD.sub(r"://\1:***@", text)
