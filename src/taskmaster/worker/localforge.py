"""The worker's watch over the local forge: new commits on the head branch of an open local pull request raise its
`synchronize` event within `forges.local_poll_seconds`, as a forge's push webhook would, with nobody reading it.

Each poll is one query for the local-forge projects with open pull requests, then one `git for-each-ref` per such
project (`forges.local.service.sync_heads`, the same code a read runs), each project in a transaction of its own.
Several workers may watch at once: a move is recorded under the project's lock after a fresh read, so only the
first to lock records it.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable

import structlog

from taskmaster.db.models import Project
from taskmaster.db.session import Database
from taskmaster.forges.base import ForgeNotFound
from taskmaster.forges.local import service
from taskmaster.worker.loop import PollingLoop

log = structlog.stdlib.get_logger("taskmaster.worker.localforge")


class LocalForgeWatch(PollingLoop):
    """Records moved heads of open local pull requests every `poll_seconds`; `on_event()` is called after a poll
    that recorded any (to wake the webhook loop). A project whose repository vanished is warned about once (until it
    is back) and skipped; a project that fails otherwise is logged and skipped: neither stops the others."""

    name = "local-forge"

    def __init__(self, db: Database, *, poll_seconds: float, on_event: Callable[[], None] | None = None) -> None:
        super().__init__(poll_seconds)
        self.db = db
        self.on_event = on_event
        self._vanished: set[uuid.UUID] = set()

    async def drain(self) -> None:
        async with self.db.session() as session:
            projects = await service.watched_projects(session)
        recorded = 0
        for project in projects:
            recorded += await self.sync(project)
        if recorded and self.on_event is not None:
            self.on_event()

    async def sync(self, project: Project) -> int:
        """Record the project's moved heads in a transaction of its own; how many `synchronize` events it raised."""
        try:
            async with self.db.transaction() as session:
                moved = await service.sync_heads(session, project)
        except ForgeNotFound as exc:
            if project.id not in self._vanished:
                self._vanished.add(project.id)
                log.warning(
                    "the repository of a local-forge project is gone: new commits on its pull requests are not "
                    "noticed until it is back",
                    project=project.name, repository=project.repository, error=exc.detail,
                )  # fmt: skip
            return 0
        except Exception as exc:
            log.warning("could not look for new commits of a local-forge project", project=project.name,
                        error=f"{type(exc).__name__}: {exc}")  # fmt: skip
            return 0
        if project.id in self._vanished:
            self._vanished.discard(project.id)
            log.info("the repository of a local-forge project is back", project=project.name,
                     repository=project.repository)  # fmt: skip
        for pull in moved:
            log.info("new commits on a local pull request", project=project.name, number=pull.number,
                     head_sha=pull.head_sha)  # fmt: skip
        return len(moved)
