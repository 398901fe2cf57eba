"""Migrations run upgrade -> downgrade -> upgrade on both databases and leave the models' schema."""

from __future__ import annotations

from sqlalchemy import inspect

from taskmaster.config import Settings
from taskmaster.db import migrate
from taskmaster.db.base import Base
from taskmaster.db.session import Database

EXPECTED_TABLES = {
    "projects", "tasks", "pull_requests", "ci_cd_pipelines", "pipeline_steps", "templates",
    "step_attempts", "step_logs", "webhook_deliveries", "agent_sessions", "workers", "web_sessions",
    "users", "role_bindings", "api_tokens", "audit_events", "task_dependencies", "workflow_runs", "ai_calls",
    "local_issues", "local_comments", "local_commit_statuses", "local_check_runs", "local_reviews",
    "review_reports", "review_findings",
    "recovery_rounds",
    "workflow_steps",
}  # fmt: skip


async def _tables(db: Database) -> set[str]:
    async with db.engine.connect() as conn:
        names = await conn.run_sync(lambda sync: set(inspect(sync).get_table_names()))
    return names - {"alembic_version"}


async def test_upgrade_downgrade_upgrade_leaves_the_models_schema(settings: Settings) -> None:
    db = Database.from_settings(settings)
    try:
        assert (await migrate.status(db)).current is None
        await migrate.upgrade(db)
        assert await _tables(db) == EXPECTED_TABLES == set(Base.metadata.tables)
        await migrate.downgrade(db, "base")
        assert await _tables(db) == set()
        await migrate.upgrade(db)
        state = await migrate.status(db)
        assert state.up_to_date
        assert state.current == state.head
        assert await migrate.pending_changes(db) == []
    finally:
        await db.dispose()


async def test_status_reports_behind_until_migrated(settings: Settings) -> None:
    db = Database.from_settings(settings)
    try:
        before = await migrate.status(db)
        assert before.head is not None
        assert not before.up_to_date
        await migrate.upgrade(db)
        assert (await migrate.status(db)).up_to_date
    finally:
        await db.dispose()


async def test_tasks_created_before_numbering_are_numbered_per_project(settings: Settings) -> None:
    import uuid

    from sqlalchemy import text

    from taskmaster.core.clock import utcnow

    db = Database.from_settings(settings)
    try:
        await migrate.upgrade(db, "0001")
        now = utcnow()
        projects = [uuid.uuid4(), uuid.uuid4()]
        async with db.engine.begin() as conn:
            for index, project in enumerate(projects):
                await conn.execute(
                    text(
                        "INSERT INTO projects (id, name, repository, forge, default_branch, agentapi_config, "
                        "claude_code_config, pipeline_defaults, settings, created_at, updated_at) VALUES "
                        "(:id, :name, '/r', 'local', 'main', '{}', '{}', '{}', '{}', :now, :now)"
                    ),
                    {"id": project.hex if db.dialect == "sqlite" else project, "name": f"p{index}", "now": now},
                )
            for n in range(3):
                for project in projects:
                    await conn.execute(
                        text(
                            "INSERT INTO tasks (id, project_id, title, extra, created_at, updated_at) "
                            "VALUES (:id, :project, :title, '{}', :created, :created)"
                        ),
                        {
                            "id": uuid.uuid4().hex if db.dialect == "sqlite" else uuid.uuid4(),
                            "project": project.hex if db.dialect == "sqlite" else project,
                            "title": f"t{n}",
                            "created": now.replace(microsecond=n),
                        },
                    )
        await migrate.upgrade(db)
        async with db.engine.connect() as conn:
            rows = (await conn.execute(text("SELECT project_id, title, number FROM tasks"))).all()
        numbered = sorted((str(p), title, number) for p, title, number in rows)
        assert [(title, number) for _, title, number in numbered] == [
            ("t0", 1), ("t1", 2), ("t2", 3), ("t0", 1), ("t1", 2), ("t2", 3)
        ]  # fmt: skip
    finally:
        await db.dispose()


async def test_gitlab_projects_stored_with_a_cut_namespace_get_their_whole_namespace_back(settings: Settings) -> None:
    import uuid

    from sqlalchemy import text

    from taskmaster.core.clock import utcnow

    # (forge, repository, owner and name as earlier releases stored them, as this migration leaves them)
    stored = {
        "nested": ("gitlab", "https://gitlab.com/acme/platform/api.git", ("platform", "api"), ("acme/platform", "api")),
        "scp": ("gitlab", "git@gitlab.example.com:acme/a/b/svc.git", ("b", "svc"), ("acme/a/b", "svc")),
        "port": ("gitlab", "https://gl.example.com:8443/acme/ops/web", ("ops", "web"), ("acme/ops", "web")),
        "bare": ("gitlab", "acme/platform/cli", ("platform", "cli"), ("acme/platform", "cli")),
        "flat": ("gitlab", "https://gitlab.com/acme/flat.git", ("acme", "flat"), ("acme", "flat")),
        "path": ("gitlab", "/srv/git/acme/mirror.git", ("acme", "mirror"), ("acme", "mirror")),
        "github": ("github", "https://github.com/octo/app", ("octo", "app"), ("octo", "app")),
        "local": ("local", "/srv/repos/a/b/c", (None, None), (None, None)),
    }
    db = Database.from_settings(settings)

    async def owners() -> dict[str, tuple[str | None, str | None]]:
        async with db.engine.connect() as conn:
            rows = (await conn.execute(text("SELECT name, owner, repo_name FROM projects"))).all()
        return {name: (owner, repo_name) for name, owner, repo_name in rows}

    try:
        await migrate.upgrade(db, "0014_seed_templates")
        now = utcnow()
        async with db.engine.begin() as conn:
            for name, (forge, repository, (owner, repo_name), _) in stored.items():
                project = uuid.uuid4()
                await conn.execute(
                    text(
                        "INSERT INTO projects (id, name, repository, forge, owner, repo_name, default_branch, "
                        "agentapi_config, claude_code_config, pipeline_defaults, settings, created_at, updated_at) "
                        "VALUES (:id, :name, :repository, :forge, :owner, :repo_name, 'main', '{}', '{}', '{}', "
                        "'{}', :now, :now)"
                    ),
                    {
                        "id": project.hex if db.dialect == "sqlite" else project, "name": name,
                        "repository": repository, "forge": forge, "owner": owner, "repo_name": repo_name, "now": now,
                    },
                )  # fmt: skip
        await migrate.upgrade(db)
        expected = {name: after for name, (_, _, _, after) in stored.items()}
        assert await owners() == expected
        await migrate.downgrade(db, "0014_seed_templates")  # changes nothing: the whole namespace stays
        assert await owners() == expected
        await migrate.upgrade(db)
        assert await owners() == expected
    finally:
        await db.dispose()
