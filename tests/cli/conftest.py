"""Run the real `taskmaster` console script in a subprocess, in a temp working directory."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

TASKMASTER = str(Path(sys.executable).parent / "taskmaster")
Runner = Callable[..., subprocess.CompletedProcess[str]]


def clean_env(**extra: str) -> dict[str, str]:
    """The parent's environment minus anything that configures Taskmaster, plus `extra`. The state directory is
    `.taskmaster` in the command's working directory unless `extra` names one: never the user's real one."""
    from taskmaster.config.loading import CONFIG_FILE_VAR, ENV_VARS

    env = {k: v for k, v in os.environ.items() if k not in ENV_VARS and k != CONFIG_FILE_VAR}
    env["TASKMASTER_HOME"] = ".taskmaster"
    env.update(extra)
    return env


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    path = tmp_path / "work"
    path.mkdir()
    return path


@pytest.fixture
def taskmaster_cli(workdir: Path) -> Runner:
    def run(*args: str, env: dict[str, str] | None = None, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [TASKMASTER, *args],
            cwd=workdir,
            env=clean_env(**(env or {})),
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )

    return run
