"""Real git repositories for tests: run git, commit a file, make a small history or a repository with a pipeline."""

from __future__ import annotations

import base64
import os
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

GIT_ENV = {
    "GIT_AUTHOR_NAME": "Test",
    "GIT_AUTHOR_EMAIL": "test@example.com",
    "GIT_COMMITTER_NAME": "Test",
    "GIT_COMMITTER_EMAIL": "test@example.com",
    "GIT_CONFIG_NOSYSTEM": "1",
}


def git(cwd: Path, *args: str) -> str:
    """Run git in `cwd` and return its stdout; fail the test with git's stderr if it fails."""
    done = subprocess.run(
        ["git", *args], cwd=cwd, env={**os.environ, **GIT_ENV}, capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, f"git {' '.join(args)}: {done.stderr}"
    return done.stdout.strip()


def commit(repo: Path, name: str, content: str, message: str | None = None) -> str:
    """Write `name`, commit it on the current branch and return the new sha."""
    (repo / name).parent.mkdir(parents=True, exist_ok=True)
    (repo / name).write_text(content)
    git(repo, "add", name)
    git(repo, "commit", "-q", "-m", message or f"change {name}")
    return git(repo, "rev-parse", "HEAD")


def make_repo(path: Path, commits: int = 3) -> list[str]:
    """A repository on branch main with `commits` commits (the first tagged v0.1); returns their shas, oldest first."""
    path.mkdir(parents=True)
    git(path, "init", "-q", "-b", "main")
    shas = []
    for number in range(commits):
        shas.append(commit(path, "app.txt", f"version {number}\n", f"commit {number}"))
        if number == 0:
            git(path, "tag", "-a", "v0.1", "-m", "first")
    return shas


def make_pipeline_repo(path: Path, definition: str | None) -> str:
    """A repository on main whose last commit holds `definition` as `.taskmaster.yml` (none when None)."""
    path.mkdir(parents=True)
    git(path, "init", "-q", "-b", "main")
    sha = commit(path, "README.md", "hello\n")
    if definition is not None:
        sha = commit(path, ".taskmaster.yml", definition)
    return sha


@dataclass
class GitHttpServer:
    """Repositories under `root`, served over git's smart HTTP protocol, behind HTTP Basic authentication."""

    root: Path
    token: str
    url: str = ""
    authorizations: list[str] = field(default_factory=list)

    def expected(self) -> str:
        return "Basic " + base64.b64encode(f"x-access-token:{self.token}".encode()).decode()
