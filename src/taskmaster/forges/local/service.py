"""Local-forge use cases: pull requests over two branches of a local repository (opened, read, merged with git,
closed), issues, and what reports leave on them (statuses, check runs, marked comments, reviews).

Numbers are per project and shared by pull requests and issues, as on GitHub; they are taken under the project's
write lock (`projects.service.lock_project`), so concurrent openings never share one. Opening, new commits on the
head branch (`sync_heads`: run by the worker's watch every `forges.local_poll_seconds`, and whenever a pull request
is listed, read or acted on), marking a draft ready, merging and closing each store a `webhook_deliveries` row of
provider `local`, which the webhook loop processes like a forge's delivery. The caller owns the transaction; git
changes a merge makes are not undone by a rollback, so a merge is the last thing done.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Sequence
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from taskmaster.audit import service as audit
from taskmaster.core.clock import utcnow
from taskmaster.core.errors import InvalidInput, NotFound
from taskmaster.core.ids import new_id
from taskmaster.db.models import (
    LocalCheckRun,
    LocalComment,
    LocalCommitStatus,
    LocalIssue,
    LocalReview,
    Pipeline,
    Project,
    PullRequest,
)
from taskmaster.forges.base import (
    CheckRunSpec,
    CommitState,
    ForgeConflict,
    ForgeNotFound,
    ForgeRejected,
    ReviewComment,
    marked_body,
)
from taskmaster.forges.events import DeliveryIdentity, Provider, PullRequestInfo
from taskmaster.forges.local import git
from taskmaster.forges.local import webhooks as local_events
from taskmaster.forges.local.schemas import (
    CheckRunOut,
    CommentOut,
    CommitStatusOut,
    IssueOut,
    PipelineBrief,
    PullRequestCreate,
    PullRequestDetail,
    PullRequestOut,
    ReviewOut,
)
from taskmaster.projects.repository import is_repository_url
from taskmaster.projects.service import get_project, lock_project
from taskmaster.webhooks.service import store_delivery

FORGE = git.FORGE
MAX_NUMBER = 2**31 - 1
PULL_STATES = ("open", "closed", "merged")
ISSUE_STATES = ("open", "closed")


def is_local(project: Project) -> bool:
    """A project on the local forge: forge `local` and a repository that is a path on this machine."""
    return project.forge == FORGE and not is_repository_url(project.repository)


def require_local(project: Project) -> None:
    """`InvalidInput` for a project whose pull requests live on a forge (or whose repository is a URL)."""
    if project.forge != FORGE:
        raise InvalidInput(
            f"project {project.name} is on {project.forge}: open, merge and close its pull requests there "
            "(`pr list` shows those Taskmaster knows of)"
        )
    if not is_local(project):
        raise InvalidInput(f"project {project.name}: the local forge needs a repository path, not {project.repository}")


def pull_url(project: Project, number: int) -> str:
    """Where a local pull request can be read: its REST resource."""
    return f"/api/projects/{project.id}/pulls/{number}"


def issue_url(project: Project, number: int) -> str:
    return f"/api/projects/{project.id}/issues/{number}"


def check_number(number: int, what: str = "pull request") -> int:
    if not 1 <= number <= MAX_NUMBER:
        raise InvalidInput(f"{what} number must be between 1 and {MAX_NUMBER}, got {number}")
    return number


# -------------------------------------------------------------------------------- pull requests


async def _next_number(session: AsyncSession, project_id: uuid.UUID) -> int:
    """The next number of the project's sequence (pull requests and issues); call with the project locked."""
    pulls = await session.scalar(select(func.max(PullRequest.number)).where(PullRequest.project_id == project_id))
    issues = await session.scalar(select(func.max(LocalIssue.number)).where(LocalIssue.project_id == project_id))
    return max(pulls or 0, issues or 0) + 1


