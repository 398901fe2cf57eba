"""The worker's way to a project's forge: a client as the configured GitHub App or with the project's stored token,
and pipeline updates sent to it."""

from __future__ import annotations

import asyncio
import uuid

import structlog
from sqlalchemy import select, update

from taskmaster.config import Settings
from taskmaster.db.models import Pipeline, Project
from taskmaster.db.session import Database
from taskmaster.forges.base import Forge
from taskmaster.forges.github.client import GitHubForge
from taskmaster.forges.gitlab.client import GitLabForge
from taskmaster.pipelines.annotations import with_log_annotations
from taskmaster.pipelines.report import ForgeReporter, needs_manual_review
from taskmaster.pipelines.reporting import pipeline_report
from taskmaster.secrets import SecretBox

log = structlog.stdlib.get_logger("taskmaster.worker.forges")

DRAIN_SECONDS = 30.0
"""How long a stopping worker keeps reporting pipeline states still on their way to the forge."""

FORGE_API_URL = "forge_api_url"
"""Project setting: the forge's API URL (GitHub Enterprise, a self-managed GitLab)."""


def uses_github_app(project: Project, settings: Settings) -> bool:
    """A GitHub project on the server where the configured GitHub App lives: it is reached as the App."""
    if project.forge != "github" or not settings.github.app_configured:
        return False
    return _github_api_url(project, settings) == settings.github.api_url


def github_app_forge(settings: Settings) -> GitHubForge:
    """A client acting as the configured GitHub App (each repository through its installation)."""
    github = settings.github
    assert github.app_id is not None, "check uses_github_app first"
    return GitHubForge(app_id=github.app_id, private_key=github.app_private_key, base_url=github.api_url)


def forge_for(project: Project, box: SecretBox, settings: Settings) -> Forge | None:
    """A new client for the project's forge, to be closed by the caller: as the GitHub App when it covers the
    project, else with the project's token; None for local projects and projects without either."""
    if uses_github_app(project, settings):
        return github_app_forge(settings)
    token = box.decrypt(project.forge_token)
    if not token:
        return None
    if project.forge == "github":
        return GitHubForge(token=token, base_url=_github_api_url(project, settings))
    if project.forge == "gitlab":
        base_url = project.settings.get(FORGE_API_URL)
        return GitLabForge(token=token, **({"base_url": base_url} if base_url else {}))
    return None


def _github_api_url(project: Project, settings: Settings) -> str:
    url = project.settings.get(FORGE_API_URL) or settings.github.api_url
    return str(url).rstrip("/")


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

    def __init__(self, db: Database, box: SecretBox, settings: Settings) -> None:
        self.db = db
        self.box = box
        self.settings = settings
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
        if found is None:
            return
        project, report = found
        if report.is_finished and pipeline_id in self._reported_final:
            return  # a finished pipeline is reported once (annotations and issues must not repeat)
        open_issue = needs_manual_review(report)
        if uses_github_app(project, self.settings):
            _, reporter = self._app_client()
            result = await reporter.report(
                with_log_annotations(report), previous_check_run_id=check_run_id, open_issue=open_issue
            )
        else:
            forge = forge_for(project, self.box, self.settings)
            if forge is None:
                return
            try:
                result = await ForgeReporter(forge).report(report, open_issue=open_issue)
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
            forge = github_app_forge(self.settings)
            self._app = (forge, ForgeReporter(forge))
        return self._app
