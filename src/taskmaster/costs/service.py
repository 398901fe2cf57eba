"""Record AI calls and sum their cost. The caller owns the transaction."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import case, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from taskmaster.config.settings import ModelPrice
from taskmaster.core.clock import utcnow
from taskmaster.costs.schemas import AiUsageOut, CostReport, CostRow, ProjectCost
from taskmaster.db.models import AiCall, Project

# Calls, input and output tokens, cost (unknown costs as 0), and how many calls had no known cost.
_SUMS = (
    func.count(AiCall.id),
    func.coalesce(func.sum(AiCall.input_tokens), 0),
    func.coalesce(func.sum(AiCall.output_tokens), 0),
    func.coalesce(func.sum(AiCall.cost_usd), 0.0),
    func.coalesce(func.sum(case((AiCall.cost_usd.is_(None), 1), else_=0)), 0),
)


@dataclass(frozen=True, slots=True)
class CallRecord:
    """One call to record. `cost_usd` is what the service reported; None: priced from the table when it can be."""

    project_id: uuid.UUID
    purpose: str
    provider: str
    model: str | None = None
    input_tokens: int = 0
    output_tokens: int = 0
    requests: int = 1
    cost_usd: float | None = None
    template_name: str | None = None
    template_version: int | None = None
    pipeline_id: uuid.UUID | None = None
    workflow_run_id: uuid.UUID | None = None


@dataclass(frozen=True, slots=True)
class CostTotal:
    calls: int
    input_tokens: int
    output_tokens: int
    cost_usd: float
    unpriced_calls: int = 0

    def out(self) -> AiUsageOut:
        """As the doors print it."""
        return AiUsageOut(
            calls=self.calls, input_tokens=self.input_tokens, output_tokens=self.output_tokens,
            cost_usd=round(self.cost_usd, 6), unpriced_calls=self.unpriced_calls,
        )  # fmt: skip


def price_of(prices: Mapping[str, ModelPrice], provider: str, model: str | None) -> ModelPrice | None:
    """The price of `model` at `provider`: an exact `provider:model` or `model` entry, else the longest entry that
    the model name starts with (`claude-sonnet-4-20250514` takes `claude-sonnet-4`); ollama is free."""
    if provider == "ollama":
        return ModelPrice(input_per_mtok=0.0, output_per_mtok=0.0)
    if not model:
        return None
    for key in (f"{provider}:{model}", model):
        if key in prices:
            return prices[key]
    best: tuple[int, ModelPrice] | None = None
    for key, price in prices.items():
        owner, _, name = key.rpartition(":")
        if owner not in ("", provider) or not model.startswith(name):
            continue
        if best is None or len(name) > best[0]:
            best = (len(name), price)
    return best[1] if best else None


def cost_of(prices: Mapping[str, ModelPrice], record: CallRecord) -> float | None:
    """The record's own cost, or its tokens priced from the table; None when the model has no price."""
    if record.cost_usd is not None:
        return record.cost_usd
    price = price_of(prices, record.provider, record.model)
    if price is None:
        return None
    return (record.input_tokens * price.input_per_mtok + record.output_tokens * price.output_per_mtok) / 1_000_000


async def record_call(session: AsyncSession, record: CallRecord, *, prices: Mapping[str, ModelPrice]) -> AiCall:
    """Store one call, priced; returns the row (its `cost_usd` None when unknown)."""
    row = AiCall(
        project_id=record.project_id,
        purpose=record.purpose[:50],
        provider=record.provider[:50],
        model=(record.model or "")[:200] or None,
        template_name=record.template_name,
        template_version=record.template_version,
        input_tokens=max(0, record.input_tokens),
        output_tokens=max(0, record.output_tokens),
        requests=max(0, record.requests),
        cost_usd=cost_of(prices, record),
        pipeline_id=record.pipeline_id,
        workflow_run_id=record.workflow_run_id,
    )
    session.add(row)
    await session.flush()
    return row


async def total(
    session: AsyncSession,
    *,
    project_id: uuid.UUID | None = None,
    pipeline_id: uuid.UUID | None = None,
    workflow_run_id: uuid.UUID | None = None,
    since: datetime | None = None,
) -> CostTotal:
    """Calls, tokens and cost (unknown costs count as 0) of the calls matching every filter given."""
    query = select(*_SUMS)
    if project_id is not None:
        query = query.where(AiCall.project_id == project_id)
    if pipeline_id is not None:
        query = query.where(AiCall.pipeline_id == pipeline_id)
    if workflow_run_id is not None:
        query = query.where(AiCall.workflow_run_id == workflow_run_id)
    if since is not None:
        query = query.where(AiCall.created_at >= since)
    calls, tokens_in, tokens_out, cost, unpriced = (await session.execute(query)).one()
    return CostTotal(int(calls), int(tokens_in), int(tokens_out), float(cost or 0.0), int(unpriced or 0))


async def report(
    session: AsyncSession, *, since: datetime | None = None, project_id: uuid.UUID | None = None
) -> CostReport:
    """Calls since `since` (all when None), summed per project and purpose, per project, and in all; the
    costliest first. One grouped query over `ix_ai_calls_project_id_created_at`."""
    query = (
        select(AiCall.project_id, Project.name, AiCall.purpose, *_SUMS)
        .join(Project, Project.id == AiCall.project_id)
        .group_by(AiCall.project_id, Project.name, AiCall.purpose)
    )
    if since is not None:
        query = query.where(AiCall.created_at >= since)
    if project_id is not None:
        query = query.where(AiCall.project_id == project_id)
    rows = [
        CostRow(
            project_id=pid,
            project=name,
            purpose=purpose,
            calls=int(calls),
            input_tokens=int(tokens_in),
            output_tokens=int(tokens_out),
            cost_usd=round(float(cost or 0.0), 6),
            unpriced_calls=int(unpriced or 0),
        )
        for pid, name, purpose, calls, tokens_in, tokens_out, cost, unpriced in (await session.execute(query)).all()
    ]
    rows.sort(key=lambda row: (-row.cost_usd, -(row.input_tokens + row.output_tokens), row.project, row.purpose))
    projects: dict[uuid.UUID, ProjectCost] = {}
    for row in rows:
        into = projects.setdefault(row.project_id, ProjectCost(project_id=row.project_id, project=row.project))
        _add(into, row)
    everything = AiUsageOut()
    for row in rows:
        _add(everything, row)
    ordered = sorted(projects.values(), key=lambda p: (-p.cost_usd, p.project))
    return CostReport(since=since, until=utcnow(), total=everything, projects=ordered, rows=rows)


def _add(into: AiUsageOut, row: CostRow) -> None:
    into.calls += row.calls
    into.input_tokens += row.input_tokens
    into.output_tokens += row.output_tokens
    into.cost_usd = round(into.cost_usd + row.cost_usd, 6)
    into.unpriced_calls += row.unpriced_calls


async def totals_by_purpose(session: AsyncSession) -> list[tuple[str, str, CostTotal]]:
    """Every call ever, summed per purpose and provider (for Prometheus counters, which only grow)."""
    query = select(AiCall.purpose, AiCall.provider, *_SUMS).group_by(AiCall.purpose, AiCall.provider)
    return [
        (purpose, provider, CostTotal(int(c), int(i), int(o), float(cost or 0.0), int(u or 0)))
        for purpose, provider, c, i, o, cost, u in (await session.execute(query)).all()
    ]