async def open_pull_request(
    session: AsyncSession, project_ref: str | uuid.UUID, spec: PullRequestCreate, *, author: str
) -> PullRequest:
    """Open a pull request from branch `spec.head` into `spec.base` (default: the project's branch).

    `ForgeNotFound` names a branch that does not exist; `ForgeRejected` a head equal to its base;
    `ForgeConflict` when an open pull request has the same head and base (new commits on the head branch update it).
    """
    project = await lock_project(session, project_ref)
    require_local(project)
    base = spec.base or project.default_branch
    if spec.head == base:
        raise ForgeRejected(f"head and base are both {base!r}: a pull request needs two branches", forge=FORGE)
    await git.check_repository(project.repository)
    head_sha = await git.require_branch(project.repository, spec.head)
    base_sha = await git.require_branch(project.repository, base)
    existing = await session.scalar(
        select(PullRequest.number).where(
            PullRequest.project_id == project.id, PullRequest.head_ref == spec.head, PullRequest.base_ref == base,
            PullRequest.state == "open",
        )
    )  # fmt: skip
    if existing is not None:
        raise ForgeConflict(
            f"pull request #{existing} from {spec.head!r} into {base!r} is already open; new commits on "
            f"{spec.head!r} update it",
            forge=FORGE, number=existing,
        )  # fmt: skip
    number = await _next_number(session, project.id)
    pull = PullRequest(
        project_id=project.id, number=number, title=spec.title, body=spec.body, head_ref=spec.head, head_sha=head_sha,
        base_ref=base, base_sha=base_sha, author=author, state="open", draft=spec.draft, merged=False,
        url=pull_url(project, number),
    )  # fmt: skip
    session.add(pull)
    await session.flush()
    await _raise(session, project, pull, local_events.OPENED, sender=author)
    await audit.record(
        session, actor=author, action="pull_request.open", target_type="pull_request", target_id=pull.id,
        project_id=project.id, data={"number": number, "head": spec.head, "base": base},
    )  # fmt: skip
    return pull


async def list_pull_requests(
    session: AsyncSession, project_ref: str | uuid.UUID, *, state: str | None = None
) -> tuple[Project, list[PullRequest]]:
    """The project's pull requests, newest first: a local project's own (their heads brought up to date), or the
    forge pull requests Taskmaster has seen through webhooks."""
    if state is not None and state not in PULL_STATES:
        raise InvalidInput(f"state must be one of {', '.join(PULL_STATES)}, got {state!r}")
    project = await get_project(session, project_ref)
    if is_local(project):
        await _sync_for_reading(session, project)
    query = select(PullRequest).where(PullRequest.project_id == project.id)
    if state is not None:
        query = query.where(PullRequest.state == state)
    rows = await session.scalars(query.order_by(PullRequest.number.desc()))
    return project, list(rows.all())


async def get_pull_request(
    session: AsyncSession, project_ref: str | uuid.UUID, number: int
) -> tuple[Project, PullRequest]:
    """One pull request by number (a local one's head brought up to date); `NotFound` when there is none."""
    check_number(number)
    project = await get_project(session, project_ref)
    if is_local(project):
        await _sync_for_reading(session, project, number=number)
    return project, await _pull(session, project, number)


async def _pull(session: AsyncSession, project: Project, number: int) -> PullRequest:
    pull = await session.scalar(
        select(PullRequest).where(PullRequest.project_id == project.id, PullRequest.number == number)
    )
    if pull is None:
        raise ForgeNotFound(f"project {project.name} has no pull request #{number}", forge=FORGE)
    return pull


async def watched_projects(session: AsyncSession) -> list[Project]:
    """The local-forge projects with at least one open pull request (one query): those whose heads `sync_heads`
    must look at."""
    open_pulls = select(PullRequest.id).where(PullRequest.project_id == Project.id, PullRequest.state == "open")
    rows = await session.scalars(select(Project).where(Project.forge == FORGE, open_pulls.exists()))
    return [project for project in rows.all() if is_local(project)]


