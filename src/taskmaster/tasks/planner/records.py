"""Requirement records: one per requirement the PRD states, with its source lines, label, checked state, fields and
the text around it; plus the statements of ordering, priority and roadmap sections for the relations stage."""

from __future__ import annotations

import re
from dataclasses import dataclass, replace

from taskmaster.tasks.planner.document import Block, Document, Section
from taskmaster.tasks.planner.lexicon import INLINE_PRIORITY, NEEDS, WONT, priority_class, wording_priority
from taskmaster.tasks.planner.roles import Reading, heading_role

__all__ = ["Extraction", "Mention", "Requirement", "Statement", "extract"]


@dataclass(frozen=True)
class Mention:
    """Another place that names a requirement (a roadmap line, a second section)."""

    text: str
    line: int
    where: str


@dataclass(frozen=True)
class Requirement:
    index: int
    text: str
    """What the item says, without its label or priority tag."""
    line: int
    end: int
    path: tuple[str, ...]
    """Titles of the sections it sits in, outermost first."""
    area: tuple[str, ...] | None
    """The feature area the document groups it under, if any."""
    scope: int
    """Identity of the list or section it came from (numbers such as "needs 2" resolve inside it first)."""
    name: str | None = None
    """A short feature name: its heading, a bold lead ("Borrowing: …") or the whole item when it is one."""
    label: str | None = None
    number: str | None = None
    checked: bool | None = None
    fields: tuple[tuple[str, str], ...] = ()
    details: tuple[str, ...] = ()
    criteria: tuple[str, ...] = ()
    priority: tuple[int, str] | None = None
    """(class, why) when the text gives one: 1 most urgent … 4."""
    deferred: bool = False
    kind: str = "feature"
    """"bug" under a bugs heading."""
    phase: str | None = None
    """The roadmap part (phase, milestone, "MVP") that names it."""
    mentions: tuple[Mention, ...] = ()


@dataclass(frozen=True)
class Statement:
    """A line of an ordering, priorities or roadmap section (or a priority line anywhere)."""

    kind: str
    """"ordering", "priorities", "roadmap", or "section" (a relation phrase for the whole section)."""
    text: str
    line: int
    scope: int
    phase: str | None = None
    deferred: bool = False
    number: str | None = None
    """The ordinal of a numbered chain item ("depends on 3 & 4" inside the chain names its own items)."""


@dataclass(frozen=True)
class Extraction:
    records: tuple[Requirement, ...]
    roadmap: tuple[Requirement, ...]
    """Items of roadmap sections: the same requirement again (merged later), or new work."""
    statements: tuple[Statement, ...]
    notes: tuple[tuple[str, str, str], ...]
    """(role, section title, text) of the parts that are not work: they inform tasks, never become tasks."""
    sections: tuple[tuple[str, str], ...]
    """(title, role) of every section, for errors and --explain."""


_LABELLED = re.compile(
    r"^(?P<label>[A-Z][A-Za-z]{0,5}-?\d{1,4}(?:\.\d+)?|#\d{1,5})(?:\s*\((?P<tag>[^)]{1,24})\))?\s*[:.)\-–—]?\s+(?P<rest>\S.*)$"
)
_STORY = re.compile(r"^as an? [\w -]{1,40}?,? i (?:want|need|would like|can)\b", re.I)
_FIELD = re.compile(
    r"^(?P<key>blocked by|depends on|dependencies|dependency|needs|requires|prerequisites?|after|priority|"
    r"acceptance(?: criteria)?|ac|done when|notes?|owner|estimate|why|how|what it does|why it'?s important|"
    r"how it works|story|benefit|value|goal|rationale|behaviou?r|details?)\s*:\s*(?P<value>.+)$",
    re.I,
)
_CRITERION = re.compile(r"^(?:given\b|when\b.*\bthen\b|then\b|verify\b|test that\b|check that\b)", re.I)
_PRIORITY_LINE = re.compile(
    r"^(?:must(?: have)?|should(?: have)?|could(?: have)?|nice to have|won'?t(?: have)?|p[0-3]|critical|high|medium|"
    r"low)(?:\s*\([^)]*\))?\s*:\s*\S",
    re.I,
)
_PHASE_LINE = re.compile(
    r"^(?P<phase>(?:phase|milestone|release|sprint|stage|step|iteration|mvp|v\d|week|month|quarter|q[1-4])\b"
    r"[^:]{0,40}):\s*\S",
    re.I,
)
_PHASE_HEADING = re.compile(
    r"^(?:\d+(?:\.\d+)*\.?\s+)?(?:phase|milestone|stage|sprint|iteration|release)\s+[\w.]+", re.I
)
_SECTION_PRIORITY = re.compile(r"^priority\s*:\s*(?P<value>[\w -]{1,30})$", re.I)
_META = re.compile(
    r"^(?:owner|status|version|author|authors|date|last updated|updated|reviewers?|approvers?|team|document|"
    r"field|key|property|created|editor|stakeholders?)$",
    re.I,
)
_BUG_HEADING = re.compile(r"\b(?:bugs?|defects?|known issues|fixes)\b", re.I)
_ASPECT_ITEM = re.compile(r"^[A-Z][\w /'-]{1,30}:\s+\S")
_GENERIC_NAME = re.compile(r"^(?:feature|story|requirement|req|item|task|epic|capability)\s*[\w.-]{0,4}$", re.I)
_NOT_A_NAME = re.compile(r"^(?:fix|bug|note|todo|feature|story|task|nb|ps|goal|why|how|what)$", re.I)
_NAME_LEAD = re.compile(r"^(?P<name>[^:.;`]{2,60}?)\s*(?::\s|\s[—–]\s)\s*(?P<rest>\S.*)$")
_VERBISH = re.compile(r"\b(?:is|are|be|can|must|should|will|shall|has|have|lets?|allows?)\b", re.I)

