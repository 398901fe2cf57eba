"""Roles, the authenticated principal, and token I/O models."""

from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field


class Role(StrEnum):
    viewer = "viewer"
    developer = "developer"
    admin = "admin"

    @property
    def rank(self) -> int:
        return _RANK[self]

    def covers(self, required: Role) -> bool:
        return self.rank >= required.rank


_RANK = {Role.viewer: 0, Role.developer: 1, Role.admin: 2}


class Principal(BaseModel):
    """The caller of a request. `project_id` set means the credential is limited to that project."""

    model_config = ConfigDict(frozen=True)

    subject: str
    role: Role
    project_id: uuid.UUID | None = None
    token_id: uuid.UUID | None = None
    kind: str = "token"


class TokenSpec(BaseModel):
    name: str = Field(min_length=1, max_length=200)
    role: Role
    project_id: uuid.UUID | None = None
    expires_at: AwareDatetime | None = Field(None, description="With a time zone (e.g. `2030-01-01T00:00:00Z`).")


class TokenInfo(BaseModel):
    """A token as listed: never its value."""

    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    name: str
    token_prefix: str
    role: Role
    project_id: uuid.UUID | None
    created_by: str | None
    created_at: datetime
    expires_at: datetime | None
    last_used_at: datetime | None
    revoked_at: datetime | None


class TokenCreated(TokenInfo):
    """Returned once, at creation: the only time the token's value is shown."""

    token: str