async def sync_heads(session: AsyncSession, project: Project, *, number: int | None = None) -> list[PullRequest]:
    """Record new commits on the head branches of the project's open pull requests (or of pull request `number`):
    one `synchronize` event each; the pull requests whose head moved. A deleted head branch leaves its pull request
    as it was. `ForgeNotFound` when the repository is no longer a git repository on this machine.

    Reads first and takes the project's lock only when a head moved, then reads again under the lock: whoever
    locks second (another worker, a reader) finds the heads recorded and records nothing.
    """
    if not await _moved_heads(session, project, number):
        return []
    project = await lock_project(session, project.id)
    moved = await _moved_heads(session, project, number, fresh=True)
    for pull, sha in moved:
        before, pull.head_sha = pull.head_sha, sha
        await session.flush()
        await _raise(session, project, pull, local_events.SYNCHRONIZE, sender=None, previous_head_sha=before)
    return [pull for pull, _ in moved]


async def _sync_for_reading(session: AsyncSession, project: Project, *, number: int | None = None) -> None:
    """`sync_heads` for a read: a repository that vanished leaves the stored pull requests to be shown as they
    were (the worker's watch warns about it)."""
    with contextlib.suppress(ForgeNotFound):
        await sync_heads(session, project, number=number)


async def _moved_heads(
    session: AsyncSession, project: Project, number: int | None, *, fresh: bool = False
) -> list[tuple[PullRequest, str]]:
    query = select(PullRequest).where(PullRequest.project_id == project.id, PullRequest.state == "open")
    if number is not None:
        query = query.where(PullRequest.number == number)
    if fresh:
        # Rows this session read before it held the lock may still be in its identity map with the head they had
        # then, and a plain query hands those back unchanged: a move another transaction recorded would be recorded
        # again. The read under the lock is the one that counts.
        query = query.execution_options(populate_existing=True)
    pulls = (await session.scalars(query)).all()
    heads = await git.branch_heads(project.repository, {pull.head_ref for pull in pulls})
    return [(pull, heads[pull.head_ref]) for pull in pulls if heads.get(pull.head_ref, pull.head_sha) != pull.head_sha]


async def merge_pull_request(
    session: AsyncSession,
    project_ref: str | uuid.UUID,
    number: int,
    *,
    actor: str,
    squash: bool = False,
    sha: str | None = None,
) -> PullRequest:
    """Merge an open pull request into its base branch with git (a merge commit, or one squashed commit).

    `ForgeConflict`, with nothing changed, for a closed, merged or draft pull request, a head that is not at `sha`,
    conflicting branches (the files named) or a checkout of the base whose uncommitted changes are in the way.
    """
    check_number(number)
    project = await lock_project(session, project_ref)
    require_local(project)
    await sync_heads(session, project, number=number)
    pull = await _pull(session, project, number)
    if pull.state != "open":
        raise ForgeConflict(f"pull request #{number} is {pull.state}: only an open pull request can be merged",
                            forge=FORGE)  # fmt: skip
    if pull.draft:
        raise ForgeConflict(f"pull request #{number} is a draft: mark it ready before merging", forge=FORGE)
    title = pull.title or pull.head_ref
    message = (
        f"{title} (#{number})\n\n{pull.body or ''}".rstrip() + "\n"
        if squash
        else f"Merge pull request #{number} from {pull.head_ref}\n\n{title}\n"
    )
    base_before, merged = await git.merge(
        project.repository, base=pull.base_ref, head=pull.head_ref, expected_head=sha or pull.head_sha,
        message=message, squash=squash,
    )  # fmt: skip
    pull.state, pull.merged, pull.merge_commit_sha, pull.base_sha = "merged", True, merged, base_before
    await session.flush()
    await _raise(session, project, pull, local_events.CLOSED, sender=actor)
    await audit.record(
        session, actor=actor, action="pull_request.merge", target_type="pull_request", target_id=pull.id,
        project_id=project.id, data={"number": number, "merge_commit_sha": merged, "squash": squash},
    )  # fmt: skip
    return pull


