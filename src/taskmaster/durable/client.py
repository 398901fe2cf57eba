"""`JobClient`: enqueue and inspect durable jobs from a process that does not run DBOS (the API).

It talks to DBOS's system database only, through `dbos.DBOSClient`, with every call off the event loop.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final, TypeVar

from dbos import DBOSClient, EnqueueOptions, StepInfo, WorkflowStatus
from sqlalchemy.exc import InterfaceError, OperationalError

from taskmaster.config import Settings
from taskmaster.core.errors import NotFound, Unavailable
from taskmaster.core.logging import current_request_id
from taskmaster.durable import names
from taskmaster.durable.engine import ensure_system_database, system_database_url

T = TypeVar("T")

TERMINAL_STATUSES: Final = frozenset({"SUCCESS", "ERROR", "CANCELLED", "MAX_RECOVERY_ATTEMPTS_EXCEEDED"})


@dataclass(frozen=True)
class JobStatus:
    """A job as DBOS records it. `status` is DBOS's: ENQUEUED, PENDING, SUCCESS, ERROR, CANCELLED, …"""

    id: str
    name: str
    status: str
    result: Any
    error: str | None
    created_at: datetime | None
    updated_at: datetime | None
    executor_id: str | None
    queue: str | None
    request_id: str | None

    @property
    def done(self) -> bool:
        """True once the job can change no more (succeeded, failed or was cancelled)."""
        return self.status in TERMINAL_STATUSES


@dataclass(frozen=True)
class JobStep:
    """One recorded step of a job, in order. `index` is DBOS's function id (1 = first operation)."""

    index: int
    name: str
    output: Any
    error: str | None
    started_at: datetime | None
    completed_at: datetime | None

    @property
    def completed(self) -> bool:
        return self.completed_at is not None


class JobClient:
    """Enqueue and read jobs. Cheap to build: it connects on first use and creates DBOS's tables if missing.

    One per process, shared by concurrent requests (the underlying pool is thread-safe). Each method
    runs the blocking DBOS call in a thread. A database that cannot be reached raises `Unavailable`
    at once rather than waiting for it to come back. `close()` releases the connections.
    """

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._client: DBOSClient | None = None
        self._lock = threading.Lock()

    async def enqueue(
        self,
        workflow_name: str,
        *args: Any,
        queue: str = names.QUEUE,
        request_id: str | None = None,
        job_id: str | None = None,
        **kwargs: Any,
    ) -> str:
        """Put a job on `queue` for any worker to run; returns its id at once.

        The correlation id goes to the job as its `request_id` keyword argument (every Taskmaster job
        takes one); unset, it is the one bound in this context, e.g. by the API's request middleware.
        With `job_id`, enqueuing again under the same id returns that job instead of making another.
        """
        options = EnqueueOptions(workflow_name=workflow_name, queue_name=queue, application_name=names.APP_NAME)
        if job_id is not None:
            options["workflow_id"] = job_id
        rid = request_id if request_id is not None else current_request_id()
        return await self._call(lambda c: c.enqueue(options, *args, request_id=rid, **kwargs).workflow_id)

    async def get(self, job_id: str) -> JobStatus:
        """The job's current state; raises `NotFound` for an id no job has."""
        found = await self._call(lambda c: c.list_workflows(workflow_ids=[job_id]))
        if not found:
            raise NotFound(f"no job with id {job_id!r}", job_id=job_id)
        return _job_status(found[0])

    async def list_steps(self, job_id: str) -> list[JobStep]:
        """The job's recorded steps in order (empty before it starts, or for an unknown id)."""
        steps = await self._call(lambda c: c.list_workflow_steps(job_id))
        return [_job_step(step) for step in steps]

    async def wait(self, job_id: str, *, poll_seconds: float = 0.2) -> JobStatus:
        """Poll until the job is done and return it; `NotFound` if unknown. Bound it by `asyncio.timeout`."""
        while True:
            job = await self.get(job_id)
            if job.done:
                return job
            await asyncio.sleep(poll_seconds)

    def close(self) -> None:
        """Release the connections (quick: it only closes pooled ones). The client may connect again later."""
        with self._lock:
            client, self._client = self._client, None
        if client is not None:
            client.destroy()

    async def __aenter__(self) -> JobClient:
        return self

    async def __aexit__(self, *_: object) -> None:
        self.close()

    async def _call(self, fn: Callable[[DBOSClient], T]) -> T:
        def run() -> T:
            return fn(self._connected())

        try:
            return await asyncio.to_thread(run)
        except (OperationalError, InterfaceError) as exc:
            raise Unavailable(f"the job database cannot be reached: {exc.orig or exc}") from exc

    def _connected(self) -> DBOSClient:
        with self._lock:
            if self._client is None:
                ensure_system_database(self._settings)
                self._client = DBOSClient(
                    system_database_url=system_database_url(self._settings),
                    dbos_system_schema=names.SYSTEM_SCHEMA,
                    application_name=names.APP_NAME,
                    retry_connection_errors=False,
                )
            return self._client


def _job_status(status: WorkflowStatus) -> JobStatus:
    kwargs = status.input["kwargs"] if status.input else {}
    request_id = kwargs.get("request_id")
    return JobStatus(
        id=status.workflow_id,
        name=status.name,
        status=status.status,
        result=status.output,
        error=_describe(status.error),
        created_at=_from_epoch_ms(status.created_at),
        updated_at=_from_epoch_ms(status.updated_at),
        executor_id=status.executor_id,
        queue=status.queue_name,
        request_id=request_id if isinstance(request_id, str) else None,
    )


def _job_step(step: StepInfo) -> JobStep:
    return JobStep(
        index=step["function_id"],
        name=step["function_name"],
        output=step["output"],
        error=_describe(step["error"]),
        started_at=_from_epoch_ms(step["started_at_epoch_ms"]),
        completed_at=_from_epoch_ms(step["completed_at_epoch_ms"]),
    )


def _describe(error: BaseException | None) -> str | None:
    return None if error is None else f"{type(error).__name__}: {error}"


def _from_epoch_ms(value: int | None) -> datetime | None:
    return None if value is None else datetime.fromtimestamp(value / 1000, UTC)
