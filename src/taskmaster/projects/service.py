"""Project use cases. The caller owns the transaction; secrets are encrypted with the given `SecretBox`."""

from __future__ import annotations

import functools
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from sqlalchemy import ColumnElement, Select, bindparam, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from taskmaster.audit import service as audit
from taskmaster.core.clock import utcnow
from taskmaster.core.errors import Conflict, InvalidInput, NotFound
from taskmaster.db.models import Project
from taskmaster.projects import agent_config
from taskmaster.projects import settings as project_settings
from taskmaster.projects.repository import is_repository_url, split_repository
from taskmaster.projects.schemas import ProjectCreate, ProjectOut
from taskmaster.secrets import SecretBox


def to_out(project: Project) -> ProjectOut:
    return ProjectOut(
        id=project.id,
        name=project.name,
        repository=project.repository,
        forge=project.forge,
        owner=project.owner,
        repo_name=project.repo_name,
        default_branch=project.default_branch,
        description=project.description,
        has_webhook_secret=project.webhook_secret is not None,
        has_forge_token=project.forge_token is not None,
        settings=project_settings.load(project.settings),
        agent_config=_agent_config_out(project.agentapi_config),
        created_at=project.created_at,
        updated_at=project.updated_at,
    )


def _agent_config_out(stored: Any) -> dict[str, Any]:
    if not isinstance(stored, dict):
        return {}
    shown = dict(stored)
    if isinstance(stored.get("secret_env"), dict):
        shown["secret_env"] = sorted(stored["secret_env"])
    return shown


async def create_project(
    session: AsyncSession, *, spec: ProjectCreate, box: SecretBox, actor: str = "system"
) -> Project:
    if await session.scalar(select(Project.id).where(Project.name == spec.name)) is not None:
        raise Conflict(f"a project named {spec.name!r} already exists")
    owner, repo_name = split_repository(spec.repository, spec.forge) if spec.forge != "local" else (None, None)
    project = Project(
        name=spec.name,
        repository=spec.repository,
        forge=spec.forge,
        owner=owner,
        repo_name=repo_name,
        default_branch=spec.default_branch,
        description=spec.description,
        webhook_secret=box.encrypt(spec.webhook_secret.get_secret_value() if spec.webhook_secret else None),
        forge_token=box.encrypt(spec.forge_token.get_secret_value() if spec.forge_token else None),
        settings=project_settings.apply({}, project_settings.nested(spec.settings)),
    )
    session.add(project)
    try:
        await session.flush()
    except IntegrityError:
        raise Conflict(f"a project named {spec.name!r} already exists") from None
    await audit.record(
        session,
        actor=actor,
        action="project.create",
        target_type="project",
        target_id=project.id,
        project_id=project.id,
        data={"name": spec.name, "forge": spec.forge},
    )
    return project


def check_local_repository(project: Project) -> None:
    """For a repository on this machine: `InvalidInput` if its path is relative, `NotFound` if nothing is there.

    Both are the project's configuration, not the server's health, so they are told apart from git failing.
    """
    repository = project.repository
    if is_repository_url(repository):
        return
    if not repository.startswith("/"):
        raise InvalidInput(
            f"project {project.name}'s repository {repository!r} is neither a URL nor an absolute path: nothing to "
            "clone (a relative path means nothing to the server)"
        )
    if not Path(repository).exists():
        raise NotFound(f"project {project.name}'s repository {repository} does not exist on the server")


async def list_projects(session: AsyncSession) -> list[Project]:
    return list((await session.scalars(select(Project).order_by(Project.name))).all())


async def get_project(session: AsyncSession, ref: str | uuid.UUID) -> Project:
    """Find a project by id or by name."""
    statement, params = _lookup(ref)
    project = await session.scalar(statement, params)
    if project is None:
        raise NotFound(f"project {ref} does not exist")
    return project


async def lock_project(session: AsyncSession, ref: str | uuid.UUID) -> Project:
    """Take the project's write lock as the transaction's first statement, then return the project.

    On SQLite a transaction that reads before it writes fails when another writer committed in between, so use
    cases that change a project's tasks start here; on PostgreSQL the row lock queues writers of one project.
    """
    condition = _named(ref)
    if session.get_bind().dialect.name == "sqlite":
        await session.execute(update(Project).where(condition).values(updated_at=Project.updated_at))
        project = await session.scalar(select(Project).where(condition))
    else:
        project = await session.scalar(select(Project).where(condition).with_for_update())
    if project is None:
        raise NotFound(f"project {ref} does not exist")
    return project


async def only_project(session: AsyncSession, *, how_to_choose: str) -> uuid.UUID:
    """The id of the one project, for doors where naming it is optional; `how_to_choose` ends the error."""
    rows = (await session.execute(select(Project.id, Project.name).order_by(Project.name).limit(6))).all()
    if len(rows) == 1:
        project_id: uuid.UUID = rows[0][0]
        return project_id
    if not rows:
        raise NotFound("no project yet: create one with `taskmaster project add NAME --repo URL`")
    names = ", ".join(name for _, name in rows[:5]) + ("…" if len(rows) > 5 else "")
    raise InvalidInput(f"several projects exist ({names}): {how_to_choose}")


@functools.cache
def _lookup_statement(by_id: bool, by_name: bool) -> Select[Project]:
    """`get_project`'s query, built once per shape: on hot paths (every task request) building it per call cost
    about as much as running it."""
    conditions = [Project.id == bindparam("id")] if by_id else []
    conditions += [Project.name == bindparam("name")] if by_name else []
    return select(Project).where(or_(*conditions))


