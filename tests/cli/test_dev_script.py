"""`./dev`, the developer entry point: it runs the environment's tools and answers anything else with its usage."""

from __future__ import annotations

import subprocess
from pathlib import Path

DEV = Path(__file__).parents[2] / "dev"


def dev(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(DEV), *args], capture_output=True, text=True, timeout=120, check=False)


def test_an_unknown_word_gets_the_usage_instead_of_a_system_command_of_that_name() -> None:
    typo = dev("tset")  # a real command in /usr/bin on Debian, which resets the terminal

    assert typo.returncode == 2
    assert "dev: unknown command 'tset'" in typo.stderr and "./dev serve" in typo.stderr
    assert dev("../../usr/bin/true").returncode == 2


def test_the_environments_tools_still_run() -> None:
    python = dev("python", "-c", "import taskmaster, sys; print(sys.prefix)")
    version = dev("taskmaster", "--version")

    assert python.returncode == 0 and python.stdout.strip().endswith(".venv")
    assert version.returncode == 0 and version.stdout.startswith("taskmaster ")
