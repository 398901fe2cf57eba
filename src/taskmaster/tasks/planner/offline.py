"""The offline planner: a PRD read in stages over immutable data, without any model or network.

document tree (document.py) → genre and section roles (roles.py) → requirement records (records.py) → relations:
duplicates, dependencies, priorities (relations.py) → tasks shaped to `num_tasks` and worded (shaping.py, wording.py).
"""

from __future__ import annotations

from dataclasses import dataclass

from taskmaster.core.errors import InvalidInput
from taskmaster.tasks.planner.document import read_document
from taskmaster.tasks.planner.records import extract
from taskmaster.tasks.planner.relations import relate
from taskmaster.tasks.planner.roles import Genre, read_roles
from taskmaster.tasks.planner.shaping import shape
from taskmaster.tasks.schemas import PlannedTask

__all__ = ["OfflinePlan", "parse_prd", "plan_prd"]


@dataclass(frozen=True)
class OfflinePlan:
    tasks: list[PlannedTask]
    genre: Genre
    warnings: tuple[str, ...]
    """What the planner set aside, quoting the text (a dependency that would close a cycle)."""
    sections: tuple[tuple[str, str], ...]
    """(title, role) of every section read."""


def plan_prd(text: str, *, num_tasks: int | None = None, source: str | None = None) -> OfflinePlan:
    """Plan a PRD (Markdown or plain text); raises `InvalidInput` when it states no requirement."""
    if num_tasks is not None and num_tasks < 1:
        raise InvalidInput("num_tasks must be at least 1", field="num_tasks")
    document = read_document(text)
    reading = read_roles(document)
    extraction = extract(document, reading)
    if not extraction.records and not extraction.roadmap:
        seen = ", ".join(f"{title} ({role.replace('_', ' ')})" for title, role in extraction.sections) or "none"
        raise InvalidInput(f"{source or 'the document'}: found no requirement items; sections seen: {seen}")
    relations = relate(extraction)
    tasks = shape(relations, num_tasks=num_tasks, source=source)
    return OfflinePlan(tasks, reading.genre, relations.warnings, extraction.sections)


def parse_prd(text: str, *, num_tasks: int | None = None, source: str | None = None) -> list[PlannedTask]:
    """Read a PRD into planned tasks: one per requirement, grouped under parents by feature area, with the
    dependencies and priorities the text states (never a cycle). Blank text gives no task.

    Keys are "1", "2", … with subtasks "1.1", "1.2", …, in document order; `source` (e.g. the file name) is
    recorded in each task's `extra` with the lines it came from and why each dependency and priority was set.
    """
    if not text.strip():
        return []
    return plan_prd(text, num_tasks=num_tasks, source=source).tasks
