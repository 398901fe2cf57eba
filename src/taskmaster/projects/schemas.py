"""Project I/O models. Secrets are write-only: responses say whether one is set, never what it is."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator
from pydantic_core import PydanticCustomError

from taskmaster.projects.repository import FORGE_NAME, forge_repository_problem, is_repository_url
from taskmaster.projects.settings import ProjectSettings

Forge = Literal["github", "gitlab", "local"]


class ProjectCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=200, pattern=r"^[A-Za-z0-9][A-Za-z0-9._/-]*$")
    repository: str = Field(min_length=1, max_length=1000)
    forge: Forge = "local"
    default_branch: str = Field("main", min_length=1, max_length=200)
    description: str | None = None
    webhook_secret: SecretStr | None = None
    forge_token: SecretStr | None = None
    settings: dict[str, Any] = Field(
        default_factory=dict, description="Project settings by dotted key (or nested by group); see ProjectSettings."
    )

    @model_validator(mode="after")
    def _url_or_absolute_path(self) -> ProjectCreate:
        # A relative path would be resolved against the server's working directory, which the caller cannot see.
        # A GitHub or GitLab project may be named `owner/name` (GitLab: `group/…/name`) alone: webhooks route by
        # it, and nothing clones it. Its forge's API addresses it by that path, so a path the forge cannot have
        # (a GitHub URL of a page below the repository) is refused here rather than met as a 404 later.
        repository = self.repository
        remote = is_repository_url(repository) or (self.forge != "local" and FORGE_NAME.fullmatch(repository))
        if not remote and not repository.startswith("/"):
            raise PydanticCustomError(
                "relative_repository",
                "repository: must be a URL or an absolute path (a relative path means nothing to the server)",
            )
        problem = forge_repository_problem(repository, self.forge) if remote and self.forge != "local" else None
        if problem is not None:
            raise PydanticCustomError("forge_repository", "repository: {problem}", {"problem": problem})
        return self

    @field_validator("name")
    @classmethod
    def _not_an_id(cls, value: str) -> str:
        # References take an id or a name; a name that reads as an id would make them ambiguous.
        try:
            uuid.UUID(value)
        except ValueError:
            return value
        raise ValueError("a project name must not read as a project id (a UUID)")


class ProjectOut(BaseModel):
    id: uuid.UUID
    name: str
    repository: str
    forge: Forge
    owner: str | None
    repo_name: str | None
    default_branch: str
    description: str | None
    has_webhook_secret: bool
    has_forge_token: bool
    settings: ProjectSettings
    agent_config: dict[str, Any] = Field(
        default_factory=dict,
        description="The coding agent's configuration (agentapi_config); `secret_env` lists the names of its "
        "encrypted variables, never their values.",
    )
    created_at: datetime
    updated_at: datetime


class WebhookSecret(BaseModel):
    secret: SecretStr = Field(
        min_length=8, description="The new secret (GitLab: a token, or a `whsec_…` signing token)."
    )
