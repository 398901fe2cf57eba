"""/api/projects: register the repositories Taskmaster works on."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, status

from taskmaster.api.deps import Admin, ReadSessionDep, ScopedViewer, ServicesDep, SessionDep, Viewer
from taskmaster.projects import service
from taskmaster.projects import settings as project_settings
from taskmaster.projects.schemas import ProjectCreate, ProjectOut, WebhookSecret
from taskmaster.projects.settings import ProjectSettings

router = APIRouter(prefix="/api/projects", tags=["projects"])


@router.post("", status_code=status.HTTP_201_CREATED)
async def create_project(
    spec: ProjectCreate, session: SessionDep, services: ServicesDep, principal: Admin
) -> ProjectOut:
    project = await service.create_project(session, spec=spec, box=services.box, actor=principal.subject)
    await session.commit()
    return service.to_out(project)


@router.get("")
async def list_projects(session: ReadSessionDep, principal: ScopedViewer) -> list[ProjectOut]:
    """Every project; for a credential limited to one project, that project alone."""
    projects = await service.list_projects(session)
    return [service.to_out(p) for p in projects if principal.project_id in (None, p.id)]


@router.get("/{project_id}")
async def get_project(project_id: str, session: ReadSessionDep, _: Viewer) -> ProjectOut:
    return service.to_out(await service.get_project(session, project_id))


@router.get("/{project_id}/settings")
async def get_settings(project_id: str, session: ReadSessionDep, _: Viewer) -> ProjectSettings:
    """Every setting of the project, with defaults for those never set."""
    return project_settings.load((await service.get_project(session, project_id)).settings)


@router.patch("/{project_id}/settings")
async def update_settings(
    project_id: str,
    changes: Annotated[
        dict[str, Any],
        Body(
            description="Dotted setting names (or groups of them) and their new values; null resets one.",
            examples=[{"review.fail_on": "blocker", "codegen.max_parallel": 4}],
        ),
    ],
    session: SessionDep,
    principal: Admin,
) -> ProjectSettings:
    """Change some settings; an unknown key or a bad value is refused (422) naming it, and nothing changes."""
    project = await service.update_settings(
        session, project_id, project_settings.nested(changes), actor=principal.subject
    )
    await session.commit()
    return project_settings.load(project.settings)


@router.put("/{project_id}/webhook-secret")
async def rotate_webhook_secret(
    project_id: str, spec: WebhookSecret, session: SessionDep, services: ServicesDep, principal: Admin
) -> ProjectOut:
    """Replace the webhook secret; the previous one is still accepted for `webhooks.secret_overlap_seconds`."""
    project = await service.rotate_webhook_secret(
        session, project_id, secret=spec.secret.get_secret_value(), box=services.box, actor=principal.subject
    )
    await session.commit()
    return service.to_out(project)


@router.delete("/{project_id}", status_code=status.HTTP_204_NO_CONTENT)
async def delete_project(project_id: str, session: SessionDep, principal: Admin) -> None:
    await service.delete_project(session, project_id, actor=principal.subject)
    await session.commit()
