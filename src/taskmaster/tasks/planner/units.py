"""The planner's working objects: a unit of work (a task before it has a key) and the dependency graph between units.

The graph refuses any edge that would close a cycle, so every plan the planner emits is acyclic by construction.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

from taskmaster.tasks.planner.sections import Item, Section
from taskmaster.tasks.schemas import TaskType

__all__ = ["DependencyGraph", "Unit", "sinks"]


@dataclass(eq=False)
class Unit:
    """A task or subtask in the making: where it came from, what it says, and what it waits for."""

    order: int
    line: int
    section: Section
    item: Item | None
    text: str
    title: str = ""
    description: str = ""
    body: list[str] = field(default_factory=list)
    context: list[str] = field(default_factory=list)
    criteria: list[str] = field(default_factory=list)
    priority: int = 3
    explicit_priority: bool = False
    deferred: bool = False
    type: TaskType = "feature"
    complexity: int = 1
    parent: Unit | None = None
    children: list[Unit] = field(default_factory=list)
    deps: dict[Unit, str] = field(default_factory=dict)
    """Dependencies in the order found, with how each was found ("explicit", "setup", "phase")."""
    phrases: list[tuple[str, float, bool]] = field(default_factory=list)
    """(target text, score threshold, reverse) — dependency phrases waiting to be resolved."""
    labels: set[str] = field(default_factory=set)
    members: list[Unit] = field(default_factory=list)
    """Units merged into this one by `num_tasks`, in document order (itself first)."""
    fields: dict[str, list[str]] = field(default_factory=dict)
    is_section_task: bool = False

    def top(self) -> Unit:
        node = self
        while node.parent is not None:
            node = node.parent
        return node

    def ancestors(self) -> Iterator[Unit]:
        node = self.parent
        while node is not None:
            yield node
            node = node.parent

    def descendants(self) -> Iterator[Unit]:
        for child in self.children:
            yield child
            yield from child.descendants()


def sinks(units: list[Unit]) -> list[Unit]:
    """The units of a group that no other unit of the group depends on (where the group's work ends)."""
    inside = set(units)
    needed = {dep for unit in units for dep in unit.deps if dep in inside}
    sinks = [u for u in units if u not in needed]
    return sinks or units[-1:]


class DependencyGraph:
    """Dependency edges with a reachability check, so that no edge that would close a cycle gets in."""

    def __init__(self, units: Iterable[Unit]) -> None:
        self.out: dict[Unit, list[Unit]] = {u: [] for u in units}
        self.stamp = 0
        self.marks: dict[Unit, int] = {}

    def add(self, unit: Unit, dep: Unit) -> None:
        self.out.setdefault(unit, []).append(dep)

    def reaches(self, start: Unit, goal: Unit) -> bool:
        """Whether `start` already (transitively) depends on `goal`."""
        if start is goal:
            return True
        self.stamp += 1
        stamp = self.stamp
        stack = [start]
        marks = self.marks
        out = self.out
        while stack:
            node = stack.pop()
            for nxt in out.get(node, ()):
                if nxt is goal:
                    return True
                if marks.get(nxt) != stamp:
                    marks[nxt] = stamp
                    stack.append(nxt)
        return False
