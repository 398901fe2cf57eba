"""The state directory: outside any repository by default, private (0700), its files 0600; sandbox settings."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from taskmaster.config import ConfigurationError, load_settings
from taskmaster.config.state import private_dir, private_file


def test_state_dir_defaults_to_xdg_state_home_then_local_state(tmp_path: Path) -> None:
    xdg = load_settings({"XDG_STATE_HOME": str(tmp_path / "xdg"), "HOME": str(tmp_path / "home")})
    home = load_settings({"HOME": str(tmp_path / "home")})
    relative = load_settings({"XDG_STATE_HOME": "relative/state", "HOME": str(tmp_path / "home")})
    chosen = load_settings({"TASKMASTER_HOME": str(tmp_path / "chosen"), "XDG_STATE_HOME": str(tmp_path / "xdg")})

    assert xdg.state_dir == tmp_path / "xdg" / "taskmaster"
    assert home.state_dir == tmp_path / "home" / ".local" / "state" / "taskmaster"
    assert relative.state_dir == home.state_dir  # a relative XDG_STATE_HOME is ignored, as the specification says
    assert chosen.state_dir == tmp_path / "chosen"
    assert home.workspace_root == home.state_dir / "workspaces" and home.mirror_root == home.state_dir / "mirrors"


def test_private_dir_and_file_are_made_and_narrowed(tmp_path: Path) -> None:
    wide = tmp_path / "state"
    wide.mkdir(mode=0o755)
    wide.chmod(0o755)
    existing = wide / "taskmaster.db"
    existing.write_text("")
    existing.chmod(0o644)

    private_dir(wide)
    private_file(existing)
    private_file(wide / "admin-token")

    assert stat.S_IMODE(wide.stat().st_mode) == 0o700
    assert stat.S_IMODE(existing.stat().st_mode) == 0o600
    assert stat.S_IMODE((wide / "admin-token").stat().st_mode) == 0o600
    assert private_dir(tmp_path / "new" / "deep").stat().st_mode & 0o777 == 0o700


def test_sandbox_and_step_limits_come_from_the_environment() -> None:
    settings = load_settings(
        {
            "TASKMASTER_EXECUTOR_SANDBOX": "off",
            "TASKMASTER_STEP_MEMORY_BYTES": "1073741824",
            "TASKMASTER_STEP_DISK_BYTES": "0",
        }
    )

    assert settings.executor.sandbox == "off"
    assert settings.executor.limits.memory_bytes == 1024**3
    assert settings.executor.limits.disk_bytes is None  # 0: no limit
    assert load_settings({}).executor.sandbox == "required"


def test_a_bad_sandbox_value_names_the_variable() -> None:
    with pytest.raises(ConfigurationError) as raised:
        load_settings({"TASKMASTER_EXECUTOR_SANDBOX": "maybe"})

    assert raised.value.problems[0].startswith("TASKMASTER_EXECUTOR_SANDBOX:")