_ID_HEADER = re.compile(r"^(?:id|#|no\.?|key|ref|req(?:uirement)? ?id|story ?id|number)$", re.I)
_TEXT_HEADER = re.compile(r"requirement|feature|story|description|title|name|what|capability|item|summary|task", re.I)
_PRIORITY_HEADER = re.compile(r"priority|moscow|prio|importance|must/should", re.I)
_DEPS_HEADER = re.compile(r"depend|blocked|needs|requires|after|prereq", re.I)


def extract(document: Document, reading: Reading) -> Extraction:
    """Read the requirement records and the statements of a document whose sections have roles."""
    builder = _Extractor(reading)
    builder.visit(document.root, (), None, in_roadmap=False, deferred=False)
    records = builder.records
    if not records and not builder.roadmap_items:
        records = builder.fallback(document)
    return Extraction(
        tuple(records), tuple(builder.roadmap_items), tuple(builder.statements), tuple(builder.notes),
        tuple(builder.sections),
    )  # fmt: skip


class _Extractor:
    def __init__(self, reading: Reading) -> None:
        self.reading = reading
        self.records: list[Requirement] = []
        self.statements: list[Statement] = []
        self.notes: list[tuple[str, str, str]] = []
        self.sections: list[tuple[str, str]] = []
        self.roadmap_items: list[Requirement] = []

    def visit(
        self, section: Section, path: tuple[str, ...], area: tuple[str, ...] | None, *, in_roadmap: bool,
        deferred: bool, phase: str | None = None,
    ) -> int:  # fmt: skip
        """Read a section and its children; return how many records the subtree gave."""
        role = self.reading.role(section)
        here = (*path, section.title) if section.level else path
        if section.level:
            self.sections.append((section.title, role))
        heading_class = self.reading.heading_priority.get(id(section))
        nested_in_roadmap = in_roadmap
        in_roadmap = in_roadmap or role == "roadmap"
        deferred = deferred or (role == "out_of_scope" and in_roadmap)
        count = 0
        if role == "requirement":
            own_area = area if id(section) in self.reading.generic else here
            if _PHASE_HEADING.match(section.title):
                phase = section.title
            if (
                section.level
                and id(section) not in self.reading.generic
                and heading_class is None
                and _aspects(section)
            ):
                return self.feature_heading(section, here, area)
            first = len(self.records)
            own = self.section_records(section, here, own_area, heading_class, phase)
            count += own
            if own == 1 and section.level and own_area != area:
                # a section holding one requirement is that requirement ("### Story 1.1 …"): its area is the parent's
                self.records[first] = replace(self.records[first], area=area)
            for child in section.children:
                if own == 1 and self.reading.role(child) == "criteria":
                    found = tuple(inner.text for block in child.blocks for inner in block.walk())
                    record = self.records[first]
                    self.records[first] = replace(record, criteria=(*record.criteria, *found))
                    self.sections.append((child.title, "criteria"))
                    continue
                count += self.visit(child, here, own_area, in_roadmap=in_roadmap, deferred=deferred, phase=phase)
            prose = any(b.kind != "code" for b in section.blocks)
            if not count and prose and id(section) not in self.reading.generic and section.level:
                count += self.feature_heading(section, here, area)
                if heading_class is not None and self.records[-1].priority is None:
                    self.records[-1] = replace(self.records[-1], priority=(heading_class, "its heading"))
            return count
        if role in {"ordering", "priorities"}:
            for block in section.blocks:
                for inner in _flat(block):
                    self.statements.append(Statement(role, inner.text, inner.line, id(section), number=inner.number))
        elif in_roadmap:
            phase = section.title if nested_in_roadmap else None
            for block in section.blocks:
                if block.kind == "code":
                    continue
                if (_PHASE_LINE.match(block.text) and not _LABELLED.match(block.text)) or (
                    block.kind == "text" and (not _LABELLED.match(block.text))
                ):
                    self.statements.append(Statement("roadmap", block.text, block.line, id(section), phase, deferred))
                    continue
                lead = _NAME_LEAD.match(block.text)
                lead_name = (lead.group("name") if lead else block.text).strip().rstrip(":")
                if heading_role(lead_name) == "out_of_scope":
                    self.notes.append(("out_of_scope", lead_name, _render(block)))
                    continue
                if block.kind == "item" and block.text.rstrip().endswith(":") and block.children:
                    for nested in block.children:  # "MVP Requirements:" over a nested list: a phase of its own
                        item = self.record(nested, here, None, id(section), kind="roadmap")
                        self.roadmap_items.append(replace(item, index=-1, deferred=deferred, phase=lead_name))
                    continue
                item = self.record(block, here, None, id(section), kind="roadmap")
                self.roadmap_items.append(replace(item, index=-1, deferred=deferred, phase=phase))
        else:
            for block in section.blocks:
                self.notes.append((role, section.title, _render(block)))
        for child in section.children:
            count += self.visit(child, here, area, in_roadmap=in_roadmap, deferred=deferred)
        return count

    def section_records(
        self, section: Section, path: tuple[str, ...], area: tuple[str, ...] | None, heading_class: int | None,
        phase: str | None,
    ) -> int:  # fmt: skip
        blocks = list(section.blocks)
        labelled = any(_LABELLED.match(b.text) or _STORY.match(b.text) for b in blocks if b.kind != "code")
        heading_why = f'under the heading "{section.title}"'
        for block in blocks:
            line = _SECTION_PRIORITY.match(block.text)
            if line and priority_class(line.group("value")) is not None:
                heading_class, heading_why = priority_class(line.group("value")), f'"{block.text}" in its section'
        made = 0
        bugs = bool(_BUG_HEADING.search(" ".join(path)))
        for block in blocks:
            if block.kind == "code" or not any(c.isalnum() for c in block.text):
                continue
            if _SECTION_PRIORITY.match(block.text) or _META.match(block.cells[0] if block.cells else ""):
                continue
            if WONT.match(block.text):
                self.notes.append(("out_of_scope", section.title, block.text))
                continue
            if block.text.rstrip().endswith("?") and not block.children:
                self.notes.append(("context", section.title, block.text))  # a question is not work
                continue
            if (
                block.kind == "text"
                and NEEDS.search(block.text)
                and not (_LABELLED.match(block.text) or _STORY.match(block.text))
            ):
                self.statements.append(Statement("section", block.text, block.line, id(section)))
                continue
            if _PRIORITY_LINE.match(block.text):
                self.statements.append(Statement("priorities", block.text, block.line, id(section)))
                continue
            if _PHASE_LINE.match(block.text) and not _LABELLED.match(block.text):
                self.statements.append(Statement("roadmap", block.text, block.line, id(section)))
                continue
            is_record = (
                block.kind == "row"
                or bool(_LABELLED.match(block.text) or _STORY.match(block.text))
                or (block.kind == "item" and not labelled)
            )
            if not is_record:
                if self.records and self.records[-1].scope == id(section):
                    last = self.records[-1]
                    self.records[-1] = replace(last, details=(*last.details, block.text), end=block.end)
                continue
            fallback = (heading_class, heading_why) if heading_class is not None else None
            kind = "bug" if bugs else "feature"
            self.records.append(self.record(block, path, area, id(section), fallback=fallback, kind=kind, phase=phase))
            made += 1
        return made

    def record(
        self, block: Block, path: tuple[str, ...], area: tuple[str, ...] | None, scope: int, *,
        fallback: tuple[int, str] | None = None, kind: str = "feature", phase: str | None = None,
    ) -> Requirement:  # fmt: skip
        """The record of one block; `fallback` is the priority its heading gives when the item gives none."""
        text = block.text
        label: str | None = None
        priority: tuple[int, str] | None = None
        fields: list[tuple[str, str]] = []
        details: list[str] = []
        criteria: list[str] = []
        if block.kind == "row":
            text, label, priority, fields = _row(block)
        match = _LABELLED.match(text)
        if match and label is None:
            label, text = match.group("label"), match.group("rest")
            tag = match.group("tag")
            if tag and priority_class(tag) is not None:
                priority = (priority_class(tag) or 3, f'"({tag})" after {label}')
        generic = _NAME_LEAD.match(text)
        if generic and _GENERIC_NAME.match(generic.group("name").strip()) and label is None:
            label, text = generic.group("name").strip(), generic.group("rest")
        inline = INLINE_PRIORITY.search(text)
        if inline and priority is None:
            word = inline.group("a") or inline.group("b") or inline.group("c") or ""
            cls = priority_class(word)
            if cls is not None:
                priority = (cls, f'"{inline.group(0).strip()}" in the text')
                text = (text[: inline.start()] + text[inline.end() :]).strip().rstrip(".").strip() + (
                    "." if text.rstrip().endswith(".") else ""
                )
        for child in block.children:
            for inner in _flat(child):
                field = _FIELD.match(inner.text)
                if field:
                    key = field.group("key").lower()
                    if key.startswith(("acceptance", "ac", "done")):
                        criteria.append(field.group("value"))
                    else:
                        fields.append((key, field.group("value")))
                elif _CRITERION.match(inner.text):
                    criteria.append(inner.text)
                else:
                    details.append(inner.text)
        for key, value in fields:
            if key == "priority" and priority is None and priority_class(value) is not None:
                priority = (priority_class(value) or 3, f'"Priority: {value}"')
        name = _name_of(text)
        number = block.number if block.kind == "item" else None
        if priority is None:
            priority = fallback or wording_priority(text) if fallback is not None or kind != "roadmap" else None
        return Requirement(
            index=len(self.records), text=text, line=block.line, end=max(block.end, block.line), path=path,
            area=area, scope=scope, name=name, label=label, number=number, checked=block.checked,
            fields=tuple(fields), details=tuple(details), criteria=tuple(criteria), priority=priority,
            kind="feature" if kind == "roadmap" else kind, phase=phase,
        )  # fmt: skip

    def feature_heading(self, section: Section, path: tuple[str, ...], area: tuple[str, ...] | None) -> int:
        """A feature written as a heading with prose under it ("### RSS feed" / Why / How): one record."""
        texts = [b.text for b in section.blocks if b.kind == "text"]
        details: list[str] = []
        fields: list[tuple[str, str]] = []
        criteria: list[str] = []
        blocks = [(None, b) for b in section.blocks] + [(c.title, b) for c in section.children for b in c.blocks]
        for aspect, block in blocks:
            for inner in block.walk():
                if inner is block and block.kind == "text" and aspect is None:
                    continue
                field = _FIELD.match(inner.text)
                key = field.group("key").lower() if field else (aspect or "").lower()
                if key.startswith(("acceptance", "ac", "done")):
                    criteria.append(field.group("value") if field else inner.text)
                elif field:
                    fields.append((key, field.group("value")))
                else:
                    details.append(f"{aspect}: {inner.text}" if aspect else inner.text)
        story = next((value for key, value in fields if key == "story"), None)
        name: str | None = None
        if story and re.match(r"(?i)as an? ", section.title):
            texts = [f"{section.title}, {story}"]
        else:
            name = re.sub(r"^\d+(?:\.\d+)*\.?\s+", "", section.title)
        end = max([section.line, *(b.end for _, b in blocks)])
        title = re.sub(r"^\d+(?:\.\d+)*\.?\s+", "", section.title)
        label_match = _LABELLED.match(title)
        label = label_match.group("label") if label_match else None
        if label_match:
            title = label_match.group("rest")
        priority: tuple[int, str] | None = None
        inline = INLINE_PRIORITY.search(" ".join([title, *texts]))
        if inline:
            cls = priority_class(inline.group("a") or inline.group("b") or inline.group("c") or "")
            if cls is not None:
                priority = (cls, f'"{inline.group(0).strip()}" in the text')
                title = INLINE_PRIORITY.sub("", title).strip()
        self.records.append(
            Requirement(
                index=len(self.records),
                text=" ".join(texts) or title,
                line=section.line,
                end=end,
                path=path,
                area=area,
                scope=id(section),
                name=title if name else None,
                label=label,
                fields=tuple(fields),
                details=tuple(details),
                criteria=tuple(criteria),
                priority=priority,
            )
        )
        return 1

    def fallback(self, document: Document) -> list[Requirement]:
        """No list, table or labelled line anywhere: each paragraph of the work sections is a requirement."""
        out: list[Requirement] = []
        for section in document.sections():
            if self.reading.role(section) != "requirement":
                continue
            path = (section.title,) if section.level else ()
            for block in section.blocks:
                if block.kind == "text" and len(block.text.split()) >= 3:
                    out.append(
                        Requirement(
                            len(out),
                            block.text,
                            block.line,
                            block.end,
                            path,
                            None,
                            id(section),
                            name=_name_of(block.text),
                        )
                    )
        return out


