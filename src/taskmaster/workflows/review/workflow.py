"""The `review` workflow kind: `/taskmaster review` on a pull request runs the review again on its head."""

from __future__ import annotations

from sqlalchemy import select

from taskmaster.db.models import PullRequest
from taskmaster.db.session import Database
from taskmaster.workflows.base import RunInput, RunResult
from taskmaster.workflows.review.service import ReviewServices, ReviewTarget, review

KIND = "review"
NOT_CONFIGURED = "no reviewer is configured (project setting review.reviewer)"


class ReviewWorkflow:
    """Reviews the pull request's head (its current one, so a run requested before a push reviews what is there
    now) and publishes the result; without `services` (a worker that was not given them) the run fails saying so."""

    name = KIND

    def __init__(self, services: ReviewServices | None = None) -> None:
        self.services = services

    async def run(self, db: Database, run: RunInput) -> RunResult:
        if self.services is None:
            return RunResult("failed", {"decision": "not configured"}, NOT_CONFIGURED)
        sha = run.commit_sha
        if run.pull_request_id is not None:
            async with db.session() as session:
                head = await session.scalar(select(PullRequest.head_sha).where(PullRequest.id == run.pull_request_id))
            sha = head or sha
        if not sha:
            return RunResult("failed", {"decision": "no commit"}, "the review run names no commit to review")
        lines: list[str] = []

        async def write(text: str) -> None:
            lines.append(text)

        target = ReviewTarget(
            project_id=run.project_id, sha=sha, pull_request_id=run.pull_request_id, workflow_run_id=run.run_id
        )
        result = await review(self.services, target, write)
        data = {
            "decision": result.status,
            "commit_sha": sha,
            "report_id": str(result.report_id) if result.report_id else None,
            "log": "".join(lines)[-20_000:],
        }
        if result.status in ("passed", "failed", "skipped"):
            # The review happened (or had nothing to do): the run succeeded whatever the policy says of the PR.
            return RunResult("succeeded", data)
        return RunResult("failed", data, result.message)
