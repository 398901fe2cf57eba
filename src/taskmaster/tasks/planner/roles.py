"""What kind of document a PRD is (its genre) and what each of its sections is for (its role)."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

from taskmaster.tasks.planner.document import Document, Section
from taskmaster.tasks.planner.lexicon import GENERIC_HEADING, LABEL, ROLE_PATTERNS, WONT, priority_class

__all__ = ["Genre", "Reading", "Role", "read_roles"]

Role = Literal[
    "requirement", "context", "architecture", "roadmap", "ordering", "priorities", "criteria", "glossary",
    "out_of_scope",
]  # fmt: skip
Genre = Literal["tagged template", "checklist epic", "story brief", "specification", "plain outline"]
WORK_ROLES = frozenset({"requirement", "roadmap"})

_REQUIREMENT_WORDS = re.compile(
    r"\b(requirements?|features?|stor(?:y|ies)|epics?(?!\s+(?:list|overview))|capabilit\w+|use cases?)\b", re.I
)
_PRIORITY_HEADING = re.compile(
    r"^(?:\d+(?:\.\d+)*\.?\s+)?(?:p[0-3]\b|must\b|should\b|could\b|nice[- ]to[- ]haves?|"
    r"(?:critical|high|medium|low)(?:[- ]priority)?\s*(?:$|[—–:(-]))",
    re.I,
)
_STORY = re.compile(r"\bas an? [\w -]{1,40}?,? i (?:want|need|would like|can)\b", re.I)


@dataclass(frozen=True)
class Reading:
    """The genre of a document, the role of each of its sections (by `id`), and priority headings' classes."""

    genre: Genre
    roles: Mapping[int, Role]
    heading_priority: Mapping[int, int]
    """Sections whose heading names a priority ("P0 — launch blockers", "Must have"): their class."""
    generic: frozenset[int]
    """Sections whose heading only says "the work is below" (not a feature area)."""

    def role(self, section: Section) -> Role:
        return self.roles.get(id(section), "requirement")


def heading_role(title: str) -> Role | None:
    """The role a heading names by its words alone, or None when it names none (a feature area or a title)."""
    plain = title.strip().rstrip(":").strip()
    for role, pattern in ROLE_PATTERNS:
        if role == "out_of_scope" and (pattern.match(plain) or WONT.match(plain)):
            return "out_of_scope"
    if _REQUIREMENT_WORDS.search(plain) or GENERIC_HEADING.match(plain):
        return "requirement"
    for role, pattern in ROLE_PATTERNS:
        if pattern.match(plain):
            return role  # type: ignore[return-value]
    return None


def read_roles(document: Document) -> Reading:
    """Give every section a role: from its heading, else from its parent; the title section and sections whose
    heading names nothing hold requirements."""
    roles: dict[int, Role] = {}
    heading_priority: dict[int, int] = {}
    generic: set[int] = set()

    def visit(section: Section, inherited: Role) -> None:
        named = heading_role(section.title) if section.level else None
        role: Role = named or inherited
        if inherited in {"roadmap", "out_of_scope", "glossary", "criteria", "ordering"} and named == "requirement":
            role = inherited  # "Roadmap" > "MVP" is still the roadmap
        if _PRIORITY_HEADING.match(section.title) and priority_class(section.title) is not None:
            if WONT.search(section.title):
                role = "out_of_scope"
            else:
                heading_priority[id(section)] = priority_class(section.title) or 3
                role = "requirement" if inherited in WORK_ROLES else inherited
                generic.add(id(section))
        if GENERIC_HEADING.match(section.title.strip().rstrip(":")) or not section.level:
            generic.add(id(section))
        roles[id(section)] = role
        for child in section.children:
            visit(child, role if role != "priorities" else "requirement")

    visit(document.root, "requirement")
    # A lone top heading is the document's title, not a feature area.
    tops = [s for s in document.root.children if s.level]
    if len(tops) == 1 or (tops and sum(1 for s in tops if s.level == tops[0].level) == 1 and tops[0].children):
        generic.add(id(tops[0]))
    return Reading(_genre(document), roles, heading_priority, frozenset(generic))


def _genre(document: Document) -> Genre:
    if {"context", "prd"} & document.tags:
        return "tagged template"
    checked = labelled = stories = 0
    for section in document.sections():
        for block in section.blocks:
            for inner in block.walk():
                checked += inner.checked is not None
                labelled += bool(LABEL.match(inner.text))
                stories += bool(_STORY.search(inner.text))
    if checked >= 2:
        return "checklist epic"
    if labelled >= 2:
        return "specification"
    if stories >= 2:
        return "story brief"
    return "plain outline"
