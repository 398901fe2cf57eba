"""Durable job I/O models: what a door sends to enqueue a job and shows of one."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field


class NoopSpec(BaseModel):
    steps: int = Field(3, ge=1, le=100)
    step_seconds: float = Field(0.0, ge=0, le=60)


class JobOut(BaseModel):
    id: str
    name: str | None = None
    status: str
    result: Any = None
    error: str | None = None
    executor_id: str | None = None