async def mark_ready(session: AsyncSession, project_ref: str | uuid.UUID, number: int, *, actor: str) -> PullRequest:
    """Mark a draft pull request ready for review: it may be merged from now on, and its `ready_for_review` event
    requests the validation pipeline of its head (new commits on it are recorded first, so that is the head run).

    `ForgeConflict`, with nothing changed, for a pull request that is not a draft or not open.
    """
    check_number(number)
    project = await lock_project(session, project_ref)
    require_local(project)
    await sync_heads(session, project, number=number)
    pull = await _pull(session, project, number)
    if pull.state != "open":
        raise ForgeConflict(f"pull request #{number} is {pull.state}: only an open draft can be marked ready",
                            forge=FORGE)  # fmt: skip
    if not pull.draft:
        raise ForgeConflict(f"pull request #{number} is not a draft: it is ready for review already", forge=FORGE)
    pull.draft = False
    await session.flush()
    await _raise(session, project, pull, local_events.READY_FOR_REVIEW, sender=actor)
    await audit.record(
        session, actor=actor, action="pull_request.ready", target_type="pull_request", target_id=pull.id,
        project_id=project.id, data={"number": number, "head_sha": pull.head_sha},
    )  # fmt: skip
    return pull


async def close_pull_request(
    session: AsyncSession, project_ref: str | uuid.UUID, number: int, *, actor: str
) -> PullRequest:
    """Close an open pull request without merging; closing a closed one changes nothing, a merged one is a
    `ForgeConflict`."""
    check_number(number)
    project = await lock_project(session, project_ref)
    require_local(project)
    pull = await _pull(session, project, number)
    if pull.state == "merged":
        raise ForgeConflict(f"pull request #{number} is merged: it cannot be closed", forge=FORGE)
    if pull.state == "closed":
        return pull
    pull.state = "closed"
    await session.flush()
    await _raise(session, project, pull, local_events.CLOSED, sender=actor)
    await audit.record(
        session, actor=actor, action="pull_request.close", target_type="pull_request", target_id=pull.id,
        project_id=project.id, data={"number": number},
    )  # fmt: skip
    return pull


def info(project: Project, pull: PullRequest, *, previous_head_sha: str | None = None) -> PullRequestInfo:
    """The pull request as a delivery carries it (the shape a GitHub delivery is parsed into)."""
    return PullRequestInfo(
        number=pull.number, title=pull.title or "", url=pull.url, state=pull.state,
        draft=pull.draft, merged=pull.merged, author=pull.author, head_ref=pull.head_ref, head_sha=pull.head_sha,
        head_repository=project.repository, base_repository=project.repository, base_ref=pull.base_ref,
        base_sha=pull.base_sha, previous_head_sha=previous_head_sha,
        merge_commit_sha=pull.merge_commit_sha if pull.merged else None,
    )  # fmt: skip


async def _raise(
    session: AsyncSession,
    project: Project,
    pull: PullRequest,
    action: str,
    *,
    sender: str | None,
    previous_head_sha: str | None = None,
) -> None:
    """Store the event as a `local` webhook delivery, for the webhook loop (the worker) to process."""
    delivery_id = str(new_id())
    body = local_events.pull_request_body(
        action, info(project, pull, previous_head_sha=previous_head_sha), sender=sender, repository=project.repository
    )
    await store_delivery(
        session,
        identity=DeliveryIdentity(
            provider=Provider.LOCAL, event=local_events.PULL_REQUEST_EVENT, delivery_id=delivery_id
        ),
        project_id=project.id,
        headers=local_events.headers(delivery_id),
        body=body,
        action=action,
    )


def to_out(project: Project, pull: PullRequest) -> PullRequestOut:
    return PullRequestOut(
        forge=project.forge, number=pull.number, title=pull.title, body=pull.body, state=pull.state, draft=pull.draft,
        merged=pull.merged, head_ref=pull.head_ref, head_sha=pull.head_sha, base_ref=pull.base_ref,
        base_sha=pull.base_sha, merge_commit_sha=pull.merge_commit_sha, author=pull.author, url=pull.url,
        task_id=pull.task_id, created_at=pull.created_at, updated_at=pull.updated_at,
    )  # fmt: skip


