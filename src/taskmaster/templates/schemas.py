"""What the template doors print and accept: a template's summary, its versions, and a new version."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, Field


class TemplateSummary(BaseModel):
    name: str
    kind: str
    active_version: int | None
    """None for a shipped default not stored yet (it is stored as version 1 on first use)."""
    versions: int
    updated_at: datetime | None


class TemplateVersionOut(BaseModel):
    name: str
    kind: str
    version: int
    is_active: bool
    content: str
    created_at: datetime | None


class TemplateDetail(BaseModel):
    name: str
    kind: str
    active_version: int | None
    versions: list[TemplateVersionOut]
    """Oldest first; a shipped default not stored yet shows as version 1, `created_at` None."""


class TemplateVersionIn(BaseModel):
    """A new version of a template; it becomes the active one. Refused (422, line named) when it does not parse."""

    content: str = Field(min_length=1, max_length=200_000)


class TemplateActivate(BaseModel):
    version: int = Field(ge=1, le=2**31 - 1)
