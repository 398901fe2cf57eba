"""Local-forge fixtures: real repositories (a bare origin, and a non-bare one with a checked-out base and a dirty
working tree) and a project over each."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest

from taskmaster.db.models import Project
from taskmaster.db.session import Database
from tests.support.factories import make_project
from tests.support.git import commit, git


@dataclass
class Repo:
    path: Path
    project: Project

    def sha(self, ref: str) -> str:
        return git(self.path, "rev-parse", f"{ref}^{{commit}}")


def make_working_repo(path: Path) -> Path:
    """A non-bare repository on main (checked out) with a `feature` branch one commit ahead, and a dirty file."""
    path.mkdir(parents=True)
    git(path, "init", "-q", "-b", "main")
    commit(path, "README.md", "hello\n")
    commit(path, "notes.txt", "mine\n")
    git(path, "checkout", "-q", "-b", "feature")
    commit(path, "feature.txt", "new feature\n")
    git(path, "checkout", "-q", "main")
    (path / "notes.txt").write_text("mine, edited but not committed\n")
    return path


def make_bare_origin(path: Path, scratch: Path) -> Path:
    """A bare repository with main and a `feature` branch one commit ahead (made in `scratch`, then pushed)."""
    scratch.mkdir(parents=True)
    git(scratch, "init", "-q", "-b", "main")
    commit(scratch, "README.md", "hello\n")
    git(scratch, "checkout", "-q", "-b", "feature")
    commit(scratch, "feature.txt", "new feature\n")
    git(path.parent, "init", "-q", "--bare", "-b", "main", str(path))
    git(scratch, "push", "-q", str(path), "main", "feature")
    return path


@pytest.fixture
async def working(db: Database, tmp_path: Path) -> Repo:
    path = make_working_repo(tmp_path / "working")
    return Repo(path, await make_project(db, repository=str(path)))


@pytest.fixture
async def bare(db: Database, tmp_path: Path) -> Repo:
    path = make_bare_origin(tmp_path / "origin.git", tmp_path / "scratch")
    return Repo(path, await make_project(db, repository=str(path)))
