"""Scripted terminal agents installed as the sandbox's user can run them: outside the toolchain, as npm or a venv
would install a CLI, with the terminal they share (`scripted_terminal.py`) beside them."""

from __future__ import annotations

import shutil
from pathlib import Path

TERMINAL = Path(__file__).with_name("scripted_terminal.py")


def install_agent(folder: Path, name: str, script: Path, *modules: Path) -> str:
    """Copy `script` to `folder/name` (executable, the folder made if missing), with the shared terminal and
    `modules` (what else it imports) next to it; the command that runs it."""
    folder.mkdir(exist_ok=True)
    for module in (TERMINAL, *modules):
        shutil.copy(module, folder / module.name)
    target = folder / name
    shutil.copy(script, target)
    target.chmod(0o755)
    folder.chmod(0o755)
    return str(target)
