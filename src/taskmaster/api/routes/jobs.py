"""/api/jobs: durable maintenance jobs, enqueued here and run by a worker (in-process or separate)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request, status

from taskmaster.api.deps import Admin, ServicesDep, Viewer
from taskmaster.core.errors import Unavailable
from taskmaster.durable.names import NOOP_WORKFLOW
from taskmaster.durable.schemas import JobOut, NoopSpec

router = APIRouter(prefix="/api/jobs", tags=["jobs"])


def _queue(services: ServicesDep) -> Any:
    if services.jobs is None:
        raise Unavailable("the durable job queue is not configured in this process")
    return services.jobs


@router.post("/noop", status_code=status.HTTP_202_ACCEPTED)
async def enqueue_noop(spec: NoopSpec, request: Request, services: ServicesDep, _: Admin) -> JobOut:
    """Enqueue the built-in `noop` maintenance job: a chain of durable steps that only sleep."""
    job_id = await _queue(services).enqueue(
        NOOP_WORKFLOW, spec.steps, spec.step_seconds, request_id=request.state.request_id
    )
    return JobOut(id=job_id, name=NOOP_WORKFLOW, status="ENQUEUED")


@router.get("/{job_id}")
async def get_job(job_id: str, services: ServicesDep, _: Viewer) -> JobOut:
    job = await _queue(services).get(job_id)
    return JobOut.model_validate(job, from_attributes=True)
