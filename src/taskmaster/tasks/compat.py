"""claude-task-master compatibility: its tasks.json (npm `task-master-ai`) in and out, without losing anything.

Both of its layouts are read: tagged `{"<tag>": {"tasks": [...], "metadata": {...}}}` and the older flat
`{"tasks": [...], "metadata": {...}}` (or a bare list of tasks, read as tag "master").
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import ValidationError

from taskmaster.core.clock import utcnow
from taskmaster.core.errors import InvalidInput
from taskmaster.tasks.schemas import PlannedTask, TaskStatus

__all__ = [
    "COMPAT_KEY",
    "PRIORITY_FROM_WORD",
    "PRIORITY_TO_WORD",
    "STATUS_FROM_WORD",
    "STATUS_TO_WORD",
    "TasksJson",
    "export_tasks_json",
    "import_tasks_json",
    "read_tasks_json",
    "write_tasks_json",
]

COMPAT_KEY = "_ctm"
"""Key in `PlannedTask.extra` for what an exact round trip needs and no column holds: the id as written (1 or "1"),
the status and priority words when ours would differ ("completed", "High"), dependencies as written (including ones
that point nowhere), the original order of the fields, and the tag's own fields (metadata). Every entry is a hint:
export uses it only while it still agrees with the task, so edits made in Taskmaster always win."""

STATUS_FROM_WORD: dict[str, TaskStatus] = {
    "pending": "pending",
    "todo": "pending",
    "to-do": "pending",
    "open": "pending",
    "in-progress": "in_progress",
    "in_progress": "in_progress",
    "in progress": "in_progress",
    "review": "review",
    "in-review": "review",
    "done": "done",
    "completed": "done",
    "complete": "done",
    "blocked": "blocked",
    "deferred": "deferred",
    "cancelled": "cancelled",
    "canceled": "cancelled",
}
"""Their status words (and common variants, any case) → ours."""
STATUS_TO_WORD: dict[str, str] = {
    "pending": "pending",
    "in_progress": "in-progress",
    "review": "review",
    "done": "done",
    "blocked": "blocked",
    "deferred": "deferred",
    "cancelled": "cancelled",
}
PRIORITY_FROM_WORD: dict[str, int] = {
    "critical": 1,
    "highest": 1,
    "urgent": 1,
    "high": 2,
    "medium": 3,
    "normal": 3,
    "low": 4,
    "lowest": 5,
}
"""Their priority words → our 1 (highest) … 5. "critical" is tm-core's fourth word; the others are tolerated."""
PRIORITY_TO_WORD: dict[int, str] = {1: "critical", 2: "high", 3: "medium", 4: "low", 5: "low"}
"""Our priority → their word. They have no word below "low", so 5 is exported as "low" (and reads back as 4)."""

_STRING_FIELDS = {"description": "description", "details": "details", "testStrategy": "test_strategy"}
_STANDARD = frozenset(
    {"id", "title", "status", "priority", "dependencies", "subtasks", "complexity", "assignee"}
) | set(_STRING_FIELDS)


@dataclass
class TasksJson:
    """A whole tasks.json: its tags in file order, each tag's other fields (metadata, …), and its layout."""

    tags: dict[str, list[PlannedTask]]
    tag_fields: dict[str, dict[str, Any]] = field(default_factory=dict)
    """Everything in a tag's object besides "tasks" (for the flat layout: besides the top-level "tasks")."""
    shape: Literal["tagged", "legacy", "list"] = "tagged"
    field_order: dict[str, list[str]] = field(default_factory=dict)
    """A tag's keys as written, "tasks" included, when "tasks" does not come first."""


# --- reading ----------------------------------------------------------------------------------------------------------


def _fail(path: str, problem: str) -> InvalidInput:
    return InvalidInput(f"{path}: {problem}", path=path)


def _type_name(value: Any) -> str:
    return {dict: "an object", list: "a list", str: "a string", bool: "a boolean", type(None): "null"}.get(
        type(value), type(value).__name__
    )


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _canonical_int(text: str) -> int | None:
    """`int(text)` when writing that int back gives `text` exactly ("12" yes; "012", "+1", " 1" no)."""
    if text.isdigit() and text.isascii() and str(int(text)) == text:
        return int(text)
    return None


