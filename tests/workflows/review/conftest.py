"""A pull request over a real repository (base on `main`, head on `feature`), its project and PR rows, and the
review services over a real mirror cache."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from taskmaster.config import Settings
from taskmaster.db.models import Project, PullRequest
from taskmaster.db.session import Database
from taskmaster.projects.credentials import Credentials
from taskmaster.projects.forges import ForgeFactory
from taskmaster.secrets import SecretBox
from taskmaster.workflows.review.service import ReviewServices, ReviewTarget
from taskmaster.workspaces.git_cache import MirrorCache
from tests.support.factories import make_project
from tests.support.git import git


def write_tree(repo: Path, files: dict[str, str | bytes | None]) -> None:
    """Write (or, for None, delete) files in `repo` and stage them."""
    for name, content in files.items():
        path = repo / name
        if content is None:
            git(repo, "rm", "-q", name)
            continue
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content)
    git(repo, "add", "-A")


def make_pr_repo(
    path: Path, base: dict[str, str | bytes | None], head: dict[str, str | bytes | None]
) -> tuple[str, str]:
    """A repository whose `main` holds `base` and whose `feature` branch adds `head` on top; (base sha, head sha)."""
    path.mkdir(parents=True)
    git(path, "init", "-q", "-b", "main")
    write_tree(path, {"README.md": "hello\n", **base})
    git(path, "commit", "-q", "-m", "base")
    base_sha = git(path, "rev-parse", "HEAD")
    git(path, "checkout", "-q", "-b", "feature")
    write_tree(path, head)
    git(path, "commit", "-q", "-m", "feature")
    return base_sha, git(path, "rev-parse", "HEAD")


def push(repo: Path, files: dict[str, str | bytes | None]) -> str:
    """A new commit on `feature`; its sha."""
    write_tree(repo, files)
    git(repo, "commit", "-q", "-m", "another push")
    return git(repo, "rev-parse", "HEAD")


@dataclass
class PrSetup:
    db: Database
    settings: Settings
    services: ReviewServices
    project: Project
    pr: PullRequest
    repo: Path
    base: str
    head: str

    def target(self, sha: str | None = None, **options: Any) -> ReviewTarget:
        return ReviewTarget(project_id=self.project.id, sha=sha or self.head, pull_request_id=self.pr.id, **options)

    async def moved_to(self, sha: str) -> None:
        async with self.db.transaction() as session:
            row = await session.get(PullRequest, self.pr.id)
            assert row is not None
            row.head_sha = sha
        self.head = sha


async def make_pr(
    db: Database,
    settings: Settings,
    root: Path,
    base: dict[str, str | bytes | None],
    head: dict[str, str | bytes | None],
    *,
    project_settings: dict[str, Any] | None = None,
    task_id: uuid.UUID | None = None,
    **columns: Any,
) -> PrSetup:
    repo = root / f"repo-{uuid.uuid4().hex[:6]}"
    base_sha, head_sha = make_pr_repo(repo, base, head)
    project = await make_project(db, repository=str(repo), settings=project_settings or {}, **columns)
    async with db.transaction() as session:
        pr = PullRequest(project_id=project.id, number=7, title="Add the feature", head_ref="feature",
                         head_sha=head_sha, base_ref="main", base_sha=base_sha, task_id=task_id)  # fmt: skip
        session.add(pr)
    box = SecretBox.from_settings(settings)
    credentials = Credentials(box)
    services = ReviewServices(
        db, settings, MirrorCache(root / "mirrors", max_bytes=1 << 30), credentials, ForgeFactory(settings, credentials)
    )
    return PrSetup(db, settings, services, project, pr, repo, base_sha, head_sha)


class Log:
    """What a review wrote to its log."""

    def __init__(self) -> None:
        self.parts: list[str] = []

    async def __call__(self, text: str) -> None:
        self.parts.append(text)

    @property
    def text(self) -> str:
        return "".join(self.parts)
