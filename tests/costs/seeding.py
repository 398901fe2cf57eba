"""AI calls of two projects, one pipeline's among them, one outside a 24 h window: what the cost tests sum."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import timedelta

from taskmaster.config.settings import CostSettings
from taskmaster.core.clock import utcnow
from taskmaster.costs.service import CallRecord, record_call
from taskmaster.db.models import AiCall, Pipeline
from taskmaster.db.session import Database
from tests.support.factories import make_project

PRICES = CostSettings().prices


@dataclass(frozen=True)
class Calls:
    alpha: uuid.UUID
    beta: uuid.UUID
    pipeline: uuid.UUID


async def seed_calls(db: Database) -> Calls:
    """alpha: a review of its pipeline (gpt-4o, 1M in + 100k out = $3.50) and a retried one (2 requests, 1,000 in
    + 200 out = $0.0045), a prd.parse on ollama (free), a prd.parse 2 days ago ($1.00, outside 24 h); beta: a
    codegen run with an unpriced model (500 in, 50 out)."""
    alpha = await make_project(db, "alpha")
    beta = await make_project(db, "beta")
    async with db.transaction() as session:
        pipeline = Pipeline(project_id=alpha.id, pipeline_type="validation", status="success")
        session.add(pipeline)
        await session.flush()
        for record in (
            CallRecord(alpha.id, "review", "openai", "gpt-4o", 1_000_000, 100_000, pipeline_id=pipeline.id,
                       template_name="review.pr", template_version=1),
            CallRecord(alpha.id, "review", "openai", "gpt-4o", 1_000, 200, requests=2, pipeline_id=pipeline.id),
            CallRecord(alpha.id, "prd.parse", "ollama", "llama3", 40_000, 8_000, template_name="prd.parse",
                       template_version=1),
            CallRecord(beta.id, "codegen", "agentapi:custom", "house-model", 500, 50),
        ):  # fmt: skip
            await record_call(session, record, prices=PRICES)
        old = await record_call(session, CallRecord(alpha.id, "prd.parse", "codegen", cost_usd=1.0), prices=PRICES)
        old.created_at = utcnow() - timedelta(days=2)
        session.add(old)
        assert isinstance(old, AiCall)
    return Calls(alpha.id, beta.id, pipeline.id)
