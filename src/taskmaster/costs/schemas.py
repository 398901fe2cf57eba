"""What the cost doors print: tokens and cost of a set of AI calls, and the sums per project and purpose."""

from __future__ import annotations

import uuid
from datetime import datetime

from pydantic import BaseModel, Field


class AiUsageOut(BaseModel):
    """Tokens and cost of AI calls (a pipeline's, a codegen run's, a project's)."""

    calls: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    cost_usd: float = Field(0.0, description="Calls whose model has no price count as 0 (see `unpriced_calls`).")
    unpriced_calls: int = 0


class CostRow(BaseModel):
    """One project's calls for one purpose (`prd.parse`, `task.expand`, `codegen`, `review`, `recovery`, ...)."""

    project_id: uuid.UUID
    project: str
    purpose: str
    calls: int
    input_tokens: int
    output_tokens: int
    cost_usd: float
    unpriced_calls: int


class ProjectCost(AiUsageOut):
    project_id: uuid.UUID
    project: str


class CostReport(BaseModel):
    """AI calls since a time: the total, per project, and per project and purpose (costliest first)."""

    since: datetime | None
    until: datetime
    total: AiUsageOut
    projects: list[ProjectCost]
    rows: list[CostRow]