def _aspects(section: Section) -> bool:
    """A feature heading whose content is aspects of it, not separate requirements: lead-in lists ("**Behavior**:",
    "**Command Options**:") or only "Name: value" items ("Story: …", "Acceptance: …")."""
    if any(b.kind == "row" or _LABELLED.match(b.text) or _STORY.match(b.text) for b in section.blocks):
        return False
    children = section.children
    inner = [b for c in children for b in c.blocks]
    if children and all(c.pseudo and not _PRIORITY_LINE.match(c.title + ": x") for c in children):
        return not any(b.checked is not None or _LABELLED.match(b.text) or _STORY.match(b.text) for b in inner)
    items = [b for b in section.blocks if b.kind == "item"]
    return not children and len(items) >= 2 and all(_ASPECT_ITEM.match(b.text) for b in items)


def _flat(block: Block) -> list[Block]:
    return list(block.walk())


def _render(block: Block) -> str:
    return "\n".join(("  " * b.depth) + ("- " if b.kind == "item" else "") + b.text for b in block.walk())


def _name_of(text: str) -> str | None:
    """A feature name the text leads with ("Tool catalogue: volunteers list …"), or the whole text when short."""
    lead = _NAME_LEAD.match(text)
    name = lead.group("name").strip() if lead else ""
    if _GENERIC_NAME.match(name) and lead:
        return _name_of(lead.group("rest"))
    sentence_like = re.match(r"(?i)(?:a|an|the)\s+\S+\s+\S+", name) is not None
    plain_name = lead and len(name.split()) <= 5 and not _VERBISH.search(name) and not _NOT_A_NAME.match(name)
    if plain_name and not sentence_like:
        return name
    words = text.rstrip(".").split()
    if len(words) <= 4 and not _VERBISH.search(text):
        return text.rstrip(".").strip()
    return None


