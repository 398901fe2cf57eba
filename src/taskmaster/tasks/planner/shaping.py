"""The last stage: requirement records and their relations become planned tasks, one per requirement, grouped under
parent tasks by the document's feature areas and shaped to about `num_tasks` top-level tasks."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from taskmaster.tasks.planner.records import Requirement
from taskmaster.tasks.planner.relations import Relations
from taskmaster.tasks.planner.structure import complexity_of
from taskmaster.tasks.planner.wording import description_of, title_of
from taskmaster.tasks.schemas import PlannedTask, TaskType

__all__ = ["shape"]

_DROP_VERB = re.compile(
    r"^(?:implement|make|let|add|build|create|set up|setup|support|provide|enable|handle|define|develop|write|"
    r"design|give)\s+",
    re.I,
)
_NUMBERING = re.compile(r"^\d+(?:\.\d+)*\.?\s+")


@dataclass
class _Entry:
    """A top-level task: one requirement, or a feature area (or a merge of entries) holding several."""

    members: list[int]
    area: tuple[str, ...] | None = None
    titles: list[str] = field(default_factory=list)


def shape(relations: Relations, *, num_tasks: int | None, source: str | None) -> list[PlannedTask]:
    records = list(relations.records)
    entries = _entries(records)
    if num_tasks is not None:
        entries = _fit(entries, num_tasks, records)
    titles = _titles(records)
    keys: dict[int, str] = {}
    for position, entry in enumerate(entries, start=1):
        if len(entry.members) == 1 and not entry.titles:
            keys[entry.members[0]] = str(position)
        else:
            for sub, member in enumerate(entry.members, start=1):
                keys[member] = f"{position}.{sub}"
    deps: dict[int, list[tuple[str, str]]] = {i: [] for i in range(len(records))}
    dependents: dict[int, int] = {}
    for edge in relations.edges:
        deps[edge.dependent].append((keys[edge.dependency], edge.why))
        dependents[edge.dependency] = dependents.get(edge.dependency, 0) + 1
    groups = {
        str(position): {keys[m] for m in entry.members}
        for position, entry in enumerate(entries, start=1)
        if len(entry.members) > 1 or entry.titles
    }
    for index, found in deps.items():
        deps[index] = _collapse(found, groups, keys[index])
    tasks: list[PlannedTask] = []
    for position, entry in enumerate(entries, start=1):
        children = [_task(records[m], keys[m], titles[m], deps[m], dependents.get(m, 0), source) for m in entry.members]
        if len(children) == 1 and not entry.titles:
            tasks.append(children[0])
            continue
        title = _group_title(entry)
        tasks.append(
            PlannedTask(
                key=str(position),
                title=title,
                description=f"{len(children)} requirements: " + "; ".join(c.title for c in children),
                priority=min(c.priority for c in children),
                complexity=min(10, max(c.complexity or 1 for c in children) + 1),
                subtasks=children,
                source_section=" > ".join(entry.area) if entry.area else None,
                status="done" if all(c.status == "done" for c in children) else "pending",
                extra={"prd_source": source} if source else {},
            )
        )
    return tasks


def _collapse(found: list[tuple[str, str]], groups: dict[str, set[str]], own: str) -> list[tuple[str, str]]:
    """Waiting for every subtask of a parent is waiting for the parent: one dependency instead of many."""
    keys = {key for key, _ in found}
    out: list[tuple[str, str]] = []
    done: set[str] = set()
    for key, why in found:
        parent = key.split(".", 1)[0]
        members = groups.get(parent)
        if members and len(members) > 1 and members <= keys and own not in members:
            if parent not in done:
                out.append((parent, why))
                done.add(parent)
            continue
        out.append((key, why))
    return out


def _entries(records: list[Requirement]) -> list[_Entry]:
    """Requirements in document order; those of a feature area holding two or more sit under one parent."""
    sizes: dict[tuple[str, ...], int] = {}
    for record in records:
        if record.area:
            sizes[record.area] = sizes.get(record.area, 0) + 1
    entries: list[_Entry] = []
    by_area: dict[tuple[str, ...], _Entry] = {}
    for record in sorted(records, key=lambda r: r.index):
        area = record.area
        if area and sizes[area] >= 2:
            if area not in by_area:
                by_area[area] = _Entry([], area, [area[-1]])
                entries.append(by_area[area])
            by_area[area].members.append(record.index)
        else:
            entries.append(_Entry([record.index]))
    return entries


def _fit(entries: list[_Entry], target: int, records: list[Requirement]) -> list[_Entry]:
    """Merge neighbouring entries (fewest requirements first) or open up parents until about `target` remain;
    never merges two requirements into one task."""
    entries = list(entries)
    while len(entries) > target:
        best = min(
            range(len(entries) - 1),
            key=lambda i: (
                _top(entries[i], records) != _top(entries[i + 1], records),
                len(entries[i].members) + len(entries[i + 1].members),
            ),
        )
        a, b = entries[best], entries[best + 1]
        titles = (a.titles or [title_of(records[a.members[0]])]) + (b.titles or [title_of(records[b.members[0]])])
        area = a.area if a.area == b.area else None
        entries[best : best + 2] = [_Entry(a.members + b.members, area, titles)]
    while len(entries) < target:
        parents = [i for i, e in enumerate(entries) if len(e.members) > 1]
        if not parents:
            break
        widest = max(parents, key=lambda i: len(entries[i].members))
        if len(entries) - 1 + len(entries[widest].members) > target and len(entries) > 1:
            break
        entries[widest : widest + 1] = [_Entry([m]) for m in entries[widest].members]
    return entries


def _top(entry: _Entry, records: list[Requirement]) -> tuple[str, ...]:
    return records[entry.members[0]].path[:2]


def _group_title(entry: _Entry) -> str:
    names = [_NUMBERING.sub("", t).strip() for t in entry.titles]
    names = [_DROP_VERB.sub("", n) for n in names]
    names = [n[:1].lower() + n[1:] if n[:2] != n[:2].upper() else n for n in names]
    if len(names) == 1:
        return "Implement " + names[0]
    if len(names) == 2:
        return f"Implement {names[0]} and {names[1]}"
    return f"Implement {names[0]}, {names[1]} and {len(names) - 2} more"


def _titles(records: list[Requirement]) -> list[str]:
    """Each requirement's title; two that would read the same get what tells them apart."""
    titles = [title_of(r) for r in records]
    seen: dict[str, int] = {}
    for i, title in enumerate(titles):
        norm = _norm(title)
        if norm in seen:
            record = records[i]
            extra = record.label or (record.path[-1] if record.path else None) or f"line {record.line}"
            titles[i] = f"{title} — {extra}"
        seen.setdefault(_norm(titles[i]), i)
    return titles


