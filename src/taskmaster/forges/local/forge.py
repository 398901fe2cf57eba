"""`LocalForge`: the `Forge` protocol for one local-forge project, over its repository and the database."""

from __future__ import annotations

import getpass
import uuid
from collections.abc import Callable, Sequence

from pydantic import ValidationError
from sqlalchemy import select

from taskmaster.db.models import Project
from taskmaster.db.session import Database
from taskmaster.forges.base import (
    CheckRunSpec,
    CommitState,
    ForgeCapabilities,
    ForgeNotFound,
    ForgeRejected,
    IssueRef,
    Permission,
    PullRequestDetails,
    PullRequestRef,
    ReviewComment,
)
from taskmaster.forges.local import git, service
from taskmaster.forges.local.schemas import PullRequestCreate

CAPABILITIES = ForgeCapabilities(check_runs=True, annotations=True, inline_review_comments=True)
"""All stored, and shown by `pr show` and `GET /api/projects/{id}/pulls/{n}`."""


class LocalForge:
    """The local forge of one project: pull requests are `pull_requests` rows over branches of its repository.

    Lifecycle: built from the database and the project's id without any I/O; each call is one transaction of its
    own (the caller must not hold one open on SQLite); `aclose()` has nothing to release. Concurrency: calls may
    run at once; numbers and the one comment per marker are taken under the project's write lock. `repo` is
    accepted as given (the project is fixed), except a path naming another repository, which is `ForgeNotFound`.
    Errors are the `ForgeError` classes: `ForgeNotFound` (branch, number, repository), `ForgeConflict` (a branch
    or open pull request that exists, a merge refused, with the conflicting files named), `ForgeRejected` (bad
    names or lines). `on_event` is called after a transaction that stored an event (to wake the webhook loop).
    """

    name = git.FORGE
    capabilities = CAPABILITIES

    def __init__(
        self,
        db: Database,
        project_id: uuid.UUID,
        *,
        actor: str = "taskmaster",
        on_event: Callable[[], None] | None = None,
    ) -> None:
        self.db = db
        self.project_id = project_id
        self.actor = actor
        self.on_event = on_event

    def __repr__(self) -> str:
        return f"LocalForge(project={self.project_id})"

    async def _project(self, repo: str) -> Project:
        async with self.db.session() as session:
            project = await session.scalar(select(Project).where(Project.id == self.project_id))
        if project is None:
            raise ForgeNotFound(f"project {self.project_id} does not exist", forge=self.name)
        if repo.startswith("/") and repo.rstrip("/") != project.repository.rstrip("/"):
            raise ForgeNotFound(f"{repo} is not the repository of project {project.name}", forge=self.name)
        return project

    def _woke(self) -> None:
        if self.on_event is not None:
            self.on_event()

    async def set_commit_status(
        self,
        repo: str,
        sha: str,
        *,
        context: str,
        state: CommitState,
        description: str | None = None,
        target_url: str | None = None,
    ) -> None:
        await self._project(repo)
        async with self.db.transaction() as session:
            await service.set_status(session, self.project_id, sha, context=context, state=state,
                                     description=description, target_url=target_url)  # fmt: skip

    async def create_check_run(self, repo: str, spec: CheckRunSpec) -> str:
        await self._project(repo)
        async with self.db.transaction() as session:
            row = await service.create_check_run(session, self.project_id, spec)
        return str(row.id)

    async def update_check_run(self, repo: str, check_run_id: str, spec: CheckRunSpec) -> None:
        await self._project(repo)
        async with self.db.transaction() as session:
            await service.update_check_run(session, self.project_id, check_run_id, spec)

    async def upsert_comment(self, repo: str, number: int, *, marker: str, body: str) -> str:
        await self._project(repo)
        async with self.db.transaction() as session:
            row = await service.upsert_comment(session, self.project_id, number, marker=marker, body=body)
        return str(row.id)

    async def create_branch(self, repo: str, name: str, from_sha: str) -> None:
        project = await self._project(repo)
        await git.create_branch(project.repository, name, from_sha)

    async def create_pull_request(
        self, repo: str, *, head: str, base: str, title: str, body: str, draft: bool = False
    ) -> PullRequestRef:
        await self._project(repo)
        try:
            spec = PullRequestCreate(head=head, base=base, title=title, body=body, draft=draft)
        except ValidationError as exc:
            problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
            raise ForgeRejected(f"pull request refused: {problems}", forge=self.name) from None
        async with self.db.transaction() as session:
            pull = await service.open_pull_request(session, self.project_id, spec, author=self.actor)
            ref = PullRequestRef(number=pull.number, url=pull.url or "")
        self._woke()
        return ref

    async def get_pull_request(self, repo: str, number: int) -> PullRequestDetails:
        await self._project(repo)
        async with self.db.transaction() as session:
            _, pull = await service.get_pull_request(session, self.project_id, number)
            details = PullRequestDetails(
                number=pull.number, url=pull.url or "", title=pull.title or "", state=pull.state,  # type: ignore[arg-type]
                draft=pull.draft, head_ref=pull.head_ref, head_sha=pull.head_sha, base_ref=pull.base_ref,
                merge_commit_sha=pull.merge_commit_sha,
            )  # fmt: skip
        self._woke()  # reading may have noticed new commits
        return details

    async def merge_pull_request(self, repo: str, number: int, *, squash: bool = False, sha: str | None = None) -> str:
        await self._project(repo)
        async with self.db.transaction() as session:
            pull = await service.merge_pull_request(session, self.project_id, number, actor=self.actor,
                                                    squash=squash, sha=sha)  # fmt: skip
            merged = pull.merge_commit_sha or ""
        self._woke()
        return merged

    async def close_pull_request(self, repo: str, number: int) -> None:
        await self._project(repo)
        async with self.db.transaction() as session:
            await service.close_pull_request(session, self.project_id, number, actor=self.actor)
        self._woke()

    async def create_issue(self, repo: str, *, title: str, body: str, labels: Sequence[str] = ()) -> IssueRef:
        await self._project(repo)
        async with self.db.transaction() as session:
            project, issue = await service.create_issue(
                session, self.project_id, title=title, body=body, labels=labels, author=self.actor
            )
            ref = IssueRef(number=issue.number, url=service.issue_url(project, issue.number))
        return ref

    async def create_review(
        self, repo: str, number: int, *, commit_sha: str, body: str, comments: Sequence[ReviewComment]
    ) -> str:
        await self._project(repo)
        async with self.db.transaction() as session:
            row = await service.create_review(session, self.project_id, number, commit_sha=commit_sha, body=body,
                                              comments=comments)  # fmt: skip
        return str(row.id)

    async def read_file(self, repo: str, path: str, ref: str) -> bytes | None:
        project = await self._project(repo)
        return await git.read_file(project.repository, path, ref)

    async def user_permission(self, repo: str, login: str) -> Permission:
        """The user running Taskmaster (and Taskmaster itself) may write; nobody else is known here."""
        await self._project(repo)
        return Permission.ADMIN if login in {getpass.getuser(), self.actor} else Permission.NONE

    async def aclose(self) -> None:
        return None
