"""/api/projects/{id}/pulls and /issues: the local forge's pull requests (opened, read, merged with git, closed) and
issues; for GitHub and GitLab projects, the pull requests Taskmaster knows of."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query, status

from taskmaster.api.deps import Developer, ReadSessionDep, ServicesDep, SessionDep, Viewer
from taskmaster.forges.local import service
from taskmaster.forges.local.schemas import IssueOut, MergeRequest, PullRequestCreate, PullRequestDetail, PullRequestOut
from taskmaster.projects.service import get_project

router = APIRouter(prefix="/api/projects/{project_id}", tags=["pull requests"])

Number = Annotated[int, Path(ge=1, le=service.MAX_NUMBER, description="The pull request's or issue's number.")]


def _wake(services: ServicesDep) -> None:
    """A stored local event is processed now by the in-process worker, not at its next poll."""
    if services.wake_worker is not None:
        services.wake_worker()


@router.get("/pulls")
async def list_pulls(
    project_id: str,
    session: SessionDep,
    services: ServicesDep,
    _: Viewer,
    state: Annotated[str | None, Query(pattern="^(open|closed|merged)$")] = None,
) -> list[PullRequestOut]:
    """Newest first. A local project's open pull requests are checked for new commits on their heads (each one
    found raises a `synchronize` event, which requests its validation pipeline)."""
    project, pulls = await service.list_pull_requests(session, project_id, state=state)
    out = [service.to_out(project, p) for p in pulls]
    await session.commit()
    _wake(services)
    return out


@router.post("/pulls", status_code=status.HTTP_201_CREATED)
async def create_pull(
    project_id: str, spec: PullRequestCreate, session: SessionDep, services: ServicesDep, principal: Developer
) -> PullRequestOut:
    """Open a pull request over two branches of a local-forge project; 404 names an unknown branch, 409 an open pull
    request with the same head and base."""
    pull = await service.open_pull_request(session, project_id, spec, author=principal.subject)
    out = service.to_out(await get_project(session, pull.project_id), pull)
    await session.commit()
    _wake(services)
    return out


@router.get("/pulls/{number}")
async def get_pull(
    project_id: str, number: Number, session: SessionDep, services: ServicesDep, _: Viewer
) -> PullRequestDetail:
    """One pull request with its head's statuses and check runs, its comments, reviews and pipelines."""
    project, pull = await service.get_pull_request(session, project_id, number)
    out = await service.detail(session, project, pull)
    await session.commit()
    _wake(services)
    return out


@router.post("/pulls/{number}/merge")
async def merge_pull(
    project_id: str,
    number: Number,
    session: SessionDep,
    services: ServicesDep,
    principal: Developer,
    spec: MergeRequest | None = None,
) -> PullRequestOut:
    """Merge with git into the base branch; 409, with nothing changed, for conflicts (files named), a closed or draft
    pull request, a head not at `sha`, or uncommitted changes of a checked-out base in the way."""
    spec = spec or MergeRequest()
    pull = await service.merge_pull_request(
        session, project_id, number, actor=principal.subject, squash=spec.squash, sha=spec.sha
    )
    out = service.to_out(await get_project(session, pull.project_id), pull)
    await session.commit()
    _wake(services)
    return out


@router.post("/pulls/{number}/ready")
async def ready_pull(
    project_id: str, number: Number, session: SessionDep, services: ServicesDep, principal: Developer
) -> PullRequestOut:
    """Mark a draft ready for review (GitHub's `ready_for_review`): its head's validation pipeline is requested and
    it may be merged; 409, with nothing changed, for a pull request that is not a draft or not open."""
    pull = await service.mark_ready(session, project_id, number, actor=principal.subject)
    out = service.to_out(await get_project(session, pull.project_id), pull)
    await session.commit()
    _wake(services)
    return out


@router.post("/pulls/{number}/close")
async def close_pull(
    project_id: str, number: Number, session: SessionDep, services: ServicesDep, principal: Developer
) -> PullRequestOut:
    """Close without merging (closing a closed one changes nothing; a merged one is a 409)."""
    pull = await service.close_pull_request(session, project_id, number, actor=principal.subject)
    out = service.to_out(await get_project(session, pull.project_id), pull)
    await session.commit()
    _wake(services)
    return out


@router.get("/issues")
async def list_issues(
    project_id: str,
    session: ReadSessionDep,
    _: Viewer,
    state: Annotated[str | None, Query(pattern="^(open|closed)$")] = None,
) -> list[IssueOut]:
    """The local forge's issues of the project, newest first."""
    project, issues = await service.list_issues(session, project_id, state=state)
    return [service.issue_out(project, i) for i in issues]


@router.get("/issues/{number}")
async def get_issue(project_id: str, number: Number, session: ReadSessionDep, _: Viewer) -> IssueOut:
    project, issue = await service.get_issue(session, project_id, number)
    return service.issue_out(project, issue)