def _norm(title: str) -> str:
    return re.sub(r"\s*\(.*\)$", "", _DROP_VERB.sub("", title.lower())).strip(" .:")


def _task(
    record: Requirement, key: str, title: str, deps: list[tuple[str, str]], dependents: int, source: str | None
) -> PlannedTask:
    details: list[str] = []
    where = " > ".join(record.path)
    if where:
        details.append(f"From: {where} (lines {record.line}–{record.end})")
    details += [f"{key_.capitalize()}: {value}" for key_, value in record.fields]
    details += [f"- {d}" for d in record.details]
    details += [f"Also in {m.where} (line {m.line}): {m.text}" for m in record.mentions]
    test_strategy = "\n".join(f"- {c}" for c in record.criteria) or None
    priority, why_priority = record.priority or (3, "the text gives none")
    complexity, _ = complexity_of(
        criteria=len(record.criteria), dependencies=len(deps), dependents=dependents,
        text=" ".join([record.text, *record.details, *record.criteria]),
    )  # fmt: skip
    extra: dict[str, object] = {
        "source_lines": [record.line, record.end],
        "why": {"priority": why_priority, "dependencies": [{"on": k, "why": w} for k, w in deps]},
    }
    if source:
        extra["prd_source"] = source
    if record.label:
        extra["requirement_id"] = record.label
    if record.criteria:
        extra["acceptance_criteria"] = list(record.criteria)  # what code generation lists as the task's criteria
    return PlannedTask(
        key=key, title=title[:500], description=description_of(record), details="\n".join(details) or None,
        test_strategy=test_strategy, type="bug" if record.kind == "bug" else _type_of(title),
        status="done" if record.checked else "pending",
        priority=max(1, min(priority, 5)), complexity=complexity,
        dependencies=list(dict.fromkeys(k for k, _ in deps)), source_section=where or None, extra=extra,
    )  # fmt: skip


def _type_of(title: str) -> TaskType:
    first = title.split(" ", 1)[0].lower()
    if first == "fix":
        return "bug"
    if first in {"document", "write"} and "doc" in title.lower():
        return "docs"
    if first == "test":
        return "test"
    return "feature"