def _id_key(value: Any, path: str) -> str:
    if value is None:
        raise _fail(path, "missing")
    if _is_int(value):
        return str(value)
    if isinstance(value, str):
        if not value.strip():
            raise _fail(path, "empty")
        if len(value) > 99:
            # keys of subtasks ("<parent>.<id>") must stay within the 200 characters of a task key
            raise _fail(path, "longer than 99 characters")
        return value
    raise _fail(path, f"expected an integer or a string, got {_type_name(value)}")


def read_tasks_json(data: Any) -> TasksJson:
    """Parse a decoded tasks.json (any of its layouts) into tags of `PlannedTask`s.

    Keys are the original ids as strings ("3", or "auth-login"), subtasks "3.1"; dependencies are resolved to keys
    the way claude-task-master reads them (in a subtask a number is a sibling first). Malformed input raises
    `InvalidInput` naming the place, e.g. "master.tasks[3].subtasks[1].id: missing".
    """
    if isinstance(data, list):
        return TasksJson(tags={"master": _read_tasks(data, "tasks")}, tag_fields={"master": {}}, shape="list")
    if not isinstance(data, dict):
        raise _fail("tasks.json", f"expected an object or a list of tasks, got {_type_name(data)}")
    if isinstance(data.get("tasks"), list):
        fields = {k: copy.deepcopy(v) for k, v in data.items() if k != "tasks"}
        order = {"master": list(data)} if list(data)[:1] != ["tasks"] else {}
        tasks = _read_tasks(data["tasks"], "tasks")
        return TasksJson(tags={"master": tasks}, tag_fields={"master": fields}, shape="legacy", field_order=order)
    tags: dict[str, list[PlannedTask]] = {}
    tag_fields: dict[str, dict[str, Any]] = {}
    field_order: dict[str, list[str]] = {}
    for tag, body in data.items():
        if not isinstance(tag, str) or not tag:
            raise _fail("tasks.json", "tag names must be non-empty strings")
        if not isinstance(body, dict):
            raise _fail(tag, f"expected an object with a 'tasks' list, got {_type_name(body)}")
        if "tasks" not in body:
            raise _fail(f"{tag}.tasks", "missing")
        if not isinstance(body["tasks"], list):
            raise _fail(f"{tag}.tasks", f"expected a list, got {_type_name(body['tasks'])}")
        tags[tag] = _read_tasks(body["tasks"], f"{tag}.tasks")
        tag_fields[tag] = {k: copy.deepcopy(v) for k, v in body.items() if k != "tasks"}
        if list(body)[:1] != ["tasks"]:
            field_order[tag] = list(body)
    return TasksJson(tags=tags, tag_fields=tag_fields, shape="tagged", field_order=field_order)


def _read_tasks(items: list[Any], path: str) -> list[PlannedTask]:
    # first pass: every key, so that dependencies (forward ones too) can be resolved
    seen: dict[str, str] = {}
    subtask_keys: dict[str, set[str]] = {}
    for index, item in enumerate(items):
        here = f"{path}[{index}]"
        if not isinstance(item, dict):
            raise _fail(here, f"expected an object, got {_type_name(item)}")
        key = _id_key(item.get("id"), f"{here}.id")
        if key in seen:
            raise _fail(f"{here}.id", f"duplicate id {item['id']!r} (first at {seen[key]})")
        seen[key] = here
        children = item.get("subtasks")
        if children is None:
            continue
        if not isinstance(children, list):
            raise _fail(f"{here}.subtasks", f"expected a list, got {_type_name(children)}")
        siblings: set[str] = set()
        for sub_index, child in enumerate(children):
            sub_here = f"{here}.subtasks[{sub_index}]"
            if not isinstance(child, dict):
                raise _fail(sub_here, f"expected an object, got {_type_name(child)}")
            sub_key = _subtask_key(key, _id_key(child.get("id"), f"{sub_here}.id"))
            if sub_key in seen:
                raise _fail(f"{sub_here}.id", f"duplicate id {child['id']!r} (first at {seen[sub_key]})")
            seen[sub_key] = sub_here
            siblings.add(sub_key)
        subtask_keys[key] = siblings
    keys = set(seen)
    top_keys = {k for k, where in seen.items() if ".subtasks[" not in where}
    refs: dict[str, _Ref] = {}
    for item in items:
        parent_key = str(item["id"])
        refs[parent_key] = _Ref(item["id"])
        for child in item.get("subtasks") or []:
            refs[_subtask_key(parent_key, str(child["id"]))] = _Ref(child["id"], item["id"])
    out: list[PlannedTask] = []
    for index, item in enumerate(items):
        here = f"{path}[{index}]"
        key = str(item["id"])
        subtasks = [
            _read_task(
                child,
                f"{here}.subtasks[{sub_index}]",
                parent=key,
                keys=keys,
                top_keys=top_keys,
                siblings=subtask_keys.get(key, set()),
                refs=refs,
            )
            for sub_index, child in enumerate(item.get("subtasks") or [])
        ]
        out.append(
            _read_task(
                item, here, parent=None, keys=keys, top_keys=top_keys, siblings=set(), refs=refs, subtasks=subtasks
            )
        )
    return out


