"""A PRD into a project: parsing the same PRD again is refused unless replace or append is said, and each task keeps
where it came from and why its dependencies and priority were set."""

from __future__ import annotations

import pytest

from taskmaster.core.errors import Conflict, InvalidInput
from taskmaster.db.models import Project
from taskmaster.db.session import Database
from taskmaster.projects import service as projects
from taskmaster.projects.schemas import ProjectCreate
from taskmaster.secrets.box import SecretBox, new_key
from taskmaster.tasks import service
from taskmaster.tasks.prd import parse_into_project

PRD = """# Tickets

## Requirements

- T1 Agents see every open ticket in one list. (P0)
- T2 Agents reply to a ticket from the list. Depends on T1. (P1)
"""


async def _project(db: Database) -> Project:
    async with db.transaction() as session:
        return await projects.create_project(
            session, spec=ProjectCreate(name="desk", repository="/r"), box=SecretBox([new_key()])
        )


async def _titles(db: Database, project: Project) -> list[str]:
    async with db.session() as session:
        tasks, _ = await service.list_tasks(session, project.id, limit=100)
    return [t.title for t in tasks]


async def test_the_same_prd_twice_is_refused_until_replace_or_append(db: Database) -> None:
    project = await _project(db)
    first = await parse_into_project(db, project.id, PRD, source="tickets.md")
    assert first.imported.created == 2
    with pytest.raises(Conflict, match=r"tickets.md was already parsed into project desk \(tasks #1–#2\); pass "):
        await parse_into_project(db, project.id, PRD, source="tickets.md")
    with pytest.raises(Conflict, match="already parsed"):  # same text under another name
        await parse_into_project(db, project.id, PRD, source="copy.md")
    assert len(await _titles(db, project)) == 2
    appended = await parse_into_project(db, project.id, PRD, source="tickets.md", append=True)
    assert appended.imported.numbers == (3, 4)
    replaced = await parse_into_project(db, project.id, PRD, source="tickets.md", replace=True)
    assert replaced.imported.replaced == 4 and replaced.imported.created == 2
    assert await _titles(db, project) == [
        "Let agents see every open ticket in one list",
        "Let agents reply to a ticket from the list",
    ]
    with pytest.raises(InvalidInput, match="exclude each other"):
        await parse_into_project(db, project.id, PRD, replace=True, append=True)


async def test_a_different_prd_is_added_without_asking(db: Database) -> None:
    project = await _project(db)
    await parse_into_project(db, project.id, PRD, source="tickets.md")
    other = await parse_into_project(db, project.id, "- Export tickets as CSV\n", source="export.md")
    assert other.imported.numbers == (3, 3)


async def test_tasks_keep_their_source_lines_and_reasons(db: Database) -> None:
    project = await _project(db)
    result = await parse_into_project(db, project.id, PRD, source="tickets.md")
    async with db.session() as session:
        reply = await service.get_task(session, project.id, 2)
    assert reply.extra["source_lines"] == [6, 6]
    assert reply.extra["requirement_id"] == "T2"
    assert reply.extra["why"]["priority"] == '"(P1)" in the text'
    assert reply.extra["why"]["dependencies"] == [{"on": "1", "why": '"Depends on T1" (line 6)'}]
    assert [t.key for t in result.planned] == ["1", "2"]


async def test_a_document_with_no_requirement_is_refused_and_says_what_it_saw(db: Database) -> None:
    project = await _project(db)
    with pytest.raises(InvalidInput, match=r"found no requirement items; sections seen: Background \(context\)"):
        await parse_into_project(db, project.id, "## Background\n\nWe talked.\n", source="notes.md")
    assert await _titles(db, project) == []
