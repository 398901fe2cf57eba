"""`JobClient` enqueues and reads jobs with no DBOS running in its process, on SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
import structlog

from taskmaster.config import Settings
from taskmaster.core.errors import NotFound
from taskmaster.durable.client import JobClient
from taskmaster.durable.names import NOOP_WORKFLOW, QUEUE


@pytest.fixture
async def client(settings: Settings) -> AsyncIterator[JobClient]:
    jobs = JobClient(settings)
    try:
        yield jobs
    finally:
        jobs.close()


async def test_get_of_an_unknown_job_raises_not_found(client: JobClient) -> None:
    with pytest.raises(NotFound) as caught:
        await client.get("no-such-job")

    assert caught.value.extra == {"job_id": "no-such-job"}
    assert await client.list_steps("no-such-job") == []


async def test_a_job_enqueued_before_any_worker_waits_with_the_bound_request_id(client: JobClient) -> None:
    with structlog.contextvars.bound_contextvars(request_id="req-from-context"):
        job_id = await client.enqueue(NOOP_WORKFLOW, 2, 0.0)

    job = await client.get(job_id)

    assert job.id == job_id
    assert job.name == NOOP_WORKFLOW
    assert job.status == "ENQUEUED"
    assert job.queue == QUEUE
    assert job.request_id == "req-from-context"
    assert not job.done
    assert job.created_at is not None
    assert job.created_at.tzinfo is not None
    assert await client.list_steps(job_id) == []


async def test_enqueue_with_a_job_id_twice_keeps_one_job(client: JobClient) -> None:
    first = await client.enqueue(NOOP_WORKFLOW, 1, 0.0, job_id="delivery-42", request_id="r1")
    second = await client.enqueue(NOOP_WORKFLOW, 1, 0.0, job_id="delivery-42", request_id="r2")

    assert first == second == "delivery-42"
    assert (await client.get("delivery-42")).request_id == "r1"
