"""Project I/O models. Secrets are write-only: responses say whether one is set, never what it is."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr

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
    created_at: datetime
    updated_at: datetime


class WebhookSecret(BaseModel):
    secret: SecretStr = Field(
        min_length=8, description="The new secret (GitLab: a token, or a `whsec_…` signing token)."
    )
