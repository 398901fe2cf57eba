"""What the MCP tools return: the REST shapes, each a JSON object so that it can carry an output schema.

A task or project is its summary unless details were asked for; the schema says so by making every field
beyond the summary optional (`tests/mcp` checks that they cover every field of the REST models).
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field

from taskmaster.projects.schemas import Forge
from taskmaster.tasks.schemas import TaskSummary
from taskmaster.workflows.codegen.schemas import CodegenRunOut


class TaskView(TaskSummary):
    """A task: the summary fields, and with `details=true` every column of the REST `TaskOut`."""

    project_id: uuid.UUID | None = None
    description: str | None = None
    details: str | None = None
    test_strategy: str | None = None
    complexity: int | None = None
    claimed_at: datetime | None = None
    lease_expires_at: datetime | None = None
    completed_at: datetime | None = None
    source_section: str | None = None
    dependents_count: int | None = None
    created_at: datetime | None = None
    updated_at: datetime | None = None


class ProjectView(BaseModel):
    """A project: the summary fields, and with `details=true` every field of the REST `ProjectOut`."""

    id: uuid.UUID
    name: str
    repository: str
    forge: Forge
    default_branch: str
    description: str | None
    owner: str | None = None
    repo_name: str | None = None
    has_webhook_secret: bool | None = None
    has_forge_token: bool | None = None
    settings: dict[str, Any] | None = None
    agent_config: dict[str, Any] | None = None
    """The coding agent's configuration, its secrets by name only."""
    created_at: datetime | None = None
    updated_at: datetime | None = None


PROJECT_SUMMARY_FIELDS = ("id", "name", "repository", "forge", "default_branch", "description")


class ProjectList(BaseModel):
    items: list[ProjectView]


class TaskPage(BaseModel):
    """One page of tasks in number order, like `GET /api/projects/{id}/tasks`."""

    items: list[TaskView]
    total: int = Field(description="How many tasks match the filters in all.")
    limit: int
    offset: int


class TaskList(BaseModel):
    items: list[TaskView]


class TaskPick(BaseModel):
    """The task chosen (or claimed), or null with a message when no task is ready."""

    task: TaskView | None
    message: str | None = None


class Finding(BaseModel):
    kind: str = Field(description="self, missing, duplicate or cycle.")
    task: int | str = Field(description="The task's number (or the raw reference when it names no task).")
    depends_on: int | str | None
    message: str


class GraphReport(BaseModel):
    """What validation found (or what the fix removed); `ok` is true when nothing was found."""

    ok: bool
    tasks: int
    dependencies: int
    findings: list[Finding]


class PrdParsed(BaseModel):
    """The tasks a PRD produced (summaries), numbered `first_number`..`last_number` in the project."""

    created: int
    first_number: int
    last_number: int
    replaced: int = Field(description="Tasks deleted first (replace=true).")
    notes: list[str] = Field(description="What the planner could not resolve, e.g. a dependency it dropped.")
    items: list[TaskView]


class ComplexityScore(BaseModel):
    number: int
    complexity: int = Field(ge=1, le=10)
    reasoning: str


class ComplexityReport(BaseModel):
    items: list[ComplexityScore]


class CodegenRunList(BaseModel):
    """Codegen runs, newest first, like `GET /api/codegen-runs` (without the paging fields)."""

    items: list[CodegenRunOut]
