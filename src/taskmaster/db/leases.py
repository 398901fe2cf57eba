"""One lease mechanism for rows someone owns while working on them: pipelines, workflow runs, claimed tasks.

A lease is an owner column on the row and a rule saying when it went stale:
- a row owned by a worker (`ci_cd_pipelines.worker_id`, `workflow_runs.worker_id`) is held while the owner's row in
  `workers` is `running` and its heartbeat is younger than `stale_after_seconds`: one heartbeat renews every lease
  of that worker at once, and nothing is written per row;
- a row owned by someone without a heartbeat of its own (a task claimed by an agent) carries its expiry
  (`tasks.lease_expires_at`), which `renew` extends; a worker that holds such rows renews them on every beat.
Taking a stale row over is a conditional UPDATE on the previous owner, so of several takers exactly one wins.
In the owner's own process, `Lease` says whether its heartbeat still reaches the database (it stops work before
others may presume it dead).
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, and_, exists, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from taskmaster.core.clock import utcnow
from taskmaster.db.models import Worker

LAPSE_CHECK_SECONDS = 1.0


@dataclass(frozen=True)
class Leased:
    """Where a table keeps its lease: `owner`, `live` (the rows whose lease matters, e.g. unfinished ones) and,
    for rows whose owner has no heartbeat, `expires_at`."""

    # Mapped columns (typed Any: a dataclass field holding a column attribute reads as its value type to mypy).
    table: Any
    id: Any
    owner: Any
    live: ColumnElement[bool]
    expires_at: Any = None


@dataclass(frozen=True, slots=True)
class Stale:
    """A live row whose owner is gone (or that has none)."""

    row_id: uuid.UUID
    previous_owner: str | None


def owner_gone(owner: Any, *, stale_before: datetime) -> ColumnElement[bool]:
    """True where `owner` names no worker that is running with a heartbeat since `stale_before`."""
    alive = exists().where(Worker.name == owner, Worker.status == "running", Worker.last_heartbeat_at >= stale_before)
    return ~alive


def stale(leased: Leased, *, stale_after_seconds: float, now: datetime | None = None) -> ColumnElement[bool]:
    """The condition for live rows whose lease went stale (expired, or held by a worker that is gone)."""
    now = now or utcnow()
    if leased.expires_at is not None:
        return and_(leased.live, leased.expires_at.is_not(None), leased.expires_at < now)
    gone = owner_gone(leased.owner, stale_before=now - timedelta(seconds=stale_after_seconds))
    return and_(leased.live, leased.owner.is_not(None), gone)


async def find_stale(
    session: AsyncSession,
    leased: Leased,
    *,
    worker_id: str,
    stale_after_seconds: float,
    also: ColumnElement[bool] | None = None,
    now: datetime | None = None,
) -> list[Stale]:
    """Live rows owned by someone other than `worker_id` whose lease went stale (plus rows matching `also`, e.g.
    started ones with no owner), oldest first."""
    condition = and_(stale(leased, stale_after_seconds=stale_after_seconds, now=now), leased.owner != worker_id)
    if also is not None:
        condition = condition | and_(leased.live, also)
    rows = await session.execute(select(leased.id, leased.owner).where(condition).order_by(leased.table.created_at))
    return [Stale(row_id, owner) for row_id, owner in rows.all()]


async def take_over(
    session: AsyncSession,
    leased: Leased,
    row_id: uuid.UUID,
    *,
    previous_owner: str | None,
    new_owner: str,
    lease_seconds: float | None = None,
    values: dict[str, Any] | None = None,
) -> bool:
    """Make `new_owner` the owner of a live row if it still has `previous_owner`; True if this call won. `values`
    are set with it; `lease_seconds` starts a new expiry (for tables that keep one)."""
    previous = leased.owner.is_(None) if previous_owner is None else leased.owner == previous_owner
    changes: dict[Any, Any] = {
        leased.owner: new_owner,
        **{getattr(leased.table, k): v for k, v in (values or {}).items()},
    }
    if leased.expires_at is not None and lease_seconds is not None:
        changes[leased.expires_at] = utcnow() + timedelta(seconds=lease_seconds)
    result = await session.execute(
        update(leased.table)
        .where(leased.id == row_id, previous, leased.live)
        .values(changes)
        .execution_options(synchronize_session=False)
    )
    return bool(getattr(result, "rowcount", 0) == 1)


async def renew(
    session: AsyncSession,
    leased: Leased,
    owner: str,
    *,
    lease_seconds: float,
    row_id: uuid.UUID | None = None,
) -> int:
    """Extend the expiry of the live rows `owner` holds (only `row_id`, if given) to `lease_seconds` from now; how
    many were renewed. A row taken over by someone else, or finished, is not renewed."""
    expires_at = leased.expires_at
    assert expires_at is not None, "rows held through a worker's heartbeat are renewed by the heartbeat"
    condition = and_(leased.owner == owner, leased.live, expires_at.is_not(None))
    if row_id is not None:
        condition = and_(condition, leased.id == row_id)
    result = await session.execute(
        update(leased.table)
        .where(condition)
        .values({expires_at: utcnow() + timedelta(seconds=lease_seconds)})
        .execution_options(synchronize_session=False)
    )
    return int(getattr(result, "rowcount", 0) or 0)


class Lease:
    """Whether this process may keep working on what it owns: its heartbeat reached the database recently enough.

    `renewed()` is called after every successful heartbeat; `valid` is false until the first one and once
    `fence_after` seconds pass without one.
    """

    def __init__(self, fence_after: float, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.fence_after = fence_after
        self._clock = clock
        self._renewed_at: float | None = None

    def renewed(self) -> None:
        self._renewed_at = self._clock()

    @property
    def valid(self) -> bool:
        return self.seconds_left() > 0

    def seconds_left(self) -> float:
        if self._renewed_at is None:
            return 0.0
        return self.fence_after - (self._clock() - self._renewed_at)

    async def lapsed(self) -> None:
        """Return once the lease has lapsed (looking again at least every `LAPSE_CHECK_SECONDS`)."""
        while True:
            left = self.seconds_left()
            if left <= 0:
                return
            await asyncio.sleep(min(left, LAPSE_CHECK_SECONDS))
