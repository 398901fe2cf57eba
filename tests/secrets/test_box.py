"""Secrets at rest: Fernet tokens in the database, readable with any configured key, rotated in place."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from sqlalchemy import select

from taskmaster.config import Settings
from taskmaster.core.errors import InvalidInput
from taskmaster.db.models import Project
from taskmaster.db.session import Database
from taskmaster.projects import service as projects
from taskmaster.projects.schemas import ProjectCreate
from taskmaster.secrets.box import SecretBox, SecretKeyError, key_file_path, load_or_create_key_file, new_key
from taskmaster.secrets.service import reencrypt_all
from tests.conftest import make_settings


def test_key_file_is_made_once_with_owner_only_permissions(tmp_path: Path) -> None:
    settings = make_settings(tmp_path)
    box = SecretBox.from_settings(settings)
    path = key_file_path(settings)
    assert path.stat().st_mode & 0o777 == 0o600
    assert SecretBox.from_settings(settings).keys == box.keys
    token = box.encrypt("hunter2")
    assert token is not None
    assert "hunter2" not in token
    assert box.decrypt(token) == "hunter2"


def test_configured_keys_decrypt_old_values_and_encrypt_with_the_first() -> None:
    old, new = new_key(), new_key()
    token = SecretBox([old]).encrypt("v")
    both = SecretBox([new, old])
    assert both.decrypt(token) == "v"
    rotated = both.rotate(token)
    assert SecretBox([new]).decrypt(rotated) == "v"
    with pytest.raises(SecretKeyError, match="cannot be decrypted"):
        SecretBox([new_key()]).decrypt(token)


def test_an_invalid_key_is_a_clear_error() -> None:
    with pytest.raises(InvalidInput, match="not a valid Fernet key"):
        SecretBox(["not-a-key"])


async def test_rotation_reencrypts_every_stored_secret(db: Database, settings: Settings) -> None:
    old = SecretBox([new_key()])
    async with db.transaction() as session:
        await projects.create_project(
            session,
            spec=ProjectCreate(name="app", repository="https://github.com/o/app", forge="github",
                               webhook_secret="whsec", forge_token="ghp_tok"),
            box=old,
        )  # fmt: skip
        await projects.create_project(session, spec=ProjectCreate(name="plain", repository="/r"), box=old)
        agent = await projects.create_project(session, spec=ProjectCreate(name="agent", repository="/a"), box=old)
        agent.agentapi_config = {"env": {"A": "1"}, "secret_env": {"OPENAI_API_KEY": old.encrypt("sk-agent")}}
    rotated = SecretBox([new_key(), *old.keys])
    async with db.transaction() as session:
        result = await reencrypt_all(session, rotated)
    assert (result.rows, result.values) == (2, 3)
    only_new = SecretBox(rotated.keys[:1])
    async with db.session() as session:
        row = await session.scalar(select(Project).where(Project.name == "app"))
        assert row is not None
        assert only_new.decrypt(row.webhook_secret) == "whsec"
        assert only_new.decrypt(row.forge_token) == "ghp_tok"
        agent_row = await session.scalar(select(Project).where(Project.name == "agent"))
        assert agent_row is not None
        assert agent_row.agentapi_config["env"] == {"A": "1"}
        assert only_new.decrypt(agent_row.agentapi_config["secret_env"]["OPENAI_API_KEY"]) == "sk-agent"


def test_processes_starting_together_all_use_the_one_key_that_was_written(tmp_path: Path) -> None:
    path = tmp_path / "state" / "secret.key"
    ready = threading.Barrier(16)

    def start() -> list[str]:
        ready.wait()
        return load_or_create_key_file(path)

    with ThreadPoolExecutor(16) as pool:
        seen = list(pool.map(lambda _: start(), range(16)))

    assert len({tuple(keys) for keys in seen}) == 1
    assert seen[0] == path.read_text().split()
    assert [p.name for p in path.parent.iterdir()] == ["secret.key"]  # no temporary file left
    assert path.stat().st_mode & 0o777 == 0o600
