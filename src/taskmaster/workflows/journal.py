"""The journal of a workflow run: each external effect is a named step whose output is recorded once it is done, so
a run started again (a restart, a take-over) returns the recorded output instead of doing the effect twice."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import delete, select

from taskmaster.core.clock import utcnow
from taskmaster.db.models import WorkflowStep
from taskmaster.db.session import Database

Output = dict[str, Any]


@dataclass(frozen=True, slots=True)
class StepRecord:
    """A step as recorded: finished when `finished_at` is set (its `output` is then final)."""

    name: str
    output: Output
    attempt: int
    started_at: datetime
    finished_at: datetime | None


class Journal:
    """The steps of run `run_id`, written in short transactions of their own (never across the step's own I/O).

    `step(name, fn)` is the durable unit: recorded → its output; else `fn()` runs and its output (a JSON object) is
    recorded with its times. A step started but not finished (the worker died inside it) runs again, so `fn` must
    be idempotent: it checks the world first (a branch at the expected commit, a PR for that head) and only then
    acts. `timed(name, fn)` always runs `fn` and records its times and output (local work redone on resume);
    with `announce=False` it writes once, at the end (or on failure), for short local work nobody needs to see
    started. `record_in` records a step in the caller's transaction, atomically with a database effect.
    """

    def __init__(self, db: Database, run_id: uuid.UUID, attempt: int = 1) -> None:
        self.db = db
        self.run_id = run_id
        self.attempt = attempt

    async def step(self, name: str, fn: Callable[[], Awaitable[Output]]) -> Output:
        done = await self.get(name)
        if done is not None and done.finished_at is not None:
            return done.output
        return await self.timed(name, fn)

    async def timed(self, name: str, fn: Callable[[], Awaitable[Output]], *, announce: bool = True) -> Output:
        started = utcnow()
        if announce:
            await self.start(name)
        try:
            output = await fn()
        except Exception:
            if not announce:  # the failed try stays visible as started and not finished
                await self.start(name, at=started)
            raise
        await self.record(name, output, started_at=started)
        return output

    async def record(self, name: str, output: Output, *, started_at: datetime | None = None) -> None:
        """Record `name` as finished with `output` (started at `started_at`, else now, if it was not started)."""
        async with self.db.single_writer(), self.db.transaction() as session:  # reads, then writes
            await self.record_in(session, name, output, started_at=started_at)

    async def record_in(self, session: Any, name: str, output: Output, *, started_at: datetime | None = None) -> None:
        """`record` in the caller's transaction (on SQLite, the caller holds `db.single_writer()`)."""
        now = utcnow()
        row = await self._row(session, name)
        if row is None:
            session.add(
                WorkflowStep(
                    run_id=self.run_id, name=name, output=output, attempt=self.attempt, started_at=started_at or now,
                    finished_at=now,
                )
            )  # fmt: skip
        else:
            row.output, row.finished_at, row.attempt = output, now, self.attempt
            row.started_at = started_at or row.started_at

    async def get(self, name: str) -> StepRecord | None:
        async with self.db.session() as session:
            row = await self._row(session, name)
            return _record(row) if row is not None else None

    async def output(self, name: str) -> Output | None:
        """The output of a finished step; None when it did not finish."""
        found = await self.get(name)
        return found.output if found is not None and found.finished_at is not None else None

    async def forget(self, *names: str) -> None:
        """Drop steps whose effect was undone (a deleted branch, a closed PR)."""
        async with self.db.single_writer(), self.db.transaction() as session:
            await self.forget_in(session, *names)

    async def forget_in(self, session: Any, *names: str) -> None:
        """`forget` in the caller's transaction."""
        await session.execute(
            delete(WorkflowStep).where(WorkflowStep.run_id == self.run_id, WorkflowStep.name.in_(names))
        )

    async def steps(self) -> list[StepRecord]:
        return await steps_of(self.db, self.run_id)

    async def start(self, name: str, *, at: datetime | None = None) -> None:
        """Record `name` as started (not finished), in a transaction of its own."""
        async with self.db.single_writer(), self.db.transaction() as session:  # reads, then writes
            await self.start_in(session, name, at=at)

    async def start_in(self, session: Any, name: str, *, at: datetime | None = None) -> None:
        """Record `name` as started (not finished) in the caller's transaction."""
        now = at or utcnow()
        row = await self._row(session, name)
        if row is None:
            session.add(WorkflowStep(run_id=self.run_id, name=name, output={}, attempt=self.attempt,
                                     started_at=now, finished_at=None))  # fmt: skip
        else:
            row.started_at, row.finished_at, row.attempt, row.output = now, None, self.attempt, {}

    async def _row(self, session: Any, name: str) -> WorkflowStep | None:
        query = select(WorkflowStep).where(WorkflowStep.run_id == self.run_id, WorkflowStep.name == name)
        found: WorkflowStep | None = await session.scalar(query)
        return found


async def steps_of(db: Database, run_id: uuid.UUID) -> list[StepRecord]:
    """Every step of a run, in the order they started."""
    async with db.session() as session:
        rows = await session.scalars(
            select(WorkflowStep).where(WorkflowStep.run_id == run_id).order_by(WorkflowStep.started_at)
        )
        return [_record(row) for row in rows.all()]


def _record(row: WorkflowStep) -> StepRecord:
    return StepRecord(row.name, dict(row.output or {}), row.attempt, row.started_at, row.finished_at)
