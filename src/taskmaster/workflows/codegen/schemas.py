"""Code-generation I/O models, shared by the doors: `taskmaster codegen run|list|show --json`, `/api/codegen-runs`
and the MCP tool `generate_code` print the same fields."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field

from taskmaster.agents.base import AgentKind
from taskmaster.projects.settings import AgentType

CodegenStage = Literal[
    "queued", "checkout", "prompt", "agent", "check", "commit", "push", "pull_request", "link", "done"
]
"""Where a run is, in order; a failed or canceled run keeps the stage it stopped in."""


class CodegenRequest(BaseModel):
    """What `codegen run` / `POST /api/projects/{id}/codegen` / `generate_code` ask for: the given tasks, or the next
    `next` ready ones (default 1 when no task is named), with the project's agent unless overridden."""

    tasks: list[int] = Field(default_factory=list, max_length=100, description="Task numbers to work on.")
    next: int | None = Field(None, ge=1, le=100, description="How many of the next ready tasks to take.")
    agent: AgentKind | None = Field(None, description="offline, agentapi or codegen; default: the project's.")
    agent_type: AgentType | None = Field(None, description="For agentapi: which agent CLI; default: the project's.")
    agent_command: str | None = Field(None, min_length=1, max_length=1000, description="Overrides agent.command.")
    loop: bool = Field(False, description="When a PR merges, go on with the tasks it made ready.")


class StageTime(BaseModel):
    stage: CodegenStage
    started_at: datetime
    finished_at: datetime | None
    duration_ms: int | None


class CodegenRunOut(BaseModel):
    """One task's run."""

    id: uuid.UUID
    project_id: uuid.UUID
    task_number: int
    task_title: str
    status: str
    """pending | running | succeeded | failed | canceled (a workflow run's status)."""
    stage: CodegenStage
    agent: str
    """What ran: `offline`, `agentapi:claude`, `codegen`, ..."""
    branch: str | None
    pull_request_number: int | None
    pull_request_url: str | None
    error: str | None
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None


class CodegenRunDetail(CodegenRunOut):
    """A run with what it recorded: its stages' times, the prompt's template version, the agent's transcript and
    summary, tokens and cost."""

    template: str | None
    """`codegen.task@<version>`."""
    stages: list[StageTime]
    summary: str | None
    transcript: str | None
    input_tokens: int | None
    output_tokens: int | None
    cost_usd: float | None
    attempts: int


class CodegenStarted(BaseModel):
    """What a request made: one run per task (an existing live run is returned, not doubled)."""

    runs: list[CodegenRunOut]
