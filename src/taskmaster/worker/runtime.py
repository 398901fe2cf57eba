"""`WorkerRuntime`: the heartbeat and the worker's loops (webhook deliveries, pipelines, workflow runs, the local
forge's watch) as one start/stop unit. Runs inside `taskmaster serve` (mode "in-process") or as `taskmaster worker`
(mode "process").
"""

from __future__ import annotations

import structlog

from taskmaster.core.errors import Conflict
from taskmaster.pipelines.leases import Lease
from taskmaster.runtime import Runtime
from taskmaster.worker.heartbeat import Heartbeat, WorkerIdentity, WorkerMode, worker_id
from taskmaster.worker.localforge import LocalForgeWatch
from taskmaster.worker.pipelines import PipelineLoop
from taskmaster.worker.webhooks import WebhookLoop
from taskmaster.worker.workflows import WorkflowLoop

log = structlog.stdlib.get_logger("taskmaster.worker")
_STARTED: set[str] = set()
"""Worker ids running in this process: two runtimes under one id would fight over the same leases."""


class WorkerRuntime:
    """`start()` once, then `stop()`.

    `start()` writes the first heartbeat and starts the loops; work this worker held when it died, and work of
    workers whose heartbeat went stale, is taken over by those loops through the leases (`db.leases`). It raises
    `Conflict` if a runtime with the same worker id already runs in this process. `stop()` stops the loops (their
    running work stays owned by this worker id, to be resumed or taken over) and marks the worker `stopped`; it
    never raises and may be called more than once.
    """

    def __init__(self, runtime: Runtime, *, mode: WorkerMode) -> None:
        settings = self.settings = runtime.settings
        self.db = runtime.db
        self.runtime = runtime
        self.mode: WorkerMode = mode
        self.worker_id = worker_id(settings, mode)
        self._heartbeat: Heartbeat | None = None
        self._running = False
        # The pipelines' lease lapses when heartbeats stop reaching the database for half the time after which
        # other workers presume this one dead: its steps stop before anyone can take them over.
        self.lease = Lease(settings.worker.stale_after_seconds / 2)
        self.pipelines = PipelineLoop(runtime, worker_id=self.worker_id, lease=self.lease)
        registry = runtime.workflows().with_kinds(runtime.recovery(worker_id=self.worker_id, lease=self.lease))
        self.workflows = WorkflowLoop(
            settings, runtime.db, worker_id=self.worker_id, lease=self.lease, registry=registry
        )
        self.webhooks = WebhookLoop(runtime, on_processed=self._processed)
        runtime.wake_webhooks = self.wake  # local-forge events raised in this process are processed at once
        self.local_forge = LocalForgeWatch(
            runtime.db, poll_seconds=settings.forges.local_poll_seconds, on_event=self.webhooks.wake
        )

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
        if self._running or self.worker_id in _STARTED:
            raise Conflict(f"worker {self.worker_id} is already started in this process")
        _STARTED.add(self.worker_id)
        self._running = True
        identity = WorkerIdentity(
            name=self.worker_id, mode=self.mode, capabilities={"concurrency": self.settings.worker.concurrency}
        )
        self._heartbeat = Heartbeat(
            self.db, identity, interval_seconds=self.settings.worker.heartbeat_seconds, on_beat=self.lease.renewed
        )
        await self._heartbeat.start()
        self.webhooks.start()
        self.pipelines.start()
        self.workflows.start()
        self.local_forge.start()
        log.info("worker started", worker=self.worker_id, mode=self.mode)

    async def stop(self) -> None:
        if not self._running:
            return
        self._running = False
        heartbeat, self._heartbeat = self._heartbeat, None
        await self.local_forge.stop()
        await self.webhooks.stop()
        await self.pipelines.stop()
        await self.workflows.stop()
        if heartbeat is not None:
            await heartbeat.stop()
        _STARTED.discard(self.worker_id)
        log.info("worker stopped", worker=self.worker_id)
