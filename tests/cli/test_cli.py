"""The `taskmaster` command end to end: help, configuration errors, db, tokens, projects, secrets."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from tests.cli.conftest import Runner
from tests.conftest import PostgresDatabase
from tests.db.test_migrations import EXPECTED_TABLES


def test_help_lists_every_command(taskmaster_cli: Runner) -> None:
    result = taskmaster_cli("--help")
    assert result.returncode == 0
    for name in ("serve", "worker", "db", "project", "token", "secrets"):
        assert f"\n  {name} " in result.stdout
    sub = taskmaster_cli("db", "--help")
    assert sub.returncode == 0
    assert "create-migration" in sub.stdout


def test_bad_configuration_is_one_line_and_non_zero(taskmaster_cli: Runner) -> None:
    result = taskmaster_cli("serve", env={"DB_PORT": "notanumber"})
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1
    assert "DB_PORT" in lines[0]
    assert "notanumber" in lines[0]
    assert "Traceback" not in result.stderr + result.stdout


def test_embedded_default_migrate_creates_the_sqlite_file(taskmaster_cli: Runner, workdir: Path) -> None:
    behind = taskmaster_cli("db", "status")
    assert behind.returncode == 1
    assert "behind" in behind.stdout
    assert taskmaster_cli("db", "migrate").returncode == 0
    status = taskmaster_cli("db", "status", "--json")
    assert status.returncode == 0
    assert json.loads(status.stdout)["up_to_date"] is True
    database = workdir / ".taskmaster" / "taskmaster.db"
    with sqlite3.connect(database) as conn:
        tables = {row[0] for row in conn.execute("select name from sqlite_master where type='table'")}
    assert tables >= EXPECTED_TABLES


@pytest.mark.postgres
def test_database_url_migrate_then_status_on_postgres(taskmaster_cli: Runner, pg_database: PostgresDatabase) -> None:
    env = {"DATABASE_URL": pg_database.url}
    assert taskmaster_cli("db", "status", env=env).returncode == 1
    migrated = taskmaster_cli("db", "migrate", env=env)
    assert migrated.returncode == 0, migrated.stderr
    assert taskmaster_cli("db", "status", env=env).returncode == 0
    import psycopg

    with psycopg.connect(pg_database.url) as conn:
        tables = {r[0] for r in conn.execute("select tablename from pg_tables where schemaname='public'")}
    assert tables >= EXPECTED_TABLES


def test_unreachable_database_is_one_clear_line(taskmaster_cli: Runner) -> None:
    result = taskmaster_cli("db", "status", env={"DATABASE_URL": "postgresql://postgres@127.0.0.1:9/none"})
    assert result.returncode == 1
    assert result.stderr.startswith("taskmaster: cannot reach the database")
    assert "Traceback" not in result.stderr


def test_token_create_list_revoke(taskmaster_cli: Runner) -> None:
    assert taskmaster_cli("db", "migrate").returncode == 0
    bad = taskmaster_cli("token", "create", "--role", "root")
    assert bad.returncode == 2
    assert "--role must be one of" in bad.stderr
    created = taskmaster_cli("token", "create", "--role", "developer", "--name", "ci", "--json")
    assert created.returncode == 0, created.stderr
    token = json.loads(created.stdout)
    assert token["token"].startswith("tm_")
    assert token["role"] == "developer"
    listed = json.loads(taskmaster_cli("token", "list", "--json").stdout)
    assert [t["name"] for t in listed] == ["ci"]
    assert "token" not in listed[0]
    assert token["token"] not in taskmaster_cli("token", "list").stdout
    assert taskmaster_cli("token", "revoke", token["id"], "--yes").returncode == 0
    assert json.loads(taskmaster_cli("token", "list", "--json").stdout) == []
    missing = taskmaster_cli("token", "revoke", "not-a-uuid", "--yes")
    assert missing.returncode == 1
    assert "not a token id" in missing.stderr


def test_project_add_show_remove_and_secret_rotation(taskmaster_cli: Runner, workdir: Path) -> None:
    assert taskmaster_cli("db", "migrate").returncode == 0
    added = taskmaster_cli(
        "project", "add", "hello", "--repo", "https://github.com/o/hello", "--forge", "github",
        "--webhook-secret", "whsec-distinct-99", "--json",
    )  # fmt: skip
    assert added.returncode == 0, added.stderr
    assert json.loads(added.stdout)["has_webhook_secret"] is True
    assert "whsec-distinct-99" not in added.stdout
    duplicate = taskmaster_cli("project", "add", "hello", "--repo", ".")
    assert duplicate.returncode == 1
    assert "already exists" in duplicate.stderr
    invalid = taskmaster_cli("project", "add", "h2", "--repo", ".", "--forge", "svn")
    assert invalid.returncode == 2
    assert "forge" in invalid.stderr
    key_file = workdir / ".taskmaster" / "secret.key"
    old_key = key_file.read_text()
    rotated = taskmaster_cli("secrets", "rotate-key")
    assert rotated.returncode == 0
    assert "re-encrypted 1 secret(s) in 1 row(s)" in rotated.stdout
    assert key_file.read_text() != old_key
    assert len(key_file.read_text().split()) == 1
    with sqlite3.connect(workdir / ".taskmaster" / "taskmaster.db") as conn:
        stored = conn.execute("select webhook_secret from projects").fetchone()[0]
    from cryptography.fernet import Fernet

    assert Fernet(key_file.read_text().strip().encode()).decrypt(stored.encode()) == b"whsec-distinct-99"
    shown = json.loads(taskmaster_cli("project", "show", "hello", "--json").stdout)
    assert shown["owner"] == "o"
    assert shown["repo_name"] == "hello"
    assert taskmaster_cli("project", "remove", "hello", "--yes").returncode == 0
    gone = taskmaster_cli("project", "show", "hello")
    assert gone.returncode == 1
    assert "does not exist" in gone.stderr


def test_project_add_keeps_a_gitlab_subgroup_in_the_owner_and_refuses_a_github_url_below_a_repository(
    taskmaster_cli: Runner,
) -> None:
    nested = taskmaster_cli("project", "add", "api", "--repo", "git@gitlab.com:acme/platform/api.git",
                            "--forge", "gitlab", "--json")  # fmt: skip
    assert nested.returncode == 0, nested.stderr
    assert (json.loads(nested.stdout)["owner"], json.loads(nested.stdout)["repo_name"]) == ("acme/platform", "api")
    page = "https://github.com/octo/app/tree/main"
    refused = taskmaster_cli("project", "add", "app", "--repo", page, "--forge", "github")
    assert refused.returncode == 2
    assert f"a GitHub repository is owner/name, but {page} names octo/app/tree/main" in refused.stderr
    assert taskmaster_cli("project", "show", "app").returncode == 1


def test_database_password_never_reaches_the_output(taskmaster_cli: Runner) -> None:
    url = "postgresql://postgres:pw-distinct-77@127.0.0.1:9/none"
    result = taskmaster_cli("db", "status", env={"DATABASE_URL": url})
    assert result.returncode == 1
    assert "pw-distinct-77" not in result.stdout + result.stderr


def test_every_command_that_opens_the_embedded_database_migrates_it_as_serve_does(taskmaster_cli: Runner) -> None:
    assert taskmaster_cli("db", "migrate", "0002").returncode == 0
    behind = taskmaster_cli("db", "status")
    assert behind.returncode == 1 and "behind" in behind.stdout  # the `db` commands leave the schema alone

    listed = taskmaster_cli("project", "list", "--json")

    assert listed.returncode == 0, listed.stderr
    assert listed.stdout.strip() == "[]"
    assert taskmaster_cli("db", "status").returncode == 0


def test_project_update_sets_settings_by_dotted_name_and_show_prints_them(
    taskmaster_cli: Runner, workdir: Path
) -> None:
    assert taskmaster_cli("db", "migrate").returncode == 0
    (workdir / "tuned").mkdir()  # a local repository's path must exist
    assert taskmaster_cli("project", "add", "tuned", "--repo", str(workdir / "tuned")).returncode == 0
    updated = taskmaster_cli(
        "project", "update", "tuned", "--set", "review.fail_on=blocker", "--set", "codegen.max_parallel=4",
        "--set", "push_pipelines=true", "--json",
    )  # fmt: skip
    assert updated.returncode == 0, updated.stderr
    settings = json.loads(updated.stdout)["settings"]
    assert (settings["review"]["fail_on"], settings["codegen"]["max_parallel"]) == ("blocker", 4)
    assert settings["push_pipelines"] is True
    shown = taskmaster_cli("project", "show", "tuned")
    assert "review.fail_on = blocker" in shown.stdout
    assert "recovery.max_rounds = 2" in shown.stdout
    assert "agent.command = (unset)" in shown.stdout
    reset = taskmaster_cli("project", "update", "tuned", "--set", "review.fail_on=", "--json")
    assert json.loads(reset.stdout)["settings"]["review"]["fail_on"] == "major"

    refusals = [
        (["review.fail=major"], 1, "unknown project setting 'review.fail'"),
        (["recovery.mode=yolo", "codegen.max_parallel=2"], 1, "recovery.mode: Input should be 'push' or 'suggest'"),
        (["review.fail_on"], 2, "expected KEY=VALUE"),
    ]
    for changes, code, message in refusals:
        refused = taskmaster_cli("project", "update", "tuned", *(arg for c in changes for arg in ("--set", c)))
        assert refused.returncode == code and message in refused.stderr, refused.stderr
    after = json.loads(taskmaster_cli("project", "show", "tuned", "--json").stdout)["settings"]
    assert (after["codegen"]["max_parallel"], after["recovery"]["mode"]) == (4, "suggest")
