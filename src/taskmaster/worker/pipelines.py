"""The worker's pipeline loop: claim pending pipelines, take over those of dead workers, run them with the engine.

Ownership rules are in `pipelines.leases`. Each round (a poll, or a wake-up after a webhook stored work):
- every `heartbeat_seconds`, the reaper part: end pipelines stuck past `pipeline_max_seconds`; resume this worker's
  own live pipelines that no engine here runs (a restart under the same name, or after its lease lapsed and came
  back); take over live pipelines whose worker's heartbeat went stale;
- claim pending pipelines while this worker has free slots (`worker.concurrency` pipelines at a time).
The engine plans a claimed pipeline (fetching the repository) outside any claim transaction.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid

import structlog

from taskmaster.pipelines import leases
from taskmaster.pipelines.engine import LeaseLost
from taskmaster.pipelines.leases import Lease
from taskmaster.pipelines.states import PipelineStatus
from taskmaster.runtime import Runtime
from taskmaster.worker.forges import ForgeUpdates
from taskmaster.worker.loop import PollingLoop
from taskmaster.workflows.recovery import request_recovery

log = structlog.stdlib.get_logger("taskmaster.worker.pipelines")


class PipelineLoop(PollingLoop):
    """Runs pipelines until stopped; `wake()` skips the poll wait (a webhook just requested one)."""

    name = "pipelines"

    def __init__(self, runtime: Runtime, *, worker_id: str, lease: Lease | None = None) -> None:
        super().__init__(runtime.settings.webhooks.poll_seconds)
        self.settings = runtime.settings
        self.db = runtime.db
        self.worker_id = worker_id
        self.lease = lease
        self.updates = ForgeUpdates(runtime.db, runtime.forges)
        # A step that failed for its code gets a recovery run when its project has a recovery agent.
        self.engine = runtime.engine(
            worker_id=worker_id, lease=lease, on_change=self.updates, recovery=request_recovery
        )
        self._running: dict[uuid.UUID, asyncio.Task[PipelineStatus | None]] = {}
        self._next_reap = 0.0

    async def stop(self) -> None:
        """Stop taking pipelines and stop the running ones; they stay owned by this worker, which resumes them when
        it starts again under the same name, or another worker takes them over once this one is marked stopped."""
        await super().stop()
        for running in list(self._running.values()):
            running.cancel()
        for running in list(self._running.values()):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await running
        await self.updates.aclose()  # the sites are the runtime's: it closes them

    async def drain(self) -> None:
        if self.lease is not None and not self.lease.valid:
            return  # without a fresh heartbeat this worker must not start anything: another may take it over
        if time.monotonic() >= self._next_reap:
            self._next_reap = time.monotonic() + self.settings.worker.heartbeat_seconds
            await self.reap()
        while self._free() and (claimed := await self._claim()) is not None:
            self._launch(claimed)

    async def reap(self) -> None:
        """End stuck pipelines, resume this worker's own orphans, take over dead workers' pipelines."""
        worker = self.settings.worker
        async with self.db.transaction() as session:
            ended = await leases.end_stuck(session, max_seconds=worker.pipeline_max_seconds, dialect=self.db.dialect)
        for pipeline_id in ended:
            log.warning("stuck pipeline ended", pipeline_id=str(pipeline_id), limit=worker.pipeline_max_seconds)
            await self.updates(pipeline_id)  # noted; reported in the background
        async with self.db.session() as session:
            mine = await leases.owned_by(session, self.worker_id)
            lost = await leases.find_lost(
                session, worker_id=self.worker_id, stale_after_seconds=worker.stale_after_seconds
            )
        for pipeline_id in mine:
            if pipeline_id not in self._running and self._free():
                log.info("resuming pipeline", pipeline_id=str(pipeline_id))
                self._launch(pipeline_id)
        for item in lost:
            if not self._free():
                break
            async with self.db.transaction() as session:
                won = await leases.take_over(session, item, worker_id=self.worker_id)
            if won:
                log.warning(
                    "taking over pipeline of a lost worker",
                    pipeline_id=str(item.pipeline_id),
                    previous_worker=item.previous_owner,
                )
                self._launch(item.pipeline_id)

    def _free(self) -> bool:
        return len(self._running) < self.settings.worker.concurrency

    async def _claim(self) -> uuid.UUID | None:
        return await leases.claim_next(
            self.db, self.worker_id, project_concurrency=self.settings.worker.project_concurrency
        )

    def _launch(self, pipeline_id: uuid.UUID) -> None:
        task = asyncio.create_task(self._drive(pipeline_id), name=f"pipeline-{pipeline_id}")
        self._running[pipeline_id] = task

    async def _drive(self, pipeline_id: uuid.UUID) -> PipelineStatus | None:
        try:
            status = await self.engine.run(pipeline_id)
            log.info("pipeline finished", pipeline_id=str(pipeline_id), status=status.value)
            return status
        except asyncio.CancelledError:
            raise
        except LeaseLost as exc:
            log.warning("pipeline left to another worker", pipeline_id=str(pipeline_id), reason=exc.detail)
            return None
        except Exception:
            log.exception("pipeline engine failed", pipeline_id=str(pipeline_id))
            return None
        finally:
            self._running.pop(pipeline_id, None)
            self.wake()  # a slot is free: claim the next pending pipeline now
