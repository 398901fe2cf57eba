"""`taskmaster token create` refuses what the API refuses, in one line instead of a traceback."""

from __future__ import annotations

from tests.cli.conftest import Runner


def test_token_create_refuses_an_overlong_name_and_a_far_expiry_in_one_line(taskmaster_cli: Runner) -> None:
    assert taskmaster_cli("db", "migrate").returncode == 0
    long_name = taskmaster_cli("token", "create", "--role", "viewer", "--name", "x" * 201)
    far = taskmaster_cli("token", "create", "--role", "viewer", "--expires-in-days", "99999999999")
    fine = taskmaster_cli("token", "create", "--role", "viewer", "--name", "x" * 200, "--expires-in-days", "36500")
    assert long_name.returncode == 2
    assert long_name.stderr.strip() == "taskmaster: --name must have 1 to 200 characters (got 201)"
    assert far.returncode == 2
    assert "Traceback" not in far.stderr and "--expires-in-days" in far.stderr
    assert fine.returncode == 0, fine.stderr
