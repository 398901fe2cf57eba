"""The receiving process's memory of repositories' projects: loading, expiry, the rotation overlap, forgetting."""

from __future__ import annotations

import uuid
from datetime import timedelta

from pydantic import SecretStr

from taskmaster.config import Settings
from taskmaster.config.settings import GitHubSettings, WebhookSettings
from taskmaster.core.clock import utcnow
from taskmaster.db.models import Project
from taskmaster.db.session import Database
from taskmaster.forges.events import Provider
from taskmaster.projects import service as projects
from taskmaster.projects.schemas import ProjectCreate
from taskmaster.secrets import SecretBox
from taskmaster.webhooks.receivers import Receiver, ReceiverCache, load_receivers

GITHUB = Provider.GITHUB


async def _project(db: Database, box: SecretBox, repository: str, secret: str = "first-secret") -> Project:
    async with db.transaction() as session:
        spec = ProjectCreate(name=repository.replace("/", "-"), repository=repository, forge="github",
                             webhook_secret=secret)  # type: ignore[arg-type]  # fmt: skip
        return await projects.create_project(session, spec=spec, box=box)


async def _load(
    db: Database, box: SecretBox, full_name: str, overlap: float = 3600, app_secret: str | None = None
) -> Receiver | None:
    configured = Settings(
        webhooks=WebhookSettings(secret_overlap_seconds=overlap),
        github=GitHubSettings(webhook_secret=SecretStr(app_secret) if app_secret else None),
    )
    async with db.autocommit_engine.connect() as connection:
        found = await load_receivers(connection, GITHUB, full_name, box, configured)
    assert len(found) <= 1, "one project per repository in these tests"
    return found[0] if found else None


async def test_a_repository_is_loaded_in_any_case_with_its_secret_decrypted(db: Database, settings: Settings) -> None:
    box = SecretBox.from_settings(settings)
    project = await _project(db, box, "Codertocat/Hello-World")
    receiver = await _load(db, box, "codertocat/HELLO-world")
    assert receiver is not None
    assert (receiver.project_id, receiver.name, receiver.secrets()) == (project.id, project.name, ["first-secret"])
    assert receiver.allow_sha1 is False
    assert await _load(db, box, "Codertocat/Other") is None


async def test_the_previous_secret_is_accepted_until_the_overlap_after_the_rotation_ends(
    db: Database, settings: Settings
) -> None:
    box = SecretBox.from_settings(settings)
    project = await _project(db, box, "Codertocat/Hello-World")
    async with db.transaction() as session:
        rotated = await projects.rotate_webhook_secret(session, project.id, secret="second-secret", box=box)
        rotated.webhook_secret_rotated_at = utcnow() - timedelta(seconds=60)
    within = await _load(db, box, "Codertocat/Hello-World", overlap=3600)
    after = await _load(db, box, "Codertocat/Hello-World", overlap=30)
    assert within is not None and within.secrets() == ["second-secret", "first-secret"]
    assert after is not None and after.secrets() == ["second-secret"]


def _receiver(name: str, project: Project | None = None) -> Receiver:
    return Receiver(project_id=project.id if project else uuid.uuid4(), name=name, secret="s", previous_secret=None,
                    previous_until=None, allow_sha1=False)  # fmt: skip


def test_an_entry_expires_after_the_cache_time_and_the_least_recently_used_goes_first() -> None:
    now = [0.0]
    cache = ReceiverCache(5, max_entries=2, clock=lambda: now[0])
    a, b, c = _receiver("a"), _receiver("b"), _receiver("c")
    cache.put(GITHUB, "Owner/A", (a,))
    cache.put(GITHUB, "owner/b", (b,))
    assert cache.get(GITHUB, "owner/a") == (a,)  # any case; and now a was used after b
    assert cache.get(Provider.GITLAB, "owner/a") is None  # another forge's repository of the same name
    cache.put(GITHUB, "owner/c", (c,))
    assert (cache.get(GITHUB, "owner/b"), cache.get(GITHUB, "owner/a")) == (None, (a,))
    now[0] = 5.0
    assert cache.get(GITHUB, "owner/a") is None and len(cache) == 1
    off = ReceiverCache(0)
    off.put(GITHUB, "owner/a", (a,))
    assert off.get(GITHUB, "owner/a") is None


async def test_a_change_or_removal_flushed_in_this_process_forgets_that_project_at_once(
    db: Database, settings: Settings
) -> None:
    box = SecretBox.from_settings(settings)
    changed, removed, kept = [await _project(db, box, f"owner/{n}") for n in ("changed", "removed", "kept")]
    cache = ReceiverCache(300)
    for project in (changed, removed, kept):
        cache.put(GITHUB, f"owner/{project.repo_name}", (_receiver(project.name, project),))
    async with db.transaction() as session:
        await projects.rotate_webhook_secret(session, changed.id, secret="second-secret", box=box)
    assert cache.get(GITHUB, "owner/changed") is None
    async with db.transaction() as session:
        await projects.delete_project(session, removed.id)
    assert cache.get(GITHUB, "owner/removed") is None
    kept_receivers = cache.get(GITHUB, "owner/kept")
    assert kept_receivers is not None and [r.project_id for r in kept_receivers] == [kept.id]


async def test_a_github_apps_webhook_secret_is_accepted_besides_the_projects_own(
    db: Database, settings: Settings
) -> None:
    box = SecretBox.from_settings(settings)
    await _project(db, box, "Codertocat/Hello-World", secret="project-secret")

    plain = await _load(db, box, "Codertocat/Hello-World")
    as_app = await _load(db, box, "Codertocat/Hello-World", app_secret="app-wide-secret")

    assert plain is not None and plain.secrets() == ["project-secret"]
    assert as_app is not None and as_app.secrets() == ["project-secret", "app-wide-secret"]


async def test_a_gitlab_project_in_a_subgroup_is_found_by_its_whole_path_only(db: Database, settings: Settings) -> None:
    box = SecretBox.from_settings(settings)
    async with db.transaction() as session:
        spec = ProjectCreate(name="api", repository="git@gitlab.com:acme/platform/api.git", forge="gitlab",
                             webhook_secret="gitlab-token")  # type: ignore[arg-type]  # fmt: skip
        project = await projects.create_project(session, spec=spec, box=box)

    async def found(full_name: str) -> list[uuid.UUID]:
        async with db.autocommit_engine.connect() as connection:
            receivers = await load_receivers(connection, Provider.GITLAB, full_name, box, settings)
        return [r.project_id for r in receivers]

    assert await found("Acme/Platform/API") == [project.id]  # GitLab's `path_with_namespace`, any case
    assert await found("platform/api") == [] and await found("acme/api") == []
