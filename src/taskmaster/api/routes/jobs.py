"""/api/jobs: durable maintenance jobs, enqueued here and run by a worker (in-process or separate)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request, status
from pydantic import BaseModel, Field

from taskmaster.api.deps import Admin, ServicesDep, Viewer
from taskmaster.core.errors import Unavailable
from taskmaster.durable.names import NOOP_WORKFLOW

router = APIRouter(prefix="/api/jobs", tags=["jobs"])


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