async def detail(session: AsyncSession, project: Project, pull: PullRequest) -> PullRequestDetail:
    """The pull request with its head's statuses and check runs, its comments, reviews and latest pipelines."""
    statuses = await session.scalars(
        select(LocalCommitStatus)
        .where(LocalCommitStatus.project_id == project.id, LocalCommitStatus.sha == pull.head_sha)
        .order_by(LocalCommitStatus.context)
    )
    checks = await session.scalars(
        select(LocalCheckRun)
        .where(LocalCheckRun.project_id == project.id, LocalCheckRun.head_sha == pull.head_sha)
        .order_by(LocalCheckRun.created_at)
    )
    comments = await session.scalars(
        select(LocalComment)
        .where(LocalComment.project_id == project.id, LocalComment.number == pull.number)
        .order_by(LocalComment.created_at)
    )
    reviews = await session.scalars(
        select(LocalReview)
        .where(LocalReview.project_id == project.id, LocalReview.number == pull.number)
        .order_by(LocalReview.created_at)
    )
    pipelines = await session.scalars(
        select(Pipeline).where(Pipeline.pull_request_id == pull.id).order_by(Pipeline.created_at.desc()).limit(20)
    )
    return PullRequestDetail(
        **to_out(project, pull).model_dump(),
        statuses=[
            CommitStatusOut(
                sha=s.sha,
                context=s.context,
                state=s.state,
                description=s.description,
                target_url=s.target_url,
                updated_at=s.updated_at,
            )
            for s in statuses
        ],
        check_runs=[
            CheckRunOut(
                id=c.id,
                name=c.name,
                head_sha=c.head_sha,
                status=c.status,
                conclusion=c.conclusion,
                title=c.title,
                summary=c.summary,
                annotations=c.annotations,
                updated_at=c.updated_at,
            )
            for c in checks
        ],
        comments=[CommentOut(marker=c.marker, body=c.body, updated_at=c.updated_at) for c in comments],
        reviews=[
            ReviewOut(id=r.id, commit_sha=r.commit_sha, body=r.body, comments=r.comments, created_at=r.created_at)
            for r in reviews
        ],
        pipelines=[
            PipelineBrief(id=p.id, status=p.status, commit_sha=p.commit_sha, created_at=p.created_at) for p in pipelines
        ],
    )


# -------------------------------------------------------------------------------- issues


async def create_issue(
    session: AsyncSession,
    project_ref: str | uuid.UUID,
    *,
    title: str,
    body: str,
    labels: Sequence[str] = (),
    author: str | None = None,
) -> tuple[Project, LocalIssue]:
    """Open an issue of a local-forge project (the next number of the project's sequence)."""
    if not title.strip():
        raise InvalidInput("an issue needs a title")
    project = await lock_project(session, project_ref)
    require_local(project)
    number = await _next_number(session, project.id)
    issue = LocalIssue(project_id=project.id, number=number, title=title[:1000], body=body, labels=list(labels),
                       author=author, state="open")  # fmt: skip
    session.add(issue)
    await session.flush()
    return project, issue


async def list_issues(
    session: AsyncSession, project_ref: str | uuid.UUID, *, state: str | None = None
) -> tuple[Project, list[LocalIssue]]:
    if state is not None and state not in ISSUE_STATES:
        raise InvalidInput(f"state must be one of {', '.join(ISSUE_STATES)}, got {state!r}")
    project = await get_project(session, project_ref)
    query = select(LocalIssue).where(LocalIssue.project_id == project.id)
    if state is not None:
        query = query.where(LocalIssue.state == state)
    return project, list((await session.scalars(query.order_by(LocalIssue.number.desc()))).all())


async def get_issue(session: AsyncSession, project_ref: str | uuid.UUID, number: int) -> tuple[Project, LocalIssue]:
    check_number(number, "issue")
    project = await get_project(session, project_ref)
    issue = await session.scalar(
        select(LocalIssue).where(LocalIssue.project_id == project.id, LocalIssue.number == number)
    )
    if issue is None:
        raise NotFound(f"project {project.name} has no issue #{number}")
    return project, issue


def issue_out(project: Project, issue: LocalIssue) -> IssueOut:
    return IssueOut(
        number=issue.number, title=issue.title, body=issue.body, state=issue.state, labels=list(issue.labels),
        author=issue.author, url=issue_url(project, issue.number), created_at=issue.created_at,
        updated_at=issue.updated_at,
    )  # fmt: skip


