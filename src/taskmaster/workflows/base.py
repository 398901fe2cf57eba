"""What a kind of workflow run is: the `WorkflowKind` protocol and the value types it takes and returns."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal, Protocol, runtime_checkable

from taskmaster.db.session import Database

RunStatus = Literal["pending", "running", "succeeded", "failed", "canceled"]
LIVE_RUN_STATUSES: tuple[RunStatus, ...] = ("pending", "running")


@dataclass(frozen=True, slots=True)
class RunInput:
    """What a run was asked to do, read from its row when it starts."""

    run_id: uuid.UUID
    kind: str
    project_id: uuid.UUID
    attempt: int
    """1 for the first start; more after a take-over (a kind must tolerate redoing what it did before)."""
    pipeline_id: uuid.UUID | None = None
    step_name: str | None = None
    pull_request_id: uuid.UUID | None = None
    commit_sha: str | None = None
    params: dict[str, Any] = field(default_factory=dict)
    requested_at: datetime | None = None
    """When the run was requested (its row's `created_at`): what it reads of the world must be at least as new."""


@dataclass(frozen=True, slots=True)
class RunResult:
    """How a run ended: `succeeded` or `failed`, what it decided (`result`, stored as JSON) and, when it failed,
    one line for people."""

    status: Literal["succeeded", "failed"]
    result: dict[str, Any] = field(default_factory=dict)
    error: str | None = None


class WorkflowKind(Protocol):
    """One kind of workflow run (`review`, `recovery`).

    Lifecycle: built once per worker (without I/O) and registered under `name`. Concurrency: `run` may be awaited
    for many runs at once. Errors: `run` returns a `RunResult` for every outcome it decides; an exception is
    recorded as a failed run with its message (the loop never dies of it). It writes to the database in
    transactions of its own, and never holds one open across network I/O. A run whose worker died is started
    again by another worker (`RunInput.attempt` > 1), so effects outside the database must be safe to redo.
    """

    @property
    def name(self) -> str: ...

    async def run(self, db: Database, run: RunInput) -> RunResult: ...


@runtime_checkable
class SweepingKind(Protocol):
    """A workflow kind that tidies up after runs that ended without their own cleanup: canceled while their worker
    was gone, or whose worker died while undoing them. The worker's reaper calls `sweep` every heartbeat; it must be
    safe to run on several workers at once."""

    async def sweep(self, db: Database) -> int:
        """Tidy up what is left; how many runs it tidied."""
        ...