def _subtask_key(parent: str, sub_id: str) -> str:
    return sub_id if sub_id.startswith(parent + ".") else f"{parent}.{sub_id}"


def _resolve_dependency(
    value: Any, parent: str | None, top_keys: set[str], keys: set[str], siblings: set[str]
) -> str | None:
    """The key a dependency value points at, as claude-task-master reads it; None when it points nowhere.

    "3.1" is subtask 1 of task 3. In a subtask a number means a sibling ("2" in task 3 is 3.2) and then a
    top-level task, while a string of digits means a top-level task and then a sibling: that is how a subtask
    names top-level task 2 when it has a sibling 2. A subtask never waits for its own parent.
    """
    if not (_is_int(value) or isinstance(value, str)) or value == "":
        return None
    text = str(value)
    sibling = f"{parent}.{text}" if parent is not None and "." not in text else None
    if sibling is not None and _is_int(value) and sibling in siblings:
        return sibling
    if text in keys and text != parent:
        return text
    if sibling is not None and sibling in siblings:
        return sibling
    return None


def _read_task(
    item: dict[str, Any],
    path: str,
    *,
    parent: str | None,
    keys: set[str],
    top_keys: set[str],
    siblings: set[str],
    refs: dict[str, _Ref] | None = None,
    subtasks: list[PlannedTask] | None = None,
) -> PlannedTask:
    raw_id = item["id"]
    key = _id_key(raw_id, f"{path}.id")
    if parent is not None:
        key = _subtask_key(parent, key)
    meta: dict[str, Any] = {}
    extra: dict[str, Any] = {}
    values: dict[str, Any] = {"key": key}

    if "title" not in item:
        raise _fail(f"{path}.title", "missing")
    title = item["title"]
    if not isinstance(title, str):
        raise _fail(f"{path}.title", f"expected a string, got {_type_name(title)}")
    if not title.strip():
        raise _fail(f"{path}.title", "empty")
    if len(title) > 500:
        raise _fail(f"{path}.title", "longer than 500 characters")
    values["title"] = title

    for name, attribute in _STRING_FIELDS.items():
        if name in item:
            value = item[name]
            if value is not None and not isinstance(value, str):
                raise _fail(f"{path}.{name}", f"expected a string, got {_type_name(value)}")
            values[attribute] = value

    if "status" in item:
        word = item["status"]
        if not isinstance(word, str):
            raise _fail(f"{path}.status", f"expected a string, got {_type_name(word)}")
        status = STATUS_FROM_WORD.get(word.strip().lower())
        if status is None:
            allowed = ", ".join(sorted(set(STATUS_TO_WORD.values())))
            raise _fail(f"{path}.status", f"unknown status {word!r} (expected one of {allowed})")
        values["status"] = status
        if STATUS_TO_WORD[status] != word:
            meta["status"] = word

    if "priority" in item:
        word = item["priority"]
        if word is None:
            meta["priority"] = None
        elif not isinstance(word, str):
            raise _fail(f"{path}.priority", f"expected a string, got {_type_name(word)}")
        else:
            level = PRIORITY_FROM_WORD.get(word.strip().lower())
            if level is None:
                raise _fail(f"{path}.priority", f"unknown priority {word!r} (expected critical, high, medium or low)")
            values["priority"] = level
            if PRIORITY_TO_WORD[level] != word:
                meta["priority"] = word

    if "dependencies" in item:
        raw = item["dependencies"]
        if not isinstance(raw, list):
            raise _fail(f"{path}.dependencies", f"expected a list, got {_type_name(raw)}")
        resolved: list[str] = []
        for index, value in enumerate(raw):
            if not (_is_int(value) or isinstance(value, str)):
                raise _fail(f"{path}.dependencies[{index}]", f"expected a task id, got {_type_name(value)}")
            target = _resolve_dependency(value, parent, top_keys, keys, siblings)
            if target is not None and target not in resolved:
                resolved.append(target)
        values["dependencies"] = resolved

    complexity = item.get("complexity")
    if isinstance(complexity, int) and not isinstance(complexity, bool) and 1 <= complexity <= 10:
        values["complexity"] = complexity
    assignee = item.get("assignee")
    if isinstance(assignee, str) and len(assignee) <= 200:
        values["assignee"] = assignee

    for name, value in item.items():
        if name == COMPAT_KEY:
            raise _fail(f"{path}.{name}", "this field name is reserved by Taskmaster")
        handled = name in _STANDARD and (
            name not in {"complexity", "assignee", "subtasks"}
            or name in values
            or (name == "subtasks" and parent is None)
        )
        if not handled:
            extra[name] = copy.deepcopy(value)

    if subtasks is not None:
        values["subtasks"] = subtasks
    try:
        task = PlannedTask(**values, extra=extra)
    except ValidationError as error:  # pragma: no cover - every field is checked above
        raise _fail(path, str(error)) from error

    # what export would write from the task alone; record only what differs
    if (
        "dependencies" in item
        and refs is not None
        and _dependencies_out(task.dependencies, parent, refs) != item["dependencies"]
    ):
        meta["dependencies"] = copy.deepcopy(item["dependencies"])
    if _id_out(key, parent) != raw_id:
        meta["id"] = raw_id
    if list(item) != _canonical_keys(task, parent is not None) or any(
        name in item and item[name] is None for name in _STRING_FIELDS
    ):
        # the fields as written (which, in which order, and which were null) when export alone would differ
        meta["keys"] = list(item)
    if meta:
        task.extra[COMPAT_KEY] = meta
    return task


