"""`AttachedRuns`: run chosen workflow runs in this process as their owner, as `taskmaster codegen run` does on the
embedded default where no worker runs them (the way `pipeline run` runs its pipeline: own name, own heartbeat)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Collection

from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession

from taskmaster.config import Settings
from taskmaster.db.leases import Lease
from taskmaster.db.models import WorkflowRun
from taskmaster.db.session import Database
from taskmaster.worker.workflows import WorkflowLoop
from taskmaster.workflows import service
from taskmaster.workflows.registry import WorkflowRegistry

RUNS_PER_AGENT = 2
"""Runs in flight per agent slot: one in its agent, one before or after it."""


async def adopt(session: AsyncSession, run_ids: Collection[uuid.UUID], *, owner: str) -> list[uuid.UUID]:
    """Make `owner` the owner of those of `run_ids` that are still `pending` and unowned (so no worker claims them);
    the ones it got. A run some worker already owns is left to it. In the caller's transaction."""
    adopted: list[uuid.UUID] = []
    for run_id in run_ids:
        result = await session.execute(
            update(WorkflowRun)
            .where(WorkflowRun.id == run_id, WorkflowRun.status == "pending", WorkflowRun.worker_id.is_(None))
            .values(worker_id=owner)
            .execution_options(synchronize_session=False)
        )
        if getattr(result, "rowcount", 0) == 1:
            adopted.append(run_id)
    return adopted


class AttachedRuns(WorkflowLoop):
    """A workflow loop that runs only the runs this process owns (see `adopt`): at most `max_parallel` agents at
    once (the project's slots), and twice as many runs, so that a run prepares its checkout and prompt, or pushes and
    opens its PR, while others' agents work. It never claims other pending runs and never takes over other workers'.

    Lifecycle: `start()` after this process's heartbeat beats under `worker_id` (renewing `lease`); `stop()` cancels
    the runs still going, which stay owned by `worker_id`: a worker takes them over once that heartbeat is gone.
    """

    name = "attached-workflows"

    def __init__(
        self,
        settings: Settings,
        db: Database,
        *,
        worker_id: str,
        lease: Lease,
        registry: WorkflowRegistry,
        max_parallel: int,
    ) -> None:
        super().__init__(settings, db, worker_id=worker_id, lease=lease, registry=registry)
        self.max_parallel = max_parallel

    async def drain(self) -> None:
        if self.lease is not None and not self.lease.valid:
            return  # fenced: our heartbeat no longer reaches the database, so another worker may take the runs
        async with self.db.session() as session:
            mine = await service.owned_by(session, self.worker_id)
        for run_id in mine:
            if run_id not in self._running and self._free():
                await self._restart(run_id)

    def _free(self) -> bool:
        return len(self._running) < RUNS_PER_AGENT * self.max_parallel

    async def settle(self) -> None:
        """Return once none of this process's runs is still going (a canceled run notices at its next stage and
        undoes what it made); bound it with `asyncio.timeout`."""
        while self._running:
            await asyncio.wait(list(self._running.values()))
