"""Project I/O models. Secrets are write-only: responses say whether one is set, never what it is."""

from __future__ import annotations

import re
import uuid
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator

Forge = Literal["github", "gitlab", "local"]

# As git reads a repository argument (and workspaces.git_cache with it): a URL, or scp-like `user@host:path`.
_SCP_LIKE = re.compile(r"^[\w.-]+@[\w.-]+:")


def is_repository_url(repository: str) -> bool:
    """Whether `repository` names a remote repository rather than a path on this machine."""
    return "://" in repository or _SCP_LIKE.match(repository) is not None


class ProjectCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=200, pattern=r"^[A-Za-z0-9][A-Za-z0-9._/-]*$")
    repository: str = Field(min_length=1, max_length=1000)
    forge: Forge = "local"
    default_branch: str = Field("main", min_length=1, max_length=200)
    description: str | None = None
    webhook_secret: SecretStr | None = None
    forge_token: SecretStr | None = None
    settings: dict[str, Any] = Field(default_factory=dict)

    @field_validator("repository")
    @classmethod
    def _url_or_absolute_path(cls, value: str) -> str:
        # A relative path would be resolved against the server's working directory, which the caller cannot see.
        if not is_repository_url(value) and not value.startswith("/"):
            raise ValueError("must be a repository URL or an absolute path (a relative path has no meaning here)")
        return value

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
    settings: dict[str, Any]
    created_at: datetime
    updated_at: datetime