# --- writing ----------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Ref:
    """How one task is named in the file: its own id, and its parent's id for a subtask."""

    own: int | str
    parent: int | str | None = None

    def full(self) -> str:
        """The id as a dependency elsewhere writes it: "3" or "3.1"."""
        if self.parent is None or str(self.own).startswith(f"{self.parent}."):
            return str(self.own)
        return f"{self.parent}.{self.own}"


def _id_out(key: str, parent: str | None) -> int | str:
    local = key[len(parent) + 1 :] if parent is not None and key.startswith(parent + ".") else key
    number = _canonical_int(local)
    return number if number is not None else local


def _dependencies_out(deps: list[str], parent: str | None, refs: dict[str, _Ref]) -> list[Any]:
    """Dependencies in their notation: ids for top-level tasks and siblings, "3.1" strings for other subtasks."""
    out: list[Any] = []
    parent_ref = refs.get(parent) if parent is not None else None
    siblings = {ref.own for ref in refs.values() if parent_ref is not None and ref.parent == parent_ref.own}
    for dep in deps:
        ref = refs[dep]
        if ref.parent is None:
            # from a subtask, the number N is sibling N when there is one: top-level task N is then written "N"
            clash = parent_ref is not None and _is_int(ref.own) and ref.own in siblings
            out.append(str(ref.own) if clash else ref.own)
        elif parent_ref is not None and ref.parent == parent_ref.own:
            out.append(ref.own)
        else:
            out.append(ref.full())
    return out


