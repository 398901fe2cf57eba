"""`WorkerRuntime`: DBOS launched with Taskmaster's jobs, plus the heartbeat, as one start/stop unit.

Runs inside `taskmaster serve` (mode "in-process") or as `taskmaster worker` (mode "process").
"""

from __future__ import annotations

import asyncio
import importlib

import structlog

from taskmaster.core.errors import Conflict, TaskmasterError, Unavailable
from taskmaster.durable import engine, names
from taskmaster.durable.engine import WorkerMode
from taskmaster.pipelines.leases import Lease
from taskmaster.runtime import Runtime
from taskmaster.worker.heartbeat import Heartbeat, WorkerIdentity
from taskmaster.worker.pipelines import PipelineLoop
from taskmaster.worker.webhooks import WebhookLoop
from taskmaster.worker.workflows import WorkflowLoop

log = structlog.stdlib.get_logger("taskmaster.worker")

JOB_MODULES = ("taskmaster.worker.jobs",)
"""Modules whose import registers jobs with DBOS; imported at start so the API process never needs them."""


class WorkerRuntime:
    """One per process (DBOS is a process-wide singleton): `start()` once, then `stop()`.

    `start()` launches DBOS (blocking parts in a thread, so it is safe inside a running event loop),
    which also recovers this executor's unfinished jobs, then starts heart-beating. It raises
    `Conflict` if a runtime already runs in this process and `Unavailable` if DBOS cannot launch.
    `stop()` stops taking jobs, waits up to `shutdown_grace_seconds` for running ones, tears DBOS
    down and marks the worker `stopped`; it never raises and may be called more than once.
    """

    def __init__(self, runtime: Runtime, *, mode: WorkerMode, shutdown_grace_seconds: float = 10.0) -> None:
        settings = self.settings = runtime.settings
        self.db = runtime.db
        self.runtime = runtime
        self.mode: WorkerMode = mode
        self.shutdown_grace_seconds = shutdown_grace_seconds
        self.executor_id = engine.executor_id(settings, mode)
        self._heartbeat: Heartbeat | None = None
        self._running = False
        # The pipelines' lease lapses when heartbeats stop reaching the database for half the time after which
        # other workers presume this one dead: its steps stop before anyone can take them over.
        self.lease = Lease(settings.worker.stale_after_seconds / 2)
        self.pipelines = PipelineLoop(runtime, worker_id=self.executor_id, lease=self.lease)
        self.workflows = WorkflowLoop(
            settings, runtime.db, worker_id=self.executor_id, lease=self.lease, registry=runtime.workflows()
        )
        self.webhooks = WebhookLoop(runtime, on_processed=self._processed)

    @property
    def running(self) -> bool:
        return self._running

    def wake(self) -> None:
        """New work was stored by this process (a webhook delivery, a pipeline): look now, not at the next poll."""
        self.webhooks.wake()
        self.pipelines.wake()
        self.workflows.wake()

    def _processed(self) -> None:
        """A delivery was processed: it may have requested pipelines or workflow runs."""
        self.pipelines.wake()
        self.workflows.wake()

    async def start(self) -> None:
        if self._running:
            raise Conflict(f"worker {self.executor_id} is already started")
        try:
            await asyncio.to_thread(self._launch)
        except TaskmasterError:
            raise
        except Exception as exc:
            raise Unavailable(f"the durable engine could not start: {exc}") from exc
        self._running = True
        identity = WorkerIdentity(
            name=self.executor_id,
            mode=self.mode,
            capabilities={"queues": [names.QUEUE], "concurrency": self.settings.worker.concurrency},
        )
        self._heartbeat = Heartbeat(
            self.db, identity, interval_seconds=self.settings.worker.heartbeat_seconds, on_beat=self.lease.renewed
        )
        await self._heartbeat.start()
        self.webhooks.start()
        self.pipelines.start()
        self.workflows.start()
        log.info("worker started", worker=self.executor_id, mode=self.mode, queue=names.QUEUE)

    async def stop(self) -> None:
        if not self._running:
            return
        self._running = False
        heartbeat, self._heartbeat = self._heartbeat, None
        await self.webhooks.stop()
        await self.pipelines.stop()
        await self.workflows.stop()
        try:
            await asyncio.to_thread(engine.shutdown, self.shutdown_grace_seconds)
        except Exception as exc:  # stopping must not fail the caller's shutdown
            log.warning("durable engine did not shut down cleanly", error=str(exc))
        finally:
            if heartbeat is not None:
                await heartbeat.stop()
        log.info("worker stopped", worker=self.executor_id)

    def _launch(self) -> None:
        for module in JOB_MODULES:
            importlib.import_module(module)
        engine.launch(self.settings, mode=self.mode)
