"""The shared PRD corpus's scoring (`../shared/prd-corpus/score_prd.py`), reproduced over planned tasks."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from taskmaster.tasks.schemas import PlannedTask

VERBS = (
    r"^(implement|make|let|add|build|create|set up|setup|support|provide|enable|handle|define|develop|write|design)\s+"
)


@dataclass
class Score:
    tasks: int
    recall: float
    edges: float
    junk: list[str]
    duplicates: list[str]
    priority: float
    missing: list[str] = field(default_factory=list)
    lost: list[str] = field(default_factory=list)

    def line(self) -> str:
        return (
            f"{self.tasks} tasks; recall {self.recall:.2f}; dependency recall {self.edges:.2f}; junk {self.junk}; "
            f"duplicates {self.duplicates}; priority agreement {self.priority:.2f}; missed {self.missing}; "
            f"edges lost {self.lost}"
        )


def _flat(tasks: list[PlannedTask], parent: str | None = None) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for task in tasks:
        out.append({
            "id": task.key, "title": task.title, "description": task.description or "", "parent": parent,
            "deps": list(task.dependencies), "priority": task.priority,
        })  # fmt: skip
        out.extend(_flat(task.subtasks, task.key))
    return out


def _has(pattern: str, text: str) -> bool:
    return re.search(r"(?<![\w-])" + re.escape(pattern.lower()) + r"(?![\w])", text.lower()) is not None


def score(planned: list[PlannedTask], gold: dict[str, Any]) -> Score:
    tasks = {t["id"]: t for t in _flat(planned)}
    order = list(tasks)

    def ancestors(tid: str) -> list[str]:
        out: list[str] = []
        parent = tasks[tid]["parent"]
        while parent is not None:
            out.append(parent)
            parent = tasks[parent]["parent"]
        return out

    def names(task: dict[str, Any], req: dict[str, Any], field_: str) -> bool:
        return any(_has(p, task[field_]) for p in req["match"])

    reqs = gold["requirements"]
    breadth = {
        tid: sum(1 for r in reqs if names(t, r, "title") or names(t, r, "description")) for tid, t in tasks.items()
    }
    rep: dict[str, str] = {}
    for req in reqs:
        hits = [tid for tid, t in tasks.items() if names(t, req, "title")]
        if not hits:
            hits = [tid for tid, t in tasks.items() if names(t, req, "description") and breadth[tid] <= 2]
        if hits:
            rep[req["key"]] = max(hits, key=lambda h: (len(ancestors(h)), -order.index(h)))
    children: dict[str, list[str]] = {}
    for tid, task in tasks.items():
        if task["parent"]:
            children.setdefault(task["parent"], []).append(tid)

    def waits_for(tid: str) -> set[str]:
        seen: set[str] = set()
        start = {tid, *ancestors(tid)}
        stack = list(start)
        while stack:
            cur = stack.pop()
            for dep in tasks[cur]["deps"] + (ancestors(cur) if cur not in start else []):
                if dep not in seen:
                    seen.add(dep)
                    stack.append(dep)
        stack = list(seen)
        while stack:
            for child in children.get(stack.pop(), []):
                if child not in seen:
                    seen.add(child)
                    stack.append(child)
        return seen

    edges = gold.get("edges", [])
    ok = [e for e in edges if e[0] in rep and e[1] in rep and rep[e[1]] in waits_for(rep[e[0]])]
    junk = []
    seen_titles: set[str] = set()
    duplicates = []
    for task in tasks.values():
        title = re.sub(r"\s*\(.*\)$", "", re.sub(VERBS, "", task["title"].lower()).strip(" .:"))
        if any(title == j or (title.startswith(j + " ") and len(title) <= len(j) + 12) for j in gold.get("junk", [])):
            junk.append(task["title"])
        norm = re.sub(r"\s*\(.*\)$", "", re.sub(VERBS, "", task["title"].lower())).strip(" .:")
        if norm in seen_titles:
            duplicates.append(task["title"])
        seen_titles.add(norm)
    pairs = [(r["priority"], tasks[rep[r["key"]]]["priority"]) for r in reqs if r["key"] in rep and "priority" in r]
    agree = total = 0
    for i in range(len(pairs)):
        for j in range(i + 1, len(pairs)):
            (g1, p1), (g2, p2) = pairs[i], pairs[j]
            if g1 == g2:
                continue
            total += 1
            agree += (g1 < g2) == (p1 < p2) and p1 != p2
    return Score(
        tasks=len(tasks), recall=len(rep) / len(reqs), edges=len(ok) / len(edges) if edges else 1.0, junk=junk,
        duplicates=duplicates, priority=agree / total if total else 1.0,
        missing=[r["key"] for r in reqs if r["key"] not in rep],
        lost=[f"{a}->{b}" for a, b in edges if [a, b] not in ok],
    )  # fmt: skip
