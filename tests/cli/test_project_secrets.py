"""Secrets reach `taskmaster project` through files or standard input, never the command line (visible in `ps`)."""

from __future__ import annotations

import json
import sqlite3
import subprocess
from pathlib import Path

from cryptography.fernet import Fernet

from tests.cli.conftest import TASKMASTER, Runner, clean_env


def _stored(workdir: Path, column: str, name: str) -> str:
    state = workdir / ".taskmaster"
    with sqlite3.connect(state / "taskmaster.db") as conn:
        stored: str = conn.execute(f"select {column} from projects where name = ?", (name,)).fetchone()[0]
    key = Fernet((state / "secret.key").read_text().strip().encode())
    return key.decrypt(stored.encode()).decode()


def test_project_add_reads_secrets_from_files_and_stdin(taskmaster_cli: Runner, workdir: Path) -> None:
    assert taskmaster_cli("db", "migrate").returncode == 0
    (workdir / "hook.secret").write_text("whsec-from-a-file-42\n")
    (workdir / "forge.token").write_text("ghp_token_from_file\n")
    added = taskmaster_cli(
        "project", "add", "app", "--repo", "https://github.com/o/app", "--forge", "github",
        "--webhook-secret-file", "hook.secret", "--forge-token-file", "forge.token", "--json",
    )  # fmt: skip
    assert added.returncode == 0, added.stderr
    assert json.loads(added.stdout)["has_webhook_secret"] is True
    assert _stored(workdir, "webhook_secret", "app") == "whsec-from-a-file-42"
    assert _stored(workdir, "forge_token", "app") == "ghp_token_from_file"

    piped = subprocess.run(
        [TASKMASTER, "project", "add", "app2", "--repo", "https://github.com/o/app2", "--forge", "github",
         "--webhook-secret-file", "-"],
        cwd=workdir, env=clean_env(), input="whsec-from-stdin-77\n", capture_output=True, text=True, timeout=60,
        check=False,
    )  # fmt: skip
    assert piped.returncode == 0, piped.stderr
    assert _stored(workdir, "webhook_secret", "app2") == "whsec-from-stdin-77"

    rotated = subprocess.run(
        [TASKMASTER, "project", "rotate-webhook-secret", "app2", "--secret-file", "-"],
        cwd=workdir, env=clean_env(), input="whsec-rotated-88\n", capture_output=True, text=True, timeout=60,
        check=False,
    )  # fmt: skip
    assert rotated.returncode == 0, rotated.stderr
    assert _stored(workdir, "webhook_secret", "app2") == "whsec-rotated-88"


def test_project_add_refuses_a_missing_or_empty_secret_file_and_both_forms(
    taskmaster_cli: Runner, workdir: Path
) -> None:
    assert taskmaster_cli("db", "migrate").returncode == 0
    (workdir / "empty").write_text("\n")
    cases = {
        "could not read the webhook secret from nowhere": ("--webhook-secret-file", "nowhere"),
        "the forge token file empty is empty": ("--forge-token-file", "empty"),
        "inline or from a file, not both": ("--webhook-secret", "whsec-x-12345", "--webhook-secret-file", "empty"),
        "only one of": ("--webhook-secret-file", "-", "--forge-token-file", "-"),
    }
    for message, options in cases.items():
        result = taskmaster_cli("project", "add", "app", "--repo", "https://github.com/o/app", *options)
        assert result.returncode == 2, (options, result.stderr)
        assert message in result.stderr
    assert taskmaster_cli("project", "show", "app").returncode == 1


def test_project_add_makes_a_relative_repository_path_absolute_where_it_is_typed(
    taskmaster_cli: Runner, workdir: Path
) -> None:
    assert taskmaster_cli("db", "migrate").returncode == 0
    (workdir / "checkouts" / "app").mkdir(parents=True)  # a local repository's path must exist
    added = taskmaster_cli("project", "add", "app", "--repo", "checkouts/app", "--json")
    assert added.returncode == 0, added.stderr
    assert json.loads(added.stdout)["repository"] == str((workdir / "checkouts" / "app").resolve())