def _row(block: Block) -> tuple[str, str | None, tuple[int, str] | None, list[tuple[str, str]]]:
    """A table row's text, label, priority and other cells as fields."""
    cells = list(block.cells)
    header = list(block.header) + [""] * (len(cells) - len(block.header))
    label: str | None = None
    text_col: int | None = None
    priority: tuple[int, str] | None = None
    fields: list[tuple[str, str]] = []
    for i, (head, cell) in enumerate(zip(header, cells, strict=False)):
        is_id = _ID_HEADER.match(head.strip()) or re.fullmatch(r"[A-Z][A-Za-z]{0,5}-?\d{1,4}", cell)
        if label is None and is_id and cell.strip():
            label = cell.strip()
            continue
        if text_col is None and _TEXT_HEADER.search(head):
            text_col = i
            continue
    if text_col is None:
        lengths = [(len(c), i) for i, c in enumerate(cells) if c != label]
        text_col = max(lengths)[1] if lengths else 0
    for i, (head, cell) in enumerate(zip(header, cells, strict=False)):
        if i == text_col or cell == label or not cell.strip() or cell.strip() in {"—", "-", "–"}:
            continue
        if _PRIORITY_HEADER.search(head) and priority_class(cell) is not None:
            priority = (priority_class(cell) or 3, f'{head or "priority"} column: "{cell}"')
        elif _DEPS_HEADER.search(head):
            fields.append(("depends on", cell))
        else:
            fields.append((head.lower() or "note", cell))
    if priority is None:
        for cell in cells:
            if cell != cells[text_col] and re.fullmatch(r"(?i)p[0-3]|must|should|could|high|medium|low|critical", cell):
                priority = (priority_class(cell) or 3, f'"{cell}" in the row')
    return cells[text_col], label, priority, fields
