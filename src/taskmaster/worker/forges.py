"""Pipeline updates sent to a project's forge, through the client `projects.forges.ForgeFactory` chooses."""

from __future__ import annotations

import asyncio
import uuid

import structlog
from sqlalchemy import select, update

from taskmaster.db.models import Pipeline
from taskmaster.db.session import Database
from taskmaster.forges.github.client import GitHubForge
from taskmaster.pipelines.annotations import with_log_annotations
from taskmaster.pipelines.report import ForgeReporter, needs_manual_review
from taskmaster.pipelines.reporting import pipeline_report
from taskmaster.projects.forges import ForgeFactory
from taskmaster.workflows.recovery.service import report_opens_issue

log = structlog.stdlib.get_logger("taskmaster.worker.forges")

DRAIN_SECONDS = 30.0
"""How long a stopping worker keeps reporting pipeline states still on their way to the forge."""


class ForgeUpdates:
    """The engine's `on_change` hook: after every change of a pipeline, its forge shows the new state
    (statuses per step and overall; when it ends, the pull request's one comment and, for a code failure, an issue
    for manual review). Best effort: forge errors are logged, the pipeline's outcome is already stored.

    Projects covered by the GitHub App also get a check run per pipeline (updated until it completes, with the
    failing steps' log findings as annotations). The App's client lives as long as this object, so its
    installation tokens are requested once and reused until they near expiry; `aclose` closes it.

    Calling it only notes the change: one background sender per pipeline reports the latest state, and changes
    that arrive while it is sending are folded into one more report. The engine never waits on the forge (GitHub
    asks for writes a second apart), and a later state is never overwritten by an earlier one. `drain` waits for
    what is in flight.
    """

    def __init__(self, db: Database, forges: ForgeFactory) -> None:
        self.db = db
        self.forges = forges
        self._app: tuple[GitHubForge, ForgeReporter] | None = None
        self._reported_final: set[uuid.UUID] = set()
        self._changed: set[uuid.UUID] = set()
        self._senders: dict[uuid.UUID, asyncio.Task[None]] = {}

    async def __call__(self, pipeline_id: uuid.UUID) -> None:
        self._changed.add(pipeline_id)
        if pipeline_id not in self._senders:
            self._senders[pipeline_id] = asyncio.create_task(self._send(pipeline_id), name=f"forge-{pipeline_id}")

    async def drain(self, timeout: float | None = None) -> None:  # noqa: ASYNC109 (a bound for shutdown)
        """Wait until every noted change has been reported (or `timeout` seconds have passed)."""
        while self._senders:
            done, _ = await asyncio.wait(list(self._senders.values()), timeout=timeout)
            if not done:
                return

    async def aclose(self) -> None:
        """Report what is in flight (for up to `DRAIN_SECONDS`), then close the GitHub App's client."""
        await self.drain(DRAIN_SECONDS)
        for sender in self._senders.values():
            sender.cancel()
        if self._app is not None:
            forge, _ = self._app
            self._app = None
            await forge.aclose()

    async def _send(self, pipeline_id: uuid.UUID) -> None:
        try:
            while pipeline_id in self._changed:
                self._changed.discard(pipeline_id)
                try:
                    await self._update(pipeline_id)
                except Exception:  # best effort: the next change tries again
                    log.warning("forge update failed", pipeline_id=str(pipeline_id), exc_info=True)
        finally:
            self._senders.pop(pipeline_id, None)

    async def _update(self, pipeline_id: uuid.UUID) -> None:
        async with self.db.session() as session:
            found = await pipeline_report(session, pipeline_id)
            check_run_id = await session.scalar(select(Pipeline.check_run_id).where(Pipeline.id == pipeline_id))
            # With recovery on, the recovery run decides about the issue for a person (and opens it).
            report_issue = await report_opens_issue(session, pipeline_id)
        if found is None:
            return
        project, report = found
        if report.is_finished and pipeline_id in self._reported_final:
            return  # a finished pipeline is reported once (annotations and issues must not repeat)
        open_issue = report_issue and needs_manual_review(report)
        if self.forges.uses_app(project):
            _, reporter = self._app_client()
            result = await reporter.report(
                with_log_annotations(report), previous_check_run_id=check_run_id, open_issue=open_issue
            )
        else:
            forge = self.forges.for_project(project)
            if forge is None:
                return
            try:
                # A client with check runs of its own (the local forge) updates the pipeline's one run too.
                result = await ForgeReporter(forge).report(
                    report, previous_check_run_id=check_run_id, open_issue=open_issue
                )
            finally:
                await forge.aclose()
        if result.check_run_id is not None and result.check_run_id != check_run_id:
            # Kept with the pipeline, so a report from another worker (or after a restart) updates the same run.
            async with self.db.transaction() as session:
                await session.execute(
                    update(Pipeline).where(Pipeline.id == pipeline_id).values(check_run_id=result.check_run_id)
                )
        if report.is_finished:
            self._reported_final.add(pipeline_id)
        for error in result.errors:
            log.warning("forge update failed", pipeline_id=str(pipeline_id), error=error.detail)

    def _app_client(self) -> tuple[GitHubForge, ForgeReporter]:
        if self._app is None:
            forge = self.forges.app()
            self._app = (forge, ForgeReporter(forge))
        return self._app
