"""/api/metrics/pipelines and /api/projects/{project_id}/metrics/pipelines (the seed's figures, Viewer),
/api/metrics/costs (tokens and cost of AI calls per project and purpose), and /metrics (Prometheus text exposition).

`/metrics` needs no credentials: scrapers usually have none, and its labels are bounded vocabularies only (pipeline
type, step type, status), never project names, branches or error text. Put it behind the network (an internal port
or a proxy rule) where even those counts must stay private. Its figures are read from the database at scrape time,
through a collector in a registry private to the app, so every process answers with the same numbers.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Annotated

from fastapi import APIRouter, FastAPI, Query, Request, Response
from prometheus_client import CollectorRegistry
from prometheus_client.exposition import choose_encoder
from sqlalchemy.ext.asyncio import AsyncSession

from taskmaster.api.deps import ReadSessionDep, ScopedViewer, Viewer, project_filter
from taskmaster.core.clock import utcnow
from taskmaster.core.errors import InvalidInput
from taskmaster.costs.metrics import AiCallCollector
from taskmaster.costs.schemas import CostReport
from taskmaster.costs.service import report
from taskmaster.pipelines import metrics
from taskmaster.projects.service import get_project

router = APIRouter(tags=["metrics"])

WindowQuery = Annotated[str, Query(description="How far back: 90m, 24h, 7d, 2w.")]
TopQuery = Annotated[int, Query(ge=0, le=50, description="How many failing steps to list.")]


@router.get("/api/metrics/pipelines")
async def pipeline_metrics(
    session: ReadSessionDep,
    principal: ScopedViewer,
    window: WindowQuery = "24h",
    project: Annotated[str | None, Query(description="Only this project (name or id).")] = None,
    top: TopQuery = metrics.TOP_FAILING_STEPS,
) -> metrics.Metrics:
    """Success rate by pipeline type, counts by status, average and median durations, the most common failing
    steps with their latest errors, and the pipelines stuck now. A credential limited to a project gets that
    project's figures (403 for `project` naming another)."""
    span = metrics.parse_window(window)
    project_id = await project_filter(session, principal, project)
    return await _figures(session, span, project_id, top)


@router.get("/api/projects/{project_id}/metrics/pipelines")
async def project_pipeline_metrics(
    project_id: str,
    session: ReadSessionDep,
    _: Viewer,
    window: WindowQuery = "24h",
    top: TopQuery = metrics.TOP_FAILING_STEPS,
) -> metrics.Metrics:
    """The same figures for one project (its id or name)."""
    span = metrics.parse_window(window)
    return await _figures(session, span, (await get_project(session, project_id)).id, top)


async def _figures(session: AsyncSession, span: timedelta, project_id: uuid.UUID | None, top: int) -> metrics.Metrics:
    now = utcnow()
    return await metrics.pipeline_metrics(session, since=now - span, project_id=project_id, now=now, top=top)


@router.get("/api/metrics/costs")
async def cost_metrics(
    session: ReadSessionDep,
    principal: ScopedViewer,
    since: Annotated[
        datetime | None, Query(description="Only calls from this time on (ISO 8601); overrides `window`.")
    ] = None,
    window: Annotated[str | None, Query(description="Or how far back: 90m, 24h, 7d, 2w (default: every call).")] = None,
    project: Annotated[str | None, Query(description="Only this project (name or id).")] = None,
) -> CostReport:
    """Tokens and cost of AI calls: in all, per project, and per project and purpose (prd.parse, task.expand,
    codegen, review, recovery, ...), costliest first. A credential limited to a project gets that project's
    figures (403 for `project` naming another)."""
    start = since if since is not None else (utcnow() - metrics.parse_window(window) if window else None)
    if start is not None and start.tzinfo is None:
        raise InvalidInput("`since` needs a time zone (e.g. 2026-12-01T00:00:00Z)", field="since")
    project_id = await project_filter(session, principal, project)
    return await report(session, since=start, project_id=project_id)


@dataclass
class _Exposition:
    registry: CollectorRegistry
    collector: metrics.PipelineCollector
    ai: AiCallCollector


def _exposition(app: FastAPI) -> _Exposition:
    """The app's own registry (never the global default one), made on the first scrape."""
    found: _Exposition | None = getattr(app.state, "prometheus", None)
    if found is None:
        collector = metrics.PipelineCollector()
        ai = AiCallCollector()
        registry = CollectorRegistry(auto_describe=False)
        registry.register(collector)
        registry.register(ai)
        found = app.state.prometheus = _Exposition(registry, collector, ai)
    return found


@router.get("/metrics", response_class=Response)
async def prometheus_metrics(request: Request, session: ReadSessionDep) -> Response:
    """Prometheus exposition: finished pipelines and steps by type and status, their durations, live and stuck
    pipelines; AI calls, tokens and cost by purpose and provider. Needs no credentials (see the module's docstring)."""
    exposition = _exposition(request.app)
    await exposition.ai.refresh(session)
    await exposition.collector.refresh(session)
    # No await between the refresh and the rendering: a concurrent scrape cannot swap the snapshot in between.
    encoder, content_type = choose_encoder(request.headers.get("accept", ""))
    return Response(encoder(exposition.registry), media_type=content_type)
