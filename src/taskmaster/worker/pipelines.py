"""The worker's pipeline loop: take pending pipelines (from webhooks), plan them and run them with the engine.

A pipeline is taken in one transaction (`FOR UPDATE SKIP LOCKED` on PostgreSQL, so workers sharing a database
never take the same one): planned from `.taskmaster.yml` at its commit, then moved to `queued`. The engine then
runs it; at most `worker.concurrency` pipelines at a time in this process.

On the embedded default there is one worker, in the server's process, so at start-up any pipeline left `queued` or
`running` was orphaned by a previous run of this process: it is resumed (lost attempts are retried). With several
workers on PostgreSQL that needs a heartbeat per pipeline, which the reaper (not built yet) will own.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid

import structlog
from sqlalchemy import select

from taskmaster.config import Settings
from taskmaster.db.models import Pipeline, Project
from taskmaster.db.session import Database
from taskmaster.pipelines import transitions
from taskmaster.pipelines.engine import PipelineEngine
from taskmaster.pipelines.runs import plan_pipeline
from taskmaster.pipelines.states import PipelineStatus
from taskmaster.secrets import SecretBox
from taskmaster.worker.forges import ForgeUpdates
from taskmaster.worker.loop import PollingLoop
from taskmaster.workspaces.git_cache import MirrorCache

log = structlog.stdlib.get_logger("taskmaster.worker.pipelines")


class PipelineLoop(PollingLoop):
    """Runs pending pipelines until stopped; `wake()` skips the poll wait (a webhook just requested one)."""

    name = "pipelines"

    def __init__(self, settings: Settings, db: Database, box: SecretBox, *, worker_id: str | None = None) -> None:
        super().__init__(settings.webhooks.poll_seconds)
        self.settings = settings
        self.db = db
        self.box = box
        self.mirror = MirrorCache.from_settings(settings)
        self.engine = PipelineEngine(db, settings, self.mirror, worker_id=worker_id, on_change=ForgeUpdates(db, box))
        self._slots = asyncio.Semaphore(settings.worker.concurrency)
        self._running: set[asyncio.Task[PipelineStatus | None]] = set()

    async def stop(self) -> None:
        """Stop taking pipelines and stop the running ones; they stay `running` and are resumed on the next start."""
        await super().stop()
        for running in list(self._running):
            running.cancel()
        for running in list(self._running):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await running

    async def prepare(self) -> None:
        if self.settings.embedded:
            for orphan in await self._orphans():
                await self._launch(orphan)

    async def drain(self) -> None:
        while (taken := await self._take()) is not None:
            await self._launch(taken)

    async def _launch(self, pipeline_id: uuid.UUID) -> None:
        await self._slots.acquire()
        task = asyncio.create_task(self._drive(pipeline_id), name=f"pipeline-{pipeline_id}")
        self._running.add(task)
        task.add_done_callback(self._running.discard)

    async def _drive(self, pipeline_id: uuid.UUID) -> PipelineStatus | None:
        try:
            status = await self.engine.run(pipeline_id)
            log.info("pipeline finished", pipeline_id=str(pipeline_id), status=status.value)
            return status
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("pipeline engine failed", pipeline_id=str(pipeline_id))
            return None
        finally:
            self._slots.release()

    async def _take(self) -> uuid.UUID | None:
        """Plan the oldest pending pipeline and mark it `queued`, in one transaction; None when none is pending."""
        async with self.db.transaction() as session:
            query = (
                select(Pipeline)
                .where(Pipeline.status == PipelineStatus.PENDING.value)
                .order_by(Pipeline.created_at)
                .limit(1)
            )
            if self.db.dialect == "postgresql":
                query = query.with_for_update(skip_locked=True)
            pipeline = await session.scalar(query)
            if pipeline is None:
                return None
            project = await session.get(Project, pipeline.project_id)
            token = self.box.decrypt(project.forge_token) if project is not None else None
            try:
                await plan_pipeline(session, pipeline, mirror=self.mirror, token=token)
            except Exception as exc:  # the repository cannot be fetched: an error the user can see, not a crash
                transitions.apply(pipeline, transitions.ERROR, reason=f"could not plan the pipeline: {exc}")
                return pipeline.id
            if pipeline.status == PipelineStatus.PENDING.value:
                transitions.apply(pipeline, transitions.QUEUE)
            return pipeline.id

    async def _orphans(self) -> list[uuid.UUID]:
        async with self.db.session() as session:
            rows = await session.scalars(
                select(Pipeline.id).where(
                    Pipeline.status.in_([PipelineStatus.QUEUED.value, PipelineStatus.RUNNING.value])
                )
            )
            return list(rows.all())
