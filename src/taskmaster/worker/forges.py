"""The worker's way to a project's forge: a client built from its stored token, and pipeline updates sent to it."""

from __future__ import annotations

import uuid

import structlog

from taskmaster.db.models import Project
from taskmaster.db.session import Database
from taskmaster.forges.base import Forge
from taskmaster.forges.github.client import GitHubForge
from taskmaster.forges.gitlab.client import GitLabForge
from taskmaster.pipelines.report import ForgeReporter, needs_manual_review
from taskmaster.pipelines.reporting import pipeline_report
from taskmaster.secrets import SecretBox

log = structlog.stdlib.get_logger("taskmaster.worker.forges")

FORGE_API_URL = "forge_api_url"
"""Project setting: the forge's API URL (GitHub Enterprise, a self-managed GitLab)."""


def forge_for(project: Project, box: SecretBox) -> Forge | None:
    """A client for the project's forge with its token; None for local projects and projects without a token."""
    token = box.decrypt(project.forge_token)
    if not token:
        return None
    base_url = project.settings.get(FORGE_API_URL)
    options = {"base_url": base_url} if base_url else {}
    if project.forge == "github":
        return GitHubForge(token=token, **options)
    if project.forge == "gitlab":
        return GitLabForge(token=token, **options)
    return None


class ForgeUpdates:
    """The engine's `on_change` hook: after every change of a pipeline, its forge shows the new state
    (statuses per step and overall; when it ends, the pull request's one comment and, for a code failure, an issue
    for manual review). Best effort: forge errors are logged, the pipeline's outcome is already stored."""

    def __init__(self, db: Database, box: SecretBox) -> None:
        self.db = db
        self.box = box
        self._reported_final: set[uuid.UUID] = set()

    async def __call__(self, pipeline_id: uuid.UUID) -> None:
        async with self.db.session() as session:
            found = await pipeline_report(session, pipeline_id)
        if found is None:
            return
        project, report = found
        if report.is_finished and pipeline_id in self._reported_final:
            return  # a finished pipeline is reported once (annotations and issues must not repeat)
        forge = forge_for(project, self.box)
        if forge is None:
            return
        try:
            result = await ForgeReporter(forge, check_runs=False).report(report, open_issue=needs_manual_review(report))
        finally:
            await forge.aclose()
        if report.is_finished:
            self._reported_final.add(pipeline_id)
        for error in result.errors:
            log.warning("forge update failed", pipeline_id=str(pipeline_id), error=error.detail)