def as_project_id(ref: str | uuid.UUID) -> uuid.UUID | None:
    """The id a reference names, when it is one: an id is an id, never a name (names cannot parse as ids)."""
    if isinstance(ref, uuid.UUID):
        return ref
    try:
        return uuid.UUID(ref)
    except ValueError:
        return None


def _lookup(ref: str | uuid.UUID) -> tuple[Select[Project], dict[str, object]]:
    project_id = as_project_id(ref)
    if project_id is not None:
        return _lookup_statement(True, False), {"id": project_id}
    return _lookup_statement(False, True), {"name": ref}


def _named(ref: str | uuid.UUID) -> ColumnElement[bool]:
    project_id = as_project_id(ref)
    return Project.id == project_id if project_id is not None else Project.name == ref


async def rotate_webhook_secret(
    session: AsyncSession, ref: str | uuid.UUID, *, secret: str, box: SecretBox, actor: str = "system"
) -> Project:
    """Make `secret` the project's webhook secret; the one it replaces stays accepted for the configured overlap
    (`webhooks.secret_overlap_seconds`), so deliveries signed before the forge was updated still pass."""
    if len(secret) < 8:
        raise InvalidInput("a webhook secret needs at least 8 characters")
    project = await get_project(session, ref)
    project.webhook_secret_previous = project.webhook_secret
    project.webhook_secret_rotated_at = utcnow() if project.webhook_secret else None
    project.webhook_secret = box.encrypt(secret)
    await audit.record(
        session, actor=actor, action="project.webhook_secret.rotate", target_type="project", target_id=project.id,
        project_id=project.id, data={"had_previous": project.webhook_secret_previous is not None},
    )  # fmt: skip
    return project


async def set_forge_token(
    session: AsyncSession, ref: str | uuid.UUID, *, token: str, box: SecretBox, actor: str = "system"
) -> Project:
    """Make `token` the project's forge API token (statuses, comments, private clones), set or replacing one."""
    if not token.strip():
        raise InvalidInput("a forge token must not be empty")
    project = await lock_project(session, ref)
    had_previous = project.forge_token is not None
    project.forge_token = box.encrypt(token)
    await audit.record(
        session, actor=actor, action="project.forge_token.set", target_type="project", target_id=project.id,
        project_id=project.id, data={"had_previous": had_previous},
    )  # fmt: skip
    return project


async def delete_project(session: AsyncSession, ref: str | uuid.UUID, *, actor: str = "system") -> Project:
    project = await get_project(session, ref)
    await session.delete(project)
    await session.flush()
    # project_id stays unset: the row it would point at is gone.
    await audit.record(
        session,
        actor=actor,
        action="project.delete",
        target_type="project",
        target_id=project.id,
        data={"name": project.name},
    )
    return project


async def update_settings(
    session: AsyncSession, ref: str | uuid.UUID, changes: Mapping[str, Any], *, actor: str = "system"
) -> Project:
    """Set project settings by dotted key (None resets one to its default); unknown keys and bad values are refused
    naming the key, and nothing is changed then."""
    if not changes:
        raise InvalidInput("no setting to change: give at least one KEY=VALUE")
    project = await lock_project(session, ref)
    project.settings = project_settings.apply(project.settings, changes)
    await audit.record(
        session, actor=actor, action="project.settings.update", target_type="project", target_id=project.id,
        project_id=project.id, data={"keys": sorted(changes)},
    )  # fmt: skip
    return project


async def set_agent_config(
    session: AsyncSession,
    ref: str | uuid.UUID,
    *,
    config: Mapping[str, Any] | None = None,
    secrets: Mapping[str, str | None] | None = None,
    box: SecretBox,
    column: str = "agentapi_config",
    actor: str = "system",
) -> Project:
    """Replace the plain part of the coding agent's configuration (`config`: every key but `secret_env`, which it
    may not carry) and set (encrypted) or remove (None) its secret variables. The result is validated (InvalidInput
    naming the key), so nothing changes on a bad value; secret values are never recorded, only their names."""
    if config is not None and "secret_env" in config:
        raise InvalidInput("secret_env is set one variable at a time, from a file (--agent-secret NAME=FILE)")
    project = await lock_project(session, ref)
    stored = dict(getattr(project, column, None) or {}) if column in agent_config.COLUMNS else {}
    plain = config if config is not None else {k: v for k, v in stored.items() if k != "secret_env"}
    result: dict[str, Any] = dict(plain)
    encrypted = dict(stored.get("secret_env") or {})
    for name, value in (secrets or {}).items():
        if not name or "=" in name or "\0" in name:
            raise InvalidInput(f"invalid environment variable name {name!r}")
        if value is None:
            encrypted.pop(name, None)
        elif not value.strip():
            raise InvalidInput(f"the secret {name} must not be empty")
        else:
            encrypted[name] = box.encrypt(value)
    if encrypted:
        result["secret_env"] = encrypted
    agent_config.validate(column, result)
    setattr(project, column, result)
    await audit.record(
        session, actor=actor, action="project.agent_config.update", target_type="project", target_id=project.id,
        project_id=project.id, data={"column": column, "keys": sorted(result), "secrets": sorted(encrypted)},
    )  # fmt: skip
    return project
