"""The `review` workflow: an AI review of a pull request's head, requested by `/taskmaster review`.

The reviewer is a `Reviewer` (the real ones come with the AI review); without one the run fails saying so.
"""

from __future__ import annotations

from typing import Any, Protocol

from taskmaster.db.session import Database
from taskmaster.workflows.base import RunInput, RunResult

KIND = "review"
NOT_CONFIGURED = "no reviewer is configured (project setting review.reviewer)"


class Reviewer(Protocol):
    """Reviews one commit of a pull request and returns its findings (stored as the run's result)."""

    async def review(self, run: RunInput) -> dict[str, Any]: ...


class ReviewWorkflow:
    name = KIND

    def __init__(self, reviewer: Reviewer | None = None) -> None:
        self.reviewer = reviewer

    async def run(self, db: Database, run: RunInput) -> RunResult:
        if self.reviewer is None:
            return RunResult("failed", {"decision": "not configured"}, NOT_CONFIGURED)
        return RunResult("succeeded", await self.reviewer.review(run))