# -------------------------------------------------------------------------------- what reports leave


async def set_status(
    session: AsyncSession,
    project_id: uuid.UUID,
    sha: str,
    *,
    context: str,
    state: CommitState,
    description: str | None,
    target_url: str | None,
) -> None:
    """Set (or replace) the status `context` of commit `sha`."""
    await lock_project(session, project_id)
    row = await session.scalar(
        select(LocalCommitStatus).where(
            LocalCommitStatus.project_id == project_id, LocalCommitStatus.sha == sha,
            LocalCommitStatus.context == context,
        )
    )  # fmt: skip
    if row is None:
        row = LocalCommitStatus(project_id=project_id, sha=sha, context=context, state=state.value)
        session.add(row)
    row.state, row.description, row.target_url, row.updated_at = state.value, description, target_url, utcnow()


def _annotations(spec: CheckRunSpec) -> list[dict[str, Any]]:
    return [
        {
            "path": a.path,
            "start_line": a.start_line,
            "end_line": a.end_line,
            "message": a.message,
            "level": a.level.value,
            "title": a.title,
        }
        for a in spec.annotations
    ]


def _apply_check(row: LocalCheckRun, spec: CheckRunSpec) -> None:
    row.head_sha, row.name, row.status = spec.head_sha, spec.name, spec.status.value
    row.conclusion = spec.conclusion.value if spec.conclusion else None
    row.title, row.summary, row.text = spec.title, spec.summary, spec.text
    row.details_url, row.external_id = spec.details_url, spec.external_id
    row.started_at, row.completed_at = spec.started_at, spec.completed_at
    row.annotations = [*row.annotations, *_annotations(spec)]
    row.updated_at = utcnow()


async def create_check_run(session: AsyncSession, project_id: uuid.UUID, spec: CheckRunSpec) -> LocalCheckRun:
    row = LocalCheckRun(project_id=project_id, annotations=[], summary="")
    _apply_check(row, spec)
    session.add(row)
    await session.flush()
    return row


async def update_check_run(session: AsyncSession, project_id: uuid.UUID, check_run_id: str, spec: CheckRunSpec) -> None:
    try:
        key = uuid.UUID(check_run_id)
    except ValueError:
        raise ForgeNotFound(f"check run {check_run_id!r} does not exist", forge=FORGE) from None
    row = await session.get(LocalCheckRun, key)
    if row is None or row.project_id != project_id:
        raise ForgeNotFound(f"check run {check_run_id} does not exist", forge=FORGE)
    _apply_check(row, spec)


async def upsert_comment(
    session: AsyncSession, project_id: uuid.UUID, number: int, *, marker: str, body: str
) -> LocalComment:
    """The pull request's comment marked `marker`, made or edited in place (one per marker, under the lock)."""
    text = marked_body(marker, body)
    await lock_project(session, project_id)
    row = await session.scalar(
        select(LocalComment).where(
            LocalComment.project_id == project_id, LocalComment.number == number, LocalComment.marker == marker
        )
    )
    if row is None:
        row = LocalComment(project_id=project_id, number=number, marker=marker, body=text)
        session.add(row)
    row.body, row.updated_at = text, utcnow()
    await session.flush()
    return row


async def create_review(
    session: AsyncSession,
    project_id: uuid.UUID,
    number: int,
    *,
    commit_sha: str,
    body: str,
    comments: Sequence[ReviewComment],
) -> LocalReview:
    """Store a review of pull request `number` with its inline comments."""
    for comment in comments:
        if comment.line < 1 or (comment.start_line is not None and not 1 <= comment.start_line <= comment.line):
            raise ForgeRejected(
                f"review comment on {comment.path}: lines must satisfy 1 <= start_line <= line, got "
                f"{comment.start_line}..{comment.line}",
                forge=FORGE,
            )
    row = LocalReview(
        project_id=project_id, number=number, commit_sha=commit_sha, body=body,
        comments=[{"path": c.path, "line": c.line, "start_line": c.start_line, "body": c.body} for c in comments],
    )  # fmt: skip
    session.add(row)
    await session.flush()
    return row