def _canonical_keys(task: PlannedTask, is_subtask: bool) -> list[str]:
    names = ["id", "title", "description", "status", "dependencies"]
    if not is_subtask or task.priority != 3:
        names.append("priority")
    for name in ("details", "testStrategy"):
        if not is_subtask or getattr(task, _STRING_FIELDS[name]) is not None:
            names.append(name)
    if task.complexity is not None:
        names.append("complexity")
    if task.assignee is not None:
        names.append("assignee")
    if not is_subtask and task.subtasks:
        names.append("subtasks")
    names.extend(k for k in task.extra if k != COMPAT_KEY and k not in names)
    return names


def _meta(task: PlannedTask) -> dict[str, Any]:
    meta = task.extra.get(COMPAT_KEY)
    return meta if isinstance(meta, dict) else {}


def _flatten(task: PlannedTask) -> list[PlannedTask]:
    """Subtasks at any depth, depth-first: claude-task-master has one level of subtasks."""
    out: list[PlannedTask] = []
    for child in task.subtasks:
        out.append(child)
        out.extend(_flatten(child))
    return out


def _own_id(task: PlannedTask, parent: str | None) -> int | str | None:
    """The id as first written, while it still names this key; else the canonical one (None: needs a number)."""
    raw = _meta(task).get("id")
    if (isinstance(raw, int) and not isinstance(raw, bool)) or isinstance(raw, str):
        local = str(raw)
        if (_subtask_key(parent, local) if parent is not None else local) == task.key:
            return raw
    if parent is not None and not (task.key.startswith(parent + ".") and "." not in task.key[len(parent) + 1 :]):
        return None
    return _id_out(task.key, parent)


def _refs(tasks: list[PlannedTask], tag: str) -> tuple[dict[str, _Ref], dict[str, list[PlannedTask]]]:
    refs: dict[str, _Ref] = {}
    children: dict[str, list[PlannedTask]] = {}
    for index, task in enumerate(tasks):
        if task.key in refs:
            raise _fail(f"{tag}[{index}].key", f"duplicate key {task.key!r}")
        own = _own_id(task, None)
        assert own is not None
        refs[task.key] = _Ref(own)
    for index, task in enumerate(tasks):
        parent_id = refs[task.key].own
        flat = _flatten(task)
        children[task.key] = flat
        taken: set[str] = set()
        pending: list[PlannedTask] = []
        for child in flat:
            if child.key in refs:
                raise _fail(f"{tag}[{index}].subtasks", f"duplicate key {child.key!r}")
            own = _own_id(child, task.key)
            if own is None or str(own) in taken:
                pending.append(child)
                refs[child.key] = _Ref(0, parent_id)
                continue
            taken.add(str(own))
            refs[child.key] = _Ref(own, parent_id)
        number = 0
        for child in pending:
            # keys that are not "<parent>.<n>" (a deeper subtask, a store's own numbering) get the next free number
            number += 1
            while str(number) in taken:
                number += 1
            taken.add(str(number))
            refs[child.key] = _Ref(number, parent_id)
    return refs, children


