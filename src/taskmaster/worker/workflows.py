"""The worker's workflow loop: claim pending workflow runs, take over those of dead workers, run them by kind.

Ownership is the lease of `db.leases` (as for pipelines): a run is held while this worker's heartbeat is fresh; every
`heartbeat_seconds` the loop starts again its own live runs that nothing here runs (a restart under the same name)
and takes over live runs whose worker went stale. At most `worker.concurrency` runs at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid

import structlog

from taskmaster.config import Settings
from taskmaster.db.leases import Lease
from taskmaster.db.session import Database
from taskmaster.worker.loop import PollingLoop
from taskmaster.workflows import service
from taskmaster.workflows.base import RunInput, RunResult, SweepingKind
from taskmaster.workflows.registry import WorkflowRegistry, default_workflows

log = structlog.stdlib.get_logger("taskmaster.worker.workflows")


class WorkflowLoop(PollingLoop):
    """Runs workflow runs until stopped; `wake()` skips the poll wait (a run was just requested)."""

    name = "workflows"

    def __init__(
        self,
        settings: Settings,
        db: Database,
        *,
        worker_id: str,
        lease: Lease | None = None,
        registry: WorkflowRegistry | None = None,
    ) -> None:
        super().__init__(settings.webhooks.poll_seconds)
        self.settings = settings
        self.db = db
        self.worker_id = worker_id
        self.lease = lease
        self.registry = registry if registry is not None else default_workflows()
        self._running: dict[uuid.UUID, asyncio.Task[None]] = {}
        self._next_reap = 0.0

    async def stop(self) -> None:
        """Stop taking runs and stop the running ones; they stay owned by this worker (resumed when it starts again
        under its name, or taken over once it is marked stopped)."""
        await super().stop()
        for running in list(self._running.values()):
            running.cancel()
        for running in list(self._running.values()):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await running

    async def drain(self) -> None:
        if self.lease is not None and not self.lease.valid:
            return  # without a fresh heartbeat this worker must not start anything: another may take it over
        if time.monotonic() >= self._next_reap:
            self._next_reap = time.monotonic() + self.settings.worker.heartbeat_seconds
            await self.reap()
        while self._free():
            claimed = await service.claim_next(self.db, self.worker_id, kinds=list(self.registry))
            if claimed is None:
                return
            self._launch(claimed)

    async def reap(self) -> None:
        """Start again this worker's own orphaned runs; take over the runs of workers that are gone; let the kinds
        that leave things behind tidy up after runs that ended without their cleanup (`SweepingKind`)."""
        async with self.db.session() as session:
            mine = await service.owned_by(session, self.worker_id)
            lost = await service.find_lost(
                session, worker_id=self.worker_id, stale_after_seconds=self.settings.worker.stale_after_seconds
            )
        for run_id in mine:
            if run_id not in self._running and self._free():
                await self._restart(run_id)
        for item in lost:
            if not self._free():
                return
            async with self.db.transaction() as session:
                won = await service.take_over_run(session, item, worker_id=self.worker_id)
            if won:
                log.warning(
                    "taking over workflow run of a lost worker",
                    run_id=str(item.row_id),
                    previous_worker=item.previous_owner,
                )
                await self._restart(item.row_id)
        for kind in self.registry.values():
            if isinstance(kind, SweepingKind):
                try:
                    await kind.sweep(self.db)
                except Exception:  # the loop must go on; the next reap tries again
                    log.exception("workflow sweep failed", kind=kind.name)

    def _free(self) -> bool:
        return len(self._running) < self.settings.worker.concurrency

    async def _restart(self, run_id: uuid.UUID) -> None:
        started = await service.restart(self.db, run_id, self.worker_id)
        if started is not None:
            self._launch(started)

    def _launch(self, run: RunInput) -> None:
        self._running[run.run_id] = asyncio.create_task(self._drive(run), name=f"workflow-{run.kind}-{run.run_id}")

    async def _drive(self, run: RunInput) -> None:
        try:
            kind = self.registry.get(run.kind)
            if kind is None:
                outcome = RunResult("failed", error=f"this worker has no workflow kind {run.kind!r}")
            else:
                try:
                    outcome = await kind.run(self.db, run)
                except asyncio.CancelledError:
                    raise
                except Exception as exc:
                    log.exception("workflow run failed", run_id=str(run.run_id), kind=run.kind)
                    outcome = RunResult("failed", error=f"{type(exc).__name__}: {exc}"[:1000])
            if not await service.finish(self.db, run.run_id, self.worker_id, outcome):
                log.warning("workflow run was taken over before it finished here", run_id=str(run.run_id))
            else:
                log.info("workflow run finished", run_id=str(run.run_id), kind=run.kind, status=outcome.status)
        finally:
            self._running.pop(run.run_id, None)
            self.wake()
