"""How chunk answers are merged: which titles are one task, how dependencies resolve, what is reported."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from pydantic import BaseModel

from taskmaster.costs.usage import Usage
from taskmaster.tasks.planner.llm import PlanIssue, plan_with_llm

M = TypeVar("M", bound=BaseModel)

PRD = "# P\n\n" + "".join(f"## {name}\n\n{'Requirements of this part. ' * 3}\n\n" for name in ("One", "Two", "Three"))


class Scripted:
    """A model stand-in answering per section: merging is pure logic, the wire is tested with the real SDKs."""

    name = "scripted"
    model = "scripted-1"

    def __init__(self, answer: Callable[[str], list[dict[str, Any]]]) -> None:
        self.answer = answer

    async def structured(
        self, *, system: str, prompt: str, schema: type[M], max_tokens: int = 0, usage: Usage | None = None
    ) -> M:
        text = prompt[prompt.index("<<<") :]
        section = next(name for name in ("One", "Two", "Three") if f"## {name}" in text)
        return schema.model_validate({"tasks": self.answer(section)})


def t(id: str, title: str, *deps: str, priority: int = 3) -> dict[str, Any]:
    return {"id": id, "title": title, "description": "d", "priority": priority, "type": "feature", "dependencies": deps}


async def plan(answers: dict[str, list[dict[str, Any]]]) -> tuple[dict[str, Any], list[PlanIssue]]:
    issues: list[PlanIssue] = []
    # Each section (about 90 characters) fills a chunk of its own.
    result = await plan_with_llm(Scripted(lambda s: answers[s]), PRD, max_chunk_chars=100, issues=issues)
    return {task.title: task for task in result}, issues


async def test_near_identical_titles_in_different_parts_merge_but_different_tasks_do_not() -> None:
    tasks, issues = await plan(
        {
            "One": [
                t("a", "Implement authentication", priority=3),
                t("b", "Add login page"),
                t("c", "Migrate phase 1"),
            ],
            "Two": [
                t("a", "Implement authentification", priority=1),
                t("b", "Add logout page"),
                t("c", "Migrate phase 2"),
            ],
            # Within one answer the model listed both on purpose: near titles stay apart there.
            "Three": [t("a", "Implement authorisation"), t("b", "Implement authorization")],
        }
    )
    assert sorted(tasks) == [
        "Add login page",
        "Add logout page",
        "Implement authentication",
        "Implement authorisation",
        "Implement authorization",
        "Migrate phase 1",
        "Migrate phase 2",
    ]
    merged = tasks["Implement authentication"]
    assert merged.priority == 1 and merged.key == "1"
    assert merged.extra == {"merged_from": ["P > Two"]}
    assert [(i.kind, i.key, i.ref) for i in issues] == [("duplicate_merged", "1", "Implement authentification")]
    assert [task.key for task in tasks.values()] == [str(n) for n in range(1, 8)]


async def test_dependencies_resolve_forward_by_title_and_by_a_close_title_and_leave_nothing_dangling() -> None:
    tasks, issues = await plan(
        {
            "One": [
                t("x", "Design schema", "Deploy to staging"),
                t("y", "Write API", "x", "Implement authentification"),
            ],
            "Two": [t("x", "Implement authentication", "Design schema")],
            "Three": [t("x", "Deploy to staging"), t("y", "Write docs", "nonexistent thing", "y")],
        }
    )
    key = {title: task.key for title, task in tasks.items()}
    assert tasks["Design schema"].dependencies == [key["Deploy to staging"]]  # forward, to a later part
    assert tasks["Write API"].dependencies == [key["Design schema"], key["Implement authentication"]]
    assert tasks["Implement authentication"].dependencies == [key["Design schema"]]
    assert tasks["Write docs"].dependencies == []
    assert {(i.kind, i.ref) for i in issues} == {
        ("unresolved_dependency", "nonexistent thing"),
        ("self_dependency", "y"),
    }


async def test_a_task_depending_on_its_own_duplicate_keeps_no_self_edge() -> None:
    tasks, issues = await plan(
        {
            "One": [t("a", "Set up CI")],
            "Two": [t("a", "Set up CI", "Set up CI")],
            "Three": [t("a", "Ship", "Set up CI")],
        }
    )
    assert tasks["Set up CI"].dependencies == []
    assert tasks["Ship"].dependencies == [tasks["Set up CI"].key]
    assert sorted(i.kind for i in issues) == ["duplicate_merged", "self_dependency"]