def _task_out(
    task: PlannedTask,
    *,
    parent: str | None,
    refs: dict[str, _Ref],
    subtasks: list[dict[str, Any]] | None,
    path: str,
) -> dict[str, Any]:
    meta = _meta(task)
    is_subtask = parent is not None
    for dep in task.dependencies:
        if dep not in refs:
            raise _fail(f"{path}.dependencies", f"unknown task key {dep!r}")
    dependencies: list[Any] = _dependencies_out(task.dependencies, parent, refs)
    raw_deps = meta.get("dependencies")
    if isinstance(raw_deps, list):
        top_keys = {k for k, r in refs.items() if r.parent is None}
        siblings = {k for k in refs if parent is not None and k.startswith(parent + ".")}
        resolved: list[str] = []
        for value in raw_deps:
            target = _resolve_dependency(value, parent, top_keys, set(refs), siblings)
            if target is not None and target not in resolved:
                resolved.append(target)
        if resolved == task.dependencies:
            dependencies = copy.deepcopy(raw_deps)
    status: Any = STATUS_TO_WORD[task.status]
    word = meta.get("status")
    if isinstance(word, str) and STATUS_FROM_WORD.get(word.strip().lower()) == task.status:
        status = word
    priority: Any = PRIORITY_TO_WORD[task.priority]
    if "priority" in meta:
        word = meta["priority"]
        if (word is None and task.priority == 3) or (
            isinstance(word, str) and PRIORITY_FROM_WORD.get(word.strip().lower()) == task.priority
        ):
            priority = word
    recorded = meta.get("keys")
    exact = isinstance(recorded, list)
    values: dict[str, Any] = {
        "id": refs[task.key].own,
        "title": task.title,
        "status": status,
        "dependencies": dependencies,
        "priority": priority,
    }
    for name, attribute in _STRING_FIELDS.items():
        value = getattr(task, attribute)
        # a field the file had as null stays null; one Taskmaster never had is written "" (theirs are strings)
        values[name] = value if value is not None or exact else ""
    if task.complexity is not None:
        values["complexity"] = task.complexity
    if task.assignee is not None:
        values["assignee"] = task.assignee
    if subtasks is not None:
        values["subtasks"] = subtasks
    extras = {k: copy.deepcopy(v) for k, v in task.extra.items() if k != COMPAT_KEY}
    canonical = _canonical_keys(task, is_subtask)
    names = list(recorded) if isinstance(recorded, list) else canonical
    if exact:
        # what changed in Taskmaster since the import is written; fields the file lacked and still empty stay absent
        for name in canonical:
            if name not in names and (name in extras or _changed(name, task, subtasks)):
                names.append(name)
    out: dict[str, Any] = {}
    for name in names:
        # our fields first; a foreign field of the same name (a non-numeric "complexity") when ours is unset
        if name in values:
            out[name] = values[name]
        elif name in extras:
            out[name] = extras[name]
    for name, value in extras.items():
        out.setdefault(name, value)
    return out


def _changed(name: str, task: PlannedTask, subtasks: list[dict[str, Any]] | None) -> bool:
    if name in _STRING_FIELDS:
        return getattr(task, _STRING_FIELDS[name]) is not None
    return {
        "id": True,
        "title": True,
        "status": task.status != "pending",
        "priority": task.priority != 3,
        "dependencies": bool(task.dependencies),
        "subtasks": bool(subtasks),
        "complexity": task.complexity is not None,
        "assignee": task.assignee is not None,
    }.get(name, False)


def _tag_out(tasks: list[PlannedTask], tag: str) -> list[dict[str, Any]]:
    refs, children = _refs(tasks, tag)
    out: list[dict[str, Any]] = []
    for index, task in enumerate(tasks):
        here = f"{tag}[{index}]"
        subtasks = [
            _task_out(child, parent=task.key, refs=refs, subtasks=None, path=f"{here}.subtasks[{sub_index}]")
            for sub_index, child in enumerate(children[task.key])
        ]
        has_field = "subtasks" in (_meta(task).get("keys") or [])
        out.append(
            _task_out(task, parent=None, refs=refs, subtasks=subtasks if subtasks or has_field else None, path=here)
        )
    return out


def write_tasks_json(document: TasksJson) -> dict[str, Any] | list[Any]:
    """The tasks.json text (as data) for `document`, in the layout it was read from."""
    if document.shape in {"legacy", "list"}:
        if len(document.tags) != 1:
            raise InvalidInput(
                f"the legacy tasks.json layout holds one tag; got {len(document.tags)}", path="tasks.json"
            )
        tag, tasks = next(iter(document.tags.items()))
        rendered = _tag_out(tasks, "tasks")
        if document.shape == "list":
            return rendered
        fields = document.tag_fields.get(tag) or {"metadata": _default_metadata()}
        return _with_tasks(rendered, fields, document.field_order.get(tag))
    out: dict[str, Any] = {}
    for tag, tasks in document.tags.items():
        fields = document.tag_fields.get(tag) or {"metadata": _default_metadata()}
        out[tag] = _with_tasks(_tag_out(tasks, f"{tag}.tasks"), fields, document.field_order.get(tag))
    return out


