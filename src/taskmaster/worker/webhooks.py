"""The worker's webhook loop: take due deliveries one at a time and process them (see `webhooks.service`)."""

from __future__ import annotations

import time
from collections.abc import Callable

import structlog

from taskmaster.db.models import Project
from taskmaster.projects.forges import ForgeFactory
from taskmaster.projects.repository import forge_path
from taskmaster.runtime import Runtime
from taskmaster.webhooks import service
from taskmaster.worker.loop import PollingLoop

log = structlog.stdlib.get_logger("taskmaster.worker.webhooks")

PERMISSION_TTL_SECONDS = 300.0


class ForgePermissions:
    """Asks the project's forge whether a user has write access, and remembers the answer for five minutes."""

    def __init__(self, forges: ForgeFactory) -> None:
        self.forges = forges
        self._cache: dict[tuple[str, str], tuple[float, bool]] = {}

    async def __call__(self, project: Project, login: str) -> bool | None:
        """Whether `login` may write to the project's repository; None when there is no credential to ask with."""
        key = (str(project.id), login.lower())
        cached = self._cache.get(key)
        if cached is not None and time.monotonic() - cached[0] < PERMISSION_TTL_SECONDS:
            return cached[1]
        forge = self.forges.for_project(project)
        if forge is None:
            return None
        try:
            allowed = (await forge.user_permission(forge_path(project) or project.repository, login)).can_write
        finally:
            await forge.aclose()
        self._cache[key] = (time.monotonic(), allowed)
        return allowed


class WebhookLoop(PollingLoop):
    """Processes deliveries until stopped; `wake()` (from the API in the same process) skips the poll wait."""

    name = "webhook-deliveries"

    def __init__(self, runtime: Runtime, *, on_processed: Callable[[], None] | None = None) -> None:
        super().__init__(runtime.settings.webhooks.poll_seconds)
        self.settings = runtime.settings
        self.db = runtime.db
        self.on_processed = on_processed
        self.permissions = ForgePermissions(runtime.forges)

    async def drain(self) -> None:
        while await service.process_next(self.db, self.settings, permission=self.permissions):
            if self.on_processed is not None:
                self.on_processed()  # it may have requested a pipeline