def test_project_update_sets_a_forge_token_and_changes_the_webhook_secret_from_files_and_stdin(
    taskmaster_cli: Runner, workdir: Path
) -> None:
    assert taskmaster_cli("db", "migrate").returncode == 0
    (workdir / "hook.secret").write_text("whsec-first-secret-1\n")
    added = taskmaster_cli(
        "project", "add", "app", "--repo", "https://github.com/o/app", "--forge", "github",
        "--webhook-secret-file", "hook.secret", "--json",
    )  # fmt: skip
    assert added.returncode == 0, added.stderr
    assert json.loads(added.stdout)["has_forge_token"] is False

    (workdir / "forge.token").write_text("ghp_token_set_later\n")
    updated = taskmaster_cli(
        "project", "update", "app", "--forge-token-file", "forge.token", "--set", "review.fail_on=blocker", "--json"
    )
    assert updated.returncode == 0, updated.stderr
    shown = json.loads(updated.stdout)
    assert shown["has_forge_token"] is True and shown["settings"]["review"]["fail_on"] == "blocker"
    assert _stored(workdir, "forge_token", "app") == "ghp_token_set_later"

    piped = subprocess.run(
        [TASKMASTER, "project", "update", "app", "--forge-token-file", "-", "--webhook-secret-file", "hook.secret"],
        cwd=workdir, env=clean_env(), input="ghp_token_from_stdin\n", capture_output=True, text=True, timeout=60,
        check=False,
    )  # fmt: skip
    assert piped.returncode == 0, piped.stderr
    assert _stored(workdir, "forge_token", "app") == "ghp_token_from_stdin"
    (workdir / "hook.secret").write_text("whsec-second-secret-2\n")
    assert taskmaster_cli("project", "update", "app", "--webhook-secret-file", "hook.secret").returncode == 0
    assert _stored(workdir, "webhook_secret", "app") == "whsec-second-secret-2"
    assert _stored(workdir, "webhook_secret_previous", "app") == "whsec-first-secret-1"


def test_project_update_refuses_nothing_to_change_an_empty_secret_file_and_a_bad_setting_changing_nothing(
    taskmaster_cli: Runner, workdir: Path
) -> None:
    assert taskmaster_cli("db", "migrate").returncode == 0
    assert (
        taskmaster_cli("project", "add", "app", "--repo", "https://github.com/o/app", "--forge", "github").returncode
        == 0
    )
    (workdir / "empty").write_text("\n")
    (workdir / "forge.token").write_text("ghp_never_stored\n")
    cases = {
        "nothing to change": (),
        "the forge token file empty is empty": ("--forge-token-file", "empty"),
        "could not read the webhook secret from nowhere": ("--webhook-secret-file", "nowhere"),
        "only one of": ("--webhook-secret-file", "-", "--forge-token-file", "-"),
    }
    for message, options in cases.items():
        result = taskmaster_cli("project", "update", "app", *options)
        assert result.returncode == 2, (options, result.stderr)
        assert message in result.stderr
    refused = taskmaster_cli("project", "update", "app", "--forge-token-file", "forge.token", "--set", "no.such=1")
    assert refused.returncode != 0 and "no.such" in refused.stderr
    shown = json.loads(taskmaster_cli("project", "show", "app", "--json").stdout)
    assert (shown["has_forge_token"], shown["has_webhook_secret"]) == (False, False)


def test_project_update_sets_the_coding_agents_configuration_and_its_secrets_from_files(
    taskmaster_cli: Runner, workdir: Path
) -> None:
    assert taskmaster_cli("db", "migrate").returncode == 0
    added = taskmaster_cli("project", "add", "app", "--repo", "https://github.com/o/app", "--forge", "github")
    assert added.returncode == 0, added.stderr
    config = {"args": ["--model", "m"], "env": {"ANTHROPIC_BASE_URL": "https://llm.internal"}, "permissions": "none"}
    (workdir / "agent.json").write_text(json.dumps(config))
    (workdir / "key.txt").write_text("sk-ant-from-a-file\n")
    updated = taskmaster_cli(
        "project", "update", "app", "--agent-config-file", "agent.json", "--agent-secret", "ANTHROPIC_API_KEY=key.txt",
        "--json",
    )  # fmt: skip
    assert updated.returncode == 0, updated.stderr
    assert "sk-ant-from-a-file" not in updated.stdout
    assert json.loads(updated.stdout)["agent_config"] == {**config, "secret_env": ["ANTHROPIC_API_KEY"]}
    state = workdir / ".taskmaster"
    with sqlite3.connect(state / "taskmaster.db") as conn:
        stored = json.loads(conn.execute("select agentapi_config from projects where name = 'app'").fetchone()[0])
    key = Fernet((state / "secret.key").read_text().strip().encode())
    assert key.decrypt(stored["secret_env"]["ANTHROPIC_API_KEY"].encode()).decode() == "sk-ant-from-a-file"

    # A bad configuration is refused naming the key, and changes nothing; NAME= removes a secret.
    (workdir / "bad.json").write_text(json.dumps({"permissions": "sometimes"}))
    refused = taskmaster_cli("project", "update", "app", "--agent-config-file", "bad.json")
    assert refused.returncode != 0 and "permissions" in refused.stderr
    removed = taskmaster_cli("project", "update", "app", "--agent-secret", "ANTHROPIC_API_KEY=", "--json")
    assert removed.returncode == 0, removed.stderr
    assert json.loads(removed.stdout)["agent_config"] == config
    inline = taskmaster_cli("project", "update", "app", "--agent-config-file", "agent.json", "--agent-secret", "X")
    assert inline.returncode == 2 and "expected NAME=FILE" in inline.stderr
