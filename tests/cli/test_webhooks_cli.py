"""`taskmaster webhooks list|show|redeliver` and `project rotate-webhook-secret`, run as the real command."""

from __future__ import annotations

import asyncio
import json
import uuid
from pathlib import Path

from taskmaster.db.session import Database
from taskmaster.forges.events import Provider
from taskmaster.forges.github import webhooks as github
from taskmaster.secrets import SecretBox
from taskmaster.webhooks import service
from taskmaster.webhooks.receivers import load_receivers
from tests.cli.conftest import Runner
from tests.conftest import make_settings
from tests.forges.fixtures import payload_bytes


async def _store_and_process(state: Path, project_name: str) -> str:
    settings = make_settings(state)
    db = Database.from_settings(settings)
    headers = {"X-GitHub-Event": "pull_request", "X-GitHub-Delivery": str(uuid.uuid4()), "X-GitHub-Hook-ID": "7",
               "Content-Type": "application/json"}  # fmt: skip
    try:
        box = SecretBox.from_settings(settings)
        async with db.autocommit_engine.connect() as connection:
            (receiver,) = await load_receivers(connection, Provider.GITHUB, "Codertocat/Hello-World", box, settings)
        assert receiver.name == project_name
        assert receiver.secrets() == ["second-secret", "first-secret"]  # the rotation overlap
        async with db.transaction() as session:
            stored = await service.store_delivery(
                session, identity=github.identify(headers), project_id=receiver.project_id, headers=headers,
                body=payload_bytes("github/pull_request/opened"), action="opened",
            )  # fmt: skip
        assert await service.process_next(db, settings)
        return str(stored.id)
    finally:
        await db.dispose()


def test_deliveries_are_listed_shown_and_redelivered_and_secrets_rotate(taskmaster_cli: Runner, workdir: Path) -> None:
    assert taskmaster_cli("db", "migrate").returncode == 0
    added = taskmaster_cli(
        "project", "add", "hello", "--repo", "https://github.com/Codertocat/Hello-World", "--forge", "github",
        "--webhook-secret", "first-secret", "--forge-token", "ghp_not_a_real_token", "--json",
    )  # fmt: skip
    assert added.returncode == 0, added.stderr
    assert json.loads(added.stdout)["has_forge_token"] is True and "ghp_not_a_real_token" not in added.stdout
    rotated = taskmaster_cli("project", "rotate-webhook-secret", "hello", "--secret", "second-secret")
    assert rotated.returncode == 0, rotated.stderr
    assert "previous one is accepted for 24 more hours" in rotated.stdout
    too_short = taskmaster_cli("project", "rotate-webhook-secret", "hello", "--secret", "short")
    assert too_short.returncode == 1 and "at least 8 characters" in too_short.stderr

    delivery = asyncio.run(_store_and_process(workdir / ".taskmaster", "hello"))
    listed = json.loads(taskmaster_cli("webhooks", "list", "--json").stdout)
    assert listed["total"] == 1
    (item,) = listed["items"]
    assert (item["id"], item["status"], item["event"], item["action"]) == (
        delivery,
        "processed",
        "pull_request",
        "opened",
    )
    assert item["result"]["kind"] == "pr_opened" and item["result"]["pipeline_created"] is True
    table = taskmaster_cli("webhooks", "list", env={"COLUMNS": "200"})
    assert "github pull_request.opened" in table.stdout and f"pipeline {item['result']['pipeline']}" in table.stdout
    narrow = taskmaster_cli("webhooks", "list", env={"COLUMNS": "80"})
    assert delivery[:13] in narrow.stdout  # the id as the list prints it, whole at 80 columns
    assert json.loads(taskmaster_cli("webhooks", "show", delivery[:13], "--json").stdout)["id"] == delivery
    shown = json.loads(taskmaster_cli("webhooks", "show", delivery, "--json").stdout)
    assert json.loads(shown["body"])["number"] == 2 and shown["headers"]["x-github-hook-id"] == "7"
    again = taskmaster_cli("webhooks", "redeliver", delivery[:18])
    assert again.returncode == 0 and "queued for processing again" in again.stdout
    assert json.loads(taskmaster_cli("webhooks", "list", "--status", "received", "--json").stdout)["total"] == 1
    twice = taskmaster_cli("webhooks", "redeliver", delivery)
    assert twice.returncode == 1 and "already waiting" in twice.stderr
    missing = taskmaster_cli("webhooks", "show", str(uuid.uuid4()))
    assert missing.returncode == 1 and "does not exist" in missing.stderr
