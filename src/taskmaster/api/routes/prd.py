"""POST /api/projects/{project_id}/prd: upload a PRD and get its task graph stored in the project."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, File, Form, UploadFile, status

from taskmaster.api.deps import Developer, ServicesDep
from taskmaster.core.errors import InvalidInput
from taskmaster.tasks import service
from taskmaster.tasks.planner.formats import read_prd
from taskmaster.tasks.prd import parse_into_project
from taskmaster.tasks.schemas import PrdParsed

router = APIRouter(prefix="/api/projects/{project_id}/prd", tags=["tasks"])
MAX_PRD_BYTES = 5 * 1024 * 1024


@router.post("", status_code=status.HTTP_201_CREATED)
async def parse_prd(
    project_id: str,
    services: ServicesDep,
    principal: Developer,
    file: Annotated[UploadFile, File(description="The PRD: Markdown or plain text (UTF-8), .html, .docx or .pdf.")],
    provider: Annotated[Literal["offline", "anthropic", "openai", "ollama"], Form()] = "offline",
    model: Annotated[str | None, Form()] = None,
    num_tasks: Annotated[int | None, Form(ge=1, le=500)] = None,
    replace: Annotated[bool, Form()] = False,
    append: Annotated[bool, Form(description="Add the tasks even if the project already holds this PRD.")] = False,
) -> PrdParsed:
    """Plan the document (offline parser by default, or an LLM provider) and add the tasks to the project."""
    raw = await file.read(MAX_PRD_BYTES + 1)
    if len(raw) > MAX_PRD_BYTES:
        raise InvalidInput(f"the PRD is larger than {MAX_PRD_BYTES // (1024 * 1024)} MiB")
    text = read_prd(raw, file.filename or "prd.md")
    if "\x00" in text or "\x00" in (file.filename or "") or "\x00" in (model or ""):
        raise InvalidInput("the PRD, its file name or the model contains a NUL character")
    async with services.runtime.llm(provider, model) as llm:
        result = await parse_into_project(
            services.db, project_id, text, model=llm, num_tasks=num_tasks, replace=replace, append=append,
            source=file.filename, actor=principal.subject, prices=services.runtime.settings.costs.prices,
        )  # fmt: skip
    first, last = result.imported.numbers
    async with services.db.session() as session:
        tasks, _ = await service.list_tasks(session, result.project_id, limit=result.imported.created, offset=first - 1)
    return PrdParsed(
        created=result.imported.created,
        first_number=first,
        last_number=last,
        replaced=result.imported.replaced,
        template_version=result.template_version,
        notes=[issue.message for issue in result.issues],
        tasks=[service.to_summary(t) for t in tasks],
    )