def _with_tasks(rendered: list[dict[str, Any]], fields: dict[str, Any], order: list[str] | None) -> dict[str, Any]:
    body = {"tasks": rendered, **copy.deepcopy(fields)}
    if order is not None and set(order) == set(body):
        return {name: body[name] for name in order}
    return body


def _default_metadata() -> dict[str, Any]:
    now = utcnow().isoformat().replace("+00:00", "Z")
    return {"created": now, "updated": now, "description": "Exported from Taskmaster"}


def import_tasks_json(data: dict[str, Any] | list[Any]) -> dict[str, list[PlannedTask]]:
    """claude-task-master's tasks.json → planned tasks by tag (the flat layout becomes tag "master").

    Keys are the original ids as strings, subtasks "P.S"; statuses map in-progress → in_progress (etc.), priorities
    critical → 1, high → 2, medium → 3, low → 4 (and the lenient "highest"/"lowest" → 1/5). Fields with no column
    are kept in `extra`; what an exact export needs besides (ids as written, words, field order, the tag's
    metadata) is kept in `extra["_ctm"]`. See `read_tasks_json` for the errors.
    """
    document = read_tasks_json(data)
    carrier = next((tasks[0] for tasks in document.tags.values() if tasks), None)
    if carrier is not None:
        # the file's own fields (each tag's metadata, its layout) ride on its first task, so that a round trip
        # through the task store keeps them, empty tags included
        meta = dict(_meta(carrier))
        meta["file"] = {"shape": document.shape, "tags": copy.deepcopy(document.tag_fields)}
        if document.field_order:
            meta["file"]["order"] = copy.deepcopy(document.field_order)
        carrier.extra[COMPAT_KEY] = meta
    return document.tags


def export_tasks_json(tagged: dict[str, list[PlannedTask]], *, legacy: bool = False) -> dict[str, Any]:
    """Planned tasks by tag → claude-task-master's tasks.json (tagged, or the flat layout with `legacy=True`).

    Tasks that came from `import_tasks_json` are written back exactly as they were read, unless changed since.
    Other tasks get its canonical form: integer ids where the key is a number, subtasks numbered within their
    parent ("P.S" keys keep S), deeper subtasks flattened into their top-level task, priority 1 → "critical",
    2 → "high", 3 → "medium", 4 and 5 → "low". `type` and `source_section` have no field there and are not written.
    """
    if legacy and len(tagged) != 1:
        raise InvalidInput(f"the legacy tasks.json layout holds one tag; got {len(tagged)}", path="tasks.json")
    cleaned: dict[str, list[PlannedTask]] = {}
    fields: dict[str, dict[str, Any]] = {}
    orders: dict[str, list[str]] = {}
    for tag, tasks in tagged.items():
        copies: list[PlannedTask] = []
        for task in tasks:
            meta = _meta(task)
            if "file" in meta:
                stored = meta["file"] if isinstance(meta["file"], dict) else {}
                for name, value in (stored.get("tags") or {}).items():
                    if isinstance(value, dict):
                        fields.setdefault(name, copy.deepcopy(value))
                for name, value in (stored.get("order") or {}).items():
                    if isinstance(value, list):
                        orders.setdefault(name, list(value))
                rest = {k: v for k, v in meta.items() if k != "file"}
                extra = {k: v for k, v in task.extra.items() if k != COMPAT_KEY}
                if rest:
                    extra[COMPAT_KEY] = rest
                task = task.model_copy(update={"extra": extra})
            copies.append(task)
        cleaned[tag] = copies
    if not legacy:
        # Tags the imported file had but that hold no task now (or never did) come back empty, in file order.
        cleaned = {tag: cleaned.get(tag, []) for tag in [*fields, *cleaned]}
    fields = {tag: value for tag, value in fields.items() if tag in cleaned}
    shape: Literal["tagged", "legacy"] = "legacy" if legacy else "tagged"
    result = write_tasks_json(TasksJson(tags=cleaned, tag_fields=fields, shape=shape, field_order=orders))
    assert isinstance(result, dict)
    return result
