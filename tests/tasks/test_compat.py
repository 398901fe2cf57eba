"""claude-task-master's tasks.json: import maps ids, words and dependencies; export gives the same file back."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from taskmaster.core.errors import InvalidInput
from taskmaster.tasks.compat import (
    COMPAT_KEY,
    export_tasks_json,
    import_tasks_json,
    read_tasks_json,
    write_tasks_json,
)
from taskmaster.tasks.planner.offline import parse_prd
from taskmaster.tasks.schemas import PlannedTask

SAMPLE = Path(__file__).parent / "data" / "claude-task-master-tasks.json"
EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def sample() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(SAMPLE.read_text())
    return data


def exact(value: Any) -> str:
    """JSON text with key order: a round trip must give the same file, not just equal dicts."""
    return json.dumps(value, indent=2, ensure_ascii=False)


def test_import_reads_every_tag_task_and_subtask_with_our_words() -> None:
    tags = import_tasks_json(sample())
    assert list(tags) == ["master", "feature-auth", "experiments"]
    master = tags["master"]
    assert [t.key for t in master] == ["1", "2", "3", "4", "5", "6"]
    assert [s.key for s in master[1].subtasks] == ["2.1", "2.2", "2.3"]
    assert [t.status for t in master] == ["done", "in_progress", "pending", "deferred", "cancelled", "pending"]
    assert [s.status for s in master[1].subtasks] == ["done", "review", "pending"]
    assert master[2].subtasks[1].status == "blocked"
    assert [t.priority for t in master] == [2, 1, 2, 3, 4, 3]
    assert master[1].complexity == 7
    assert master[1].test_strategy == "Migration round trip on a copy of the staging database."
    auth = tags["feature-auth"]
    assert [t.key for t in auth] == ["1", "2"] and auth[0].subtasks[0].status == "done"  # "completed"
    assert auth[1].details is None
    assert tags["experiments"] == []


def test_dependencies_resolve_siblings_cross_subtask_references_and_string_ids() -> None:
    master = import_tasks_json(sample())["master"]
    by_key = {t.key: t for t in master} | {s.key: s for t in master for s in t.subtasks}
    assert by_key["2"].dependencies == ["1"]
    assert by_key["2.3"].dependencies == ["2.1", "2.2"]  # numbers in a subtask are siblings
    assert by_key["3"].dependencies == ["2", "2.1"]  # "2.1" is a subtask of another task
    assert by_key["3.2"].dependencies == ["3.1", "2.2"]
    assert by_key["4"].dependencies == ["3"]  # 42 points nowhere: not an edge, but kept for export
    assert by_key["4"].extra[COMPAT_KEY]["dependencies"] == [3, 42]
    assert by_key["6"].dependencies == ["3.2", "4"]
    assert by_key["6.1"].dependencies == ["3"]  # no sibling 3: the top-level task
    auth = import_tasks_json(sample())["feature-auth"]
    assert auth[1].dependencies == ["1"] and auth[0].subtasks[1].dependencies == ["1.1"]


def test_fields_without_a_column_stay_in_extra() -> None:
    master = import_tasks_json(sample())["master"]
    assert master[0].extra["previousStatus"] == "in-progress"
    assert master[3].extra["metadata"] == {"jira": "PAY-118"}
    assert master[1].subtasks[1].extra["acceptanceCriteria"].startswith("- A refund cannot exceed")
    assert master[2].subtasks[1].extra["metadata"] == {"blockedBy": "provider sandbox access"}
    auth = import_tasks_json(sample())["feature-auth"]
    assert auth[0].extra["createdAt"] == "2025-03-01T08:00:00.000Z"
    assert auth[0].subtasks[0].extra["parentId"] == "1"


def test_round_trip_gives_the_same_file() -> None:
    original = sample()
    tags = import_tasks_json(copy.deepcopy(original))
    # through the task store: only PlannedTask fields survive, as JSON
    stored = {tag: [PlannedTask.model_validate_json(t.model_dump_json()) for t in tasks] for tag, tasks in tags.items()}
    assert exact(export_tasks_json(stored)) == exact(original)
    assert exact(write_tasks_json(read_tasks_json(copy.deepcopy(original)))) == exact(original)


def test_legacy_flat_layout_and_bare_list_round_trip() -> None:
    flat = {"tasks": sample()["master"]["tasks"], "metadata": {"projectName": "payments", "version": "1.0.0"}}
    tags = import_tasks_json(copy.deepcopy(flat))
    assert list(tags) == ["master"] and len(tags["master"]) == 6
    assert exact(export_tasks_json(tags, legacy=True)) == exact(flat)
    bare = sample()["feature-auth"]["tasks"]
    assert exact(write_tasks_json(read_tasks_json(copy.deepcopy(bare)))) == exact(bare)


def test_changes_made_in_taskmaster_win_over_what_was_imported() -> None:
    tags = import_tasks_json(sample())
    master, auth = tags["master"], tags["feature-auth"]
    token = auth[0].subtasks[0]  # imported with status "completed"
    auth[0].subtasks[0] = token.model_copy(update={"status": "in_progress"})
    master[3] = master[3].model_copy(update={"dependencies": [], "priority": 1})  # was [3, 42], medium
    seed = master[1].subtasks[2]
    master[1].subtasks[2] = seed.model_copy(update={"test_strategy": "Run the seed twice."})
    out = export_tasks_json(tags)
    assert out["feature-auth"]["tasks"][0]["subtasks"][0]["status"] == "in-progress"
    refund = out["master"]["tasks"][3]
    assert refund["dependencies"] == [] and refund["priority"] == "critical"
    assert out["master"]["tasks"][1]["subtasks"][2]["testStrategy"] == "Run the seed twice."


def test_export_of_taskmaster_tasks_uses_their_notation() -> None:
    tasks = [
        PlannedTask(key="1", title="Schema", status="done", priority=1),
        PlannedTask(
            key="2",
            title="API",
            status="in_progress",
            priority=5,
            dependencies=["1", "42"],
            subtasks=[
                PlannedTask(key="2.1", title="Routes"),
                PlannedTask(
                    key="2.2",
                    title="Auth",
                    dependencies=["2.1", "1"],
                    subtasks=[PlannedTask(key="2.2.1", title="Tokens", dependencies=["2.1"])],
                ),
            ],
        ),
        PlannedTask(
            key="3",
            title="UI",
            subtasks=[PlannedTask(key="41", title="Forms"), PlannedTask(key="42", title="Tables", dependencies=["41"])],
        ),
    ]
    out = export_tasks_json({"master": tasks})
    exported = out["master"]["tasks"]
    assert set(out["master"]["metadata"]) == {"created", "updated", "description"}
    assert [t["id"] for t in exported] == [1, 2, 3]
    assert [t["priority"] for t in exported] == ["critical", "low", "medium"]
    assert [t["status"] for t in exported] == ["done", "in-progress", "pending"]
    api = exported[1]
    assert api["dependencies"] == [1, "3.2"]  # subtask "42" of task 3 is exported as 3.2
    # the deeper subtask is flattened into its top-level task and numbered after the others
    assert [(s["id"], s["title"], s["dependencies"]) for s in api["subtasks"]] == [
        (1, "Routes", []),
        (2, "Auth", [1, "1"]),  # sibling 1, then top-level task 1
        (3, "Tokens", [1]),
    ]
    # keys that are not "<parent>.<n>" (a store's own numbering) get numbers within the parent
    assert [(s["id"], s["dependencies"]) for s in exported[2]["subtasks"]] == [(1, []), (2, [1])]
    assert exported[0]["description"] == "" and "subtasks" not in exported[0]
    assert export_tasks_json({"master": tasks}, legacy=True)["tasks"] == exported


def test_planner_output_survives_export_and_import() -> None:
    planned = parse_prd((EXAMPLES / "prd-saas-billing.md").read_text())
    back = import_tasks_json(export_tasks_json({"master": planned}))["master"]

    def shape(tasks: list[PlannedTask]) -> list[tuple[str, str, int, str, list[str], list[Any]]]:
        return [(t.key, t.title, min(t.priority, 4), t.status, t.dependencies, shape(t.subtasks)) for t in tasks]

    assert shape(back) == shape(planned)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ("tasks", "tasks.json: expected an object or a list of tasks, got a string"),
        ({"master": []}, "master: expected an object with a 'tasks' list, got a list"),
        ({"master": {"metadata": {}}}, "master.tasks: missing"),
        ({"master": {"tasks": {}}}, "master.tasks: expected a list, got an object"),
        ({"tasks": [{"title": "x"}]}, "tasks[0].id: missing"),
        ({"tasks": [{"id": 1.5, "title": "x"}]}, "tasks[0].id: expected an integer or a string, got float"),
        ({"tasks": [{"id": 1, "title": "x"}, {"id": "1", "title": "y"}]}, "tasks[1].id: duplicate id '1'"),
        ({"tasks": [{"id": 1}]}, "tasks[0].title: missing"),
        ({"tasks": [{"id": 1, "title": "x", "status": "started"}]}, "tasks[0].status: unknown status 'started'"),
        ({"tasks": [{"id": 1, "title": "x", "priority": "p1"}]}, "tasks[0].priority: unknown priority 'p1'"),
        ({"tasks": [{"id": 1, "title": "x", "priority": 2}]}, "tasks[0].priority: expected a string, got int"),
        ({"tasks": [{"id": 1, "title": "x", "dependencies": "2"}]}, "tasks[0].dependencies: expected a list"),
        ({"tasks": [{"id": 1, "title": "x", "dependencies": [None]}]}, "tasks[0].dependencies[0]: expected a task id"),
        ({"tasks": [{"id": 1, "title": "x", "details": 3}]}, "tasks[0].details: expected a string, got int"),
        (
            {
                "master": {
                    "tasks": [
                        {"id": 1, "title": "a"},
                        {"id": 2, "title": "b"},
                        {"id": 3, "title": "c"},
                        {"id": 4, "title": "d", "subtasks": [{"id": 1, "title": "s"}, {"title": "t"}]},
                    ]
                }
            },
            "master.tasks[3].subtasks[1].id: missing",
        ),
        ({"tasks": [{"id": 1, "title": "x", "subtasks": [{"id": 1}]}]}, "tasks[0].subtasks[0].title: missing"),
        ({"tasks": [{"id": 1, "title": "x", "subtasks": "none"}]}, "tasks[0].subtasks: expected a list"),
    ],
)
def test_malformed_input_names_the_place(data: Any, message: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        import_tasks_json(data)
    assert caught.value.detail.startswith(message)
    assert caught.value.extra["path"] == message.split(":")[0]


def test_legacy_export_of_several_tags_is_refused() -> None:
    with pytest.raises(InvalidInput, match="one tag"):
        export_tasks_json({"a": [], "b": []}, legacy=True)


# --- round trip on generated files ------------------------------------------------------------------------------------

_WORDS = st.text(alphabet=st.characters(codec="utf-8", exclude_categories=("Cs",)), min_size=1, max_size=12)
_STATUS = st.sampled_from(
    ["pending", "in-progress", "done", "review", "deferred", "cancelled", "blocked", "completed", "Done", "todo"]
)
_PRIORITY = st.sampled_from(["high", "medium", "low", "critical", "High", "LOW", "lowest"])
_EXTRA_VALUES = st.one_of(st.none(), st.booleans(), st.integers(), _WORDS, st.lists(st.integers(), max_size=3))
_EXTRA_NAMES = st.sampled_from(["previousStatus", "acceptanceCriteria", "metadata", "createdAt", "effort", "tags"])
_OPTIONAL = ["description", "details", "testStrategy", "status", "priority", "dependencies"]


@st.composite
def task_objects(draw: st.DrawFn, *, task_id: Any, dependency_pool: list[Any], subtask: bool) -> dict[str, Any]:
    fields: dict[str, Any] = {"id": task_id, "title": draw(_WORDS.filter(lambda t: t.strip() != ""))}
    for name in draw(st.lists(st.sampled_from(_OPTIONAL), unique=True)):
        if name in {"description", "details", "testStrategy"}:
            fields[name] = draw(st.none() | _WORDS | st.just(""))
        elif name == "status":
            fields[name] = draw(_STATUS)
        elif name == "priority":
            fields[name] = draw(_PRIORITY)
        else:
            fields[name] = draw(st.lists(st.sampled_from(dependency_pool), max_size=4)) if dependency_pool else []
    for name in draw(st.lists(_EXTRA_NAMES, unique=True, max_size=2)):
        fields[name] = draw(_EXTRA_VALUES)
    if not subtask and draw(st.booleans()):
        fields["complexity"] = draw(st.integers(min_value=1, max_value=10) | st.just("complex"))
    names = list(fields)
    order = draw(st.permutations(names))
    return {name: fields[name] for name in order}


@st.composite
def tasks_files(draw: st.DrawFn) -> Any:
    count = draw(st.integers(min_value=0, max_value=6))
    string_ids = draw(st.booleans())
    ids: list[Any] = [str(n + 1) if string_ids else n + 1 for n in range(count)]
    pool: list[Any] = [*ids, 99, "7.7"]
    tasks: list[dict[str, Any]] = []
    for task_id in ids:
        task = draw(task_objects(task_id=task_id, dependency_pool=pool, subtask=False))
        children = draw(st.integers(min_value=0, max_value=3))
        if children or draw(st.booleans()):
            sub_pool: list[Any] = [*range(1, children + 1), *(f"{i}.1" for i in ids), *ids]
            task["subtasks"] = [
                draw(task_objects(task_id=n, dependency_pool=sub_pool, subtask=True)) for n in range(1, children + 1)
            ]
        tasks.append(task)
    layout = draw(st.sampled_from(["tagged", "legacy", "list"]))
    if layout == "list":
        return tasks
    if layout == "legacy":
        return {"tasks": tasks, "metadata": {"projectName": draw(_WORDS)}}
    master: dict[str, Any] = {"tasks": tasks, "metadata": {"created": "2025-01-01"}}
    if draw(st.booleans()):
        master = {"metadata": master["metadata"], "tasks": tasks}  # field order is kept too
    return {"master": master, "other": {"tasks": [], "metadata": {}}}


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(tasks_files())
def test_any_valid_file_round_trips_exactly(data: Any) -> None:
    document = read_tasks_json(copy.deepcopy(data))
    assert exact(write_tasks_json(document)) == exact(data)
    if isinstance(data, list):
        return
    bodies = [data] if "tasks" in data else list(data.values())
    if any(body["tasks"] for body in bodies):
        # the file's own fields ride on its first task: without any task only read/write keep them
        tags = import_tasks_json(copy.deepcopy(data))
        stored = {t: [PlannedTask.model_validate_json(x.model_dump_json()) for x in ts] for t, ts in tags.items()}
        assert exact(export_tasks_json(stored, legacy="tasks" in data)) == exact(data)
        every_key = {s.key for ts in tags.values() for t in ts for s in [t, *t.subtasks]}
        for tasks in tags.values():
            for task in tasks:
                for node in [task, *task.subtasks]:
                    assert set(node.dependencies) <= every_key
