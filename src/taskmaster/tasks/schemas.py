"""Task I/O models. JSON field names follow the seed's columns (`dependencies` is a list of task ids)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

TaskStatus = Literal["pending", "in_progress", "review", "done", "blocked", "deferred", "cancelled"]
TaskType = Literal["feature", "bug", "chore", "test", "docs"]
TASK_STATUSES: tuple[TaskStatus, ...] = ("pending", "in_progress", "review", "done", "blocked", "deferred", "cancelled")
OPEN_STATUSES: frozenset[str] = frozenset({"pending", "in_progress", "review", "blocked", "deferred"})


class PlannedTask(BaseModel):
    """A task as a planner or an importer produces it, before it has a database id.

    `key` names it inside one plan ("3", "3.1", "auth-login"); `dependencies` and `subtasks` refer to keys of the
    same plan. `extra` keeps fields of foreign formats that have no column, so an export can give them back.
    """

    model_config = ConfigDict(extra="forbid")

    key: str = Field(min_length=1, max_length=200)
    title: str = Field(min_length=1, max_length=500)
    description: str | None = None
    details: str | None = None
    test_strategy: str | None = None
    type: TaskType = "feature"
    status: TaskStatus = "pending"
    priority: int = Field(3, ge=1, le=5)
    complexity: int | None = Field(None, ge=1, le=10)
    dependencies: list[str] = Field(default_factory=list)
    subtasks: list[PlannedTask] = Field(default_factory=list)
    source_section: str | None = None
    assignee: str | None = None
    extra: dict[str, Any] = Field(default_factory=dict)


class TaskCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    title: str = Field(min_length=1, max_length=500)
    description: str | None = None
    details: str | None = None
    test_strategy: str | None = None
    type: TaskType = "feature"
    status: TaskStatus = "pending"
    priority: int = Field(3, ge=1, le=5)
    complexity: int | None = Field(None, ge=1, le=10)
    dependencies: list[uuid.UUID] = Field(default_factory=list)
    parent_task_id: uuid.UUID | None = None
    assignee: str | None = Field(None, max_length=200)
    source_section: str | None = Field(None, max_length=500)


class TaskUpdate(BaseModel):
    """Fields to change; absent fields stay as they are. Status changes go through `set_status`."""

    model_config = ConfigDict(extra="forbid")

    title: str | None = Field(None, min_length=1, max_length=500)
    description: str | None = None
    details: str | None = None
    test_strategy: str | None = None
    type: TaskType | None = None
    priority: int | None = Field(None, ge=1, le=5)
    complexity: int | None = Field(None, ge=1, le=10)
    assignee: str | None = Field(None, max_length=200)


class TaskOut(BaseModel):
    id: uuid.UUID
    number: int
    project_id: uuid.UUID
    title: str
    description: str | None
    details: str | None
    test_strategy: str | None
    type: TaskType
    status: TaskStatus
    priority: int
    complexity: int | None
    dependencies: list[uuid.UUID]
    parent_task_id: uuid.UUID | None
    assignee: str | None
    claimed_at: datetime | None
    lease_expires_at: datetime | None
    completed_at: datetime | None
    source_section: str | None
    dependents_count: int
    created_at: datetime
    updated_at: datetime


class TaskSummary(BaseModel):
    """What lists and agents get by default: enough to choose, small enough not to flood a context."""

    id: uuid.UUID
    number: int
    title: str
    status: TaskStatus
    priority: int
    type: TaskType
    dependencies: list[uuid.UUID]
    parent_task_id: uuid.UUID | None
    assignee: str | None


class TaskPage(BaseModel):
    items: list[TaskOut] | list[TaskSummary]
    total: int
    limit: int
    offset: int


class StatusChange(BaseModel):
    status: TaskStatus
    cascade: bool = False


class DependencyAdd(BaseModel):
    depends_on: str = Field(description="The id or number of the task this one depends on.")


class ClaimRequest(BaseModel):
    assignee: str = Field(min_length=1, max_length=200)
    lease_seconds: int = Field(1800, ge=10, le=7 * 24 * 3600)
    type: TaskType | None = None


class Finding(BaseModel):
    kind: str
    task: int | str
    depends_on: int | str | None
    message: str


class GraphReportOut(BaseModel):
    ok: bool
    tasks: int
    dependencies: int
    findings: list[Finding]


class RefineRequest(BaseModel):
    provider: Literal["offline", "anthropic", "openai", "ollama"] = "offline"
    model: str | None = None


class ExpandRequest(RefineRequest):
    num: int = Field(5, ge=1, le=20)


class ComplexityOut(BaseModel):
    number: int
    complexity: int
    reasoning: str


class PrdParsed(BaseModel):
    created: int
    first_number: int
    last_number: int
    replaced: int
    template_version: int | None
    notes: list[str]
    tasks: list[TaskSummary]
