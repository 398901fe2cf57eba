"""The worker's webhook loop: take due deliveries one at a time and process them (see `webhooks.service`)."""

from __future__ import annotations

import time
from collections.abc import Callable

import structlog

from taskmaster.config import Settings
from taskmaster.db.models import Project
from taskmaster.db.session import Database
from taskmaster.secrets import SecretBox
from taskmaster.webhooks import service
from taskmaster.worker.forges import forge_for
from taskmaster.worker.loop import PollingLoop

log = structlog.stdlib.get_logger("taskmaster.worker.webhooks")

PERMISSION_TTL_SECONDS = 300.0


class ForgePermissions:
    """Asks the project's forge whether a user has write access, and remembers the answer for five minutes."""

    def __init__(self, box: SecretBox, settings: Settings) -> None:
        self.box = box
        self.settings = settings
        self._cache: dict[tuple[str, str], tuple[float, bool]] = {}

    async def __call__(self, project: Project, login: str) -> bool | None:
        """Whether `login` may write to the project's repository; None when there is no credential to ask with."""
        key = (str(project.id), login.lower())
        cached = self._cache.get(key)
        if cached is not None and time.monotonic() - cached[0] < PERMISSION_TTL_SECONDS:
            return cached[1]
        forge = forge_for(project, self.box, self.settings)
        if forge is None:
            return None
        try:
            allowed = (await forge.user_permission(f"{project.owner}/{project.repo_name}", login)).can_write
        finally:
            await forge.aclose()
        self._cache[key] = (time.monotonic(), allowed)
        return allowed


class WebhookLoop(PollingLoop):
    """Processes deliveries until stopped; `wake()` (from the API in the same process) skips the poll wait."""

    name = "webhook-deliveries"

    def __init__(
        self, settings: Settings, db: Database, box: SecretBox, *, on_processed: Callable[[], None] | None = None
    ) -> None:
        super().__init__(settings.webhooks.poll_seconds)
        self.settings = settings
        self.db = db
        self.on_processed = on_processed
        self.permissions = ForgePermissions(box, settings)

    async def drain(self) -> None:
        while await service.process_next(self.db, self.settings, permission=self.permissions):
            if self.on_processed is not None:
                self.on_processed()  # it may have requested a pipeline
