"""The coding agent's launch configuration: the schema of `projects.agentapi_config` and `claude_code_config`
(read by `agents/agentapi/launch.py`), and its secret part kept apart, encrypted."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from taskmaster.core.errors import InvalidInput
from taskmaster.projects.settings import AgentType

Permissions = Literal["none", "edits", "all"]
COLUMNS = ("agentapi_config", "claude_code_config")


class AgentConfig(BaseModel):
    """`projects.agentapi_config` (and `claude_code_config`): every key optional.

    `type`/`command` apply when the project settings `agent.type`/`agent.command` are not set; `args` are added to
    the command (e.g. `["--allowedTools", "Edit Bash(git diff:*)"]`); `env` are plain variables and `secret_env`
    variables whose values are stored encrypted (decrypted by `projects.credentials`); `allow` the endpoints
    (URLs or `host:port`) the agent may reach besides the model API its base-URL variables name; `read_only` host
    directories shown to the agent (where its CLI is installed); `home_files` files written into its private home
    (`{workspace}` stands for the checkout's path as the agent sees it); `permissions` the policy for permission
    prompts (`edits`: file edits in the checkout are approved by the agent's own flags, every other question is
    refused; `none`: every question refused; `all`: everything approved by the agent's flags).
    """

    model_config = ConfigDict(extra="forbid")

    type: AgentType | None = None
    command: str | list[str] | None = None
    args: list[str] = Field(default_factory=list)
    env: dict[str, str] = Field(default_factory=dict)
    secret_env: dict[str, str] = Field(default_factory=dict)
    allow: list[str] = Field(default_factory=list)
    read_only: list[str] = Field(default_factory=list)
    home_files: dict[str, str] = Field(default_factory=dict)
    permissions: Permissions = "edits"
    prompt_regex: str | None = None
    stability_window: float = Field(2.0, gt=0, le=60)


def validate(column: str, stored: Any) -> AgentConfig:
    """The configuration stored in `column`; InvalidInput naming the column and the keys that are wrong."""
    if column not in COLUMNS:
        raise InvalidInput(f"unknown agent configuration {column!r}: expected {' or '.join(COLUMNS)}")
    if not isinstance(stored, dict):
        raise InvalidInput(f"{column} must be a JSON object")
    try:
        return AgentConfig.model_validate(stored)
    except ValidationError as exc:
        detail = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        raise InvalidInput(f"{column} is invalid: {detail}") from None
