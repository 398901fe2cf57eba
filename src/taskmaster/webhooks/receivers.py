"""Which project a repository's deliveries belong to, with what checking them needs, remembered for a few seconds.

Receiving a delivery needs its project's id, its decrypted secrets and one setting. Looking them up for every
delivery was about a third of the receiver's own time, so the receiving process keeps them for
`webhooks.project_cache_seconds` (default 5 s).
The memory is only an optimisation, never the authority: a delivery that fails verification against a remembered
project, or whose insert finds the project gone, is decided again on a fresh load (`webhooks/intake.py`). A change
to a project made in this process (rotation, settings, removal) forgets it at once; one made by another process
is seen on that reload, or within the cache time for the only case a reload cannot catch: a secret that stopped
being accepted still passes until the entry expires.
"""

from __future__ import annotations

import functools
import time
import uuid
import weakref
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Protocol

from sqlalchemy import Select, bindparam, event, func, select
from sqlalchemy.ext.asyncio import AsyncConnection

from taskmaster.config.settings import Settings, WebhookSettings
from taskmaster.core.clock import utcnow
from taskmaster.db.models import Project
from taskmaster.forges.events import Provider
from taskmaster.forges.sources import source_for
from taskmaster.projects import settings as project_settings
from taskmaster.secrets import SecretBox


class ProjectSecrets(Protocol):
    """The columns a `Receiver` is made of: a `Project`, or a row of `load_receivers`' query."""

    @property
    def id(self) -> uuid.UUID: ...
    @property
    def name(self) -> str: ...
    @property
    def webhook_secret(self) -> str | None: ...
    @property
    def webhook_secret_previous(self) -> str | None: ...
    @property
    def webhook_secret_rotated_at(self) -> datetime | None: ...
    @property
    def settings(self) -> Mapping[str, Any]: ...


@dataclass(frozen=True)
class Receiver:
    """What receiving a delivery needs of its project: the secrets are decrypted once, when loaded."""

    project_id: uuid.UUID
    name: str
    secret: str | None
    previous_secret: str | None
    previous_until: datetime | None
    """The end of the rotation overlap: the previous secret is accepted until then (checked on every use)."""
    allow_sha1: bool
    app_secret: str | None = None
    """A GitHub App's webhook secret, accepted besides the project's own (the App signs all its events with it)."""

    @classmethod
    def of(
        cls, project: ProjectSecrets, box: SecretBox, settings: WebhookSettings, *, app_secret: str | None = None
    ) -> Receiver:
        rotated = project.webhook_secret_rotated_at
        previous, until = None, None
        if rotated is not None and project.webhook_secret_previous:
            previous = box.decrypt(project.webhook_secret_previous)
            until = rotated + timedelta(seconds=settings.secret_overlap_seconds)
        return cls(
            project_id=project.id,
            name=project.name,
            secret=box.decrypt(project.webhook_secret),
            previous_secret=previous,
            previous_until=until,
            allow_sha1=project_settings.load(project.settings).allow_sha1_signatures,
            app_secret=app_secret,
        )

    def secrets(self) -> list[str]:
        """The current secret, the previous one while the rotation overlap lasts, and the GitHub App's."""
        accepted = [self.secret] if self.secret else []
        if self.previous_secret and self.previous_until is not None and utcnow() <= self.previous_until:
            accepted.append(self.previous_secret)
        if self.app_secret:
            accepted.append(self.app_secret)
        return accepted


async def load_receivers(
    connection: AsyncConnection, provider: Provider, full_name: str, box: SecretBox, settings: Settings
) -> tuple[Receiver, ...]:
    """The receivers of every project whose repository is `full_name` (owner/name, or GitLab's group/…/project), any
    case, oldest project first; empty when none has it. Only the columns needed: no ORM object per delivery."""
    found = (await connection.execute(_by_repository(), {"forge": provider.value, "path": full_name.lower()})).all()
    app_secret = source_for(provider).app_secret(settings)
    return tuple(Receiver.of(row, box, settings.webhooks, app_secret=app_secret) for row in found)


@functools.cache
def _by_repository() -> Select[Any]:
    path = func.lower(Project.owner + "/" + Project.repo_name)
    columns = (Project.id, Project.name, Project.webhook_secret, Project.webhook_secret_previous,
               Project.webhook_secret_rotated_at, Project.settings)  # fmt: skip
    return select(*columns).where(Project.forge == bindparam("forge"), path == bindparam("path")).order_by(Project.id)


@dataclass(frozen=True)
class _Entry:
    receivers: tuple[Receiver, ...]
    cached_at: float


class ReceiverCache:
    """(provider, repository path in lower case) -> its projects' `Receiver`s for `ttl` seconds (0 disables it); at most
    `max_entries`, least recently used out. Unknown repositories are not remembered, so a project added by another
    process receives at once. One event loop: not thread-safe."""

    def __init__(self, ttl: float, *, max_entries: int = 10_000, clock: Callable[[], float] = time.monotonic) -> None:
        self.ttl = ttl
        self.max_entries = max_entries
        self._clock = clock
        self._entries: OrderedDict[tuple[str, str], _Entry] = OrderedDict()
        _live_caches.add(self)

    def get(self, provider: Provider, full_name: str) -> tuple[Receiver, ...] | None:
        key = (provider.value, full_name.lower())
        entry = self._entries.get(key)
        if entry is None:
            return None
        if self._clock() - entry.cached_at >= self.ttl:
            del self._entries[key]
            return None
        self._entries.move_to_end(key)
        return entry.receivers

    def put(self, provider: Provider, full_name: str, receivers: tuple[Receiver, ...]) -> None:
        if self.ttl <= 0 or not receivers:
            return
        key = (provider.value, full_name.lower())
        self._entries[key] = _Entry(receivers, self._clock())
        self._entries.move_to_end(key)
        while len(self._entries) > self.max_entries:
            self._entries.popitem(last=False)

    def drop(self, provider: Provider, full_name: str) -> None:
        """Forget a repository (no project has it any more)."""
        self._entries.pop((provider.value, full_name.lower()), None)

    def forget(self, project_id: uuid.UUID) -> None:
        """Drop every entry of a project (it changed or was removed)."""
        for key in [k for k, e in self._entries.items() if any(r.project_id == project_id for r in e.receivers)]:
            del self._entries[key]

    def __len__(self) -> int:
        return len(self._entries)


# Every cache in this process hears of project changes flushed by any session of this process: the routes and
# services that rotate secrets, change settings or remove projects need not know the cache exists. (A bulk UPDATE
# bypasses this; the only one, `lock_project`, changes nothing a receiver holds.) Another process's changes reach
# it through the reload on a failed check instead.
_live_caches: weakref.WeakSet[ReceiverCache] = weakref.WeakSet()


def _forget_everywhere(_mapper: Any, _connection: Any, project: Project) -> None:
    for cache in list(_live_caches):
        cache.forget(project.id)


event.listen(Project, "after_update", _forget_everywhere)
event.listen(Project, "after_delete", _forget_everywhere)
