"""PRD -> tasks with a language model: chunks parsed in parallel, merged into one plan with no dangling or circular
dependency; plus subtasks (expand) and complexity scores for existing tasks.
"""

from __future__ import annotations

import asyncio
import difflib
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from string import Template
from typing import Any, Literal, NamedTuple, Protocol, TypeVar

import structlog
from pydantic import BaseModel, Field, field_validator, model_validator

from taskmaster.core import graph
from taskmaster.core.errors import InvalidInput
from taskmaster.costs.usage import Usage
from taskmaster.tasks.planner.chunking import DEFAULT_MAX_CHARS, Chunk, chunk_document, format_path, outline
from taskmaster.tasks.schemas import PlannedTask, TaskType
from taskmaster.templates.syntax import check, default_text, render_source

log = structlog.stdlib.get_logger("taskmaster.tasks.planner.llm")

M = TypeVar("M", bound=BaseModel)
Progress = Callable[[int, int], None]

# Output budgets: a 12k-character chunk yields a few dozen tasks with details, well within these.
PLAN_MAX_TOKENS = 16_384
SMALL_MAX_TOKENS = 8_192
# What a prompt may carry about the rest of the document; past this it costs more than it helps.
KNOWN_TITLES_LIMIT = 150
OUTLINE_LIMIT = 4_000
TEXT_LIMIT = 500
# Titles at least this similar (difflib ratio, after normalisation) in different chunks are one task.
DUPLICATE_SIMILARITY = 0.92
# A dependency named by a title that is not exact resolves to the closest title at least this similar.
DEPENDENCY_SIMILARITY = 0.85

SYSTEM_PROMPT = (
    "You are a senior engineer breaking a product requirements document (PRD) into implementation tasks for "
    "coding agents. Tasks are concrete, independently verifiable units of a few hours to a few days of work. "
    "Do not invent requirements the text does not state or clearly imply. Answer only through the structured "
    "format you are given."
)

PLAN_TEMPLATE = "prd.parse"
"""The stored template (and shipped default `templates/defaults/prd.parse.j2`) a PRD chunk's prompt renders from."""
EXPAND_TEMPLATE = "task.expand"
"""The stored template (and shipped default `task.expand.j2`) of the prompt that splits a task into subtasks."""

DEFAULT_COMPLEXITY_PROMPT = """\
Score the implementation complexity of each task below from 1 (trivial) to 10 (very hard: research, many
components, high risk), with a short reasoning naming what drives the score. Score every id exactly once.

$tasks
"""

_PLAN_FIELDS = frozenset({"chunk_text", "heading_path", "target_tasks", "known_titles", "outline"})
_EXPAND_FIELDS = frozenset({"title", "description", "details", "test_strategy", "num", "context"})
_COMPLEXITY_FIELDS = frozenset({"tasks"})


class StructuredModel(Protocol):
    """The one call the planners make (`taskmaster.agents.llm.LlmProvider` has it; `tasks` may not import it)."""

    @property
    def name(self) -> str: ...

    @property
    def model(self) -> str: ...

    async def structured(
        self, *, system: str, prompt: str, schema: type[M], max_tokens: int = ..., usage: Usage | None = ...
    ) -> M:
        """`usage`, when given, adds up the tokens of each request the call makes."""
        ...


class TaskLike(Protocol):
    """What `expand_with_llm` and `analyze_complexity_with_llm` read of a task (a `PlannedTask`, a row, ...)."""

    @property
    def title(self) -> str: ...

    @property
    def description(self) -> str | None: ...

    @property
    def details(self) -> str | None: ...

    @property
    def test_strategy(self) -> str | None: ...


# ---------------------------------------------------------------------------------------------- response models


def _required_text(value: str) -> str:
    value = value.strip()
    if not value:
        raise ValueError("must not be empty")
    return value


class LlmTask(BaseModel):
    """One task found in the text."""

    id: str = Field(description="Short id, unique in this answer: t1, t2, ...")
    title: str = Field(description="Imperative and specific, under 80 characters")
    description: str = Field(description="One or two sentences: what and why")
    details: str | None = Field(None, description="How to implement it: components, data, edge cases")
    test_strategy: str | None = Field(None, description="How to verify it is done")
    priority: int = Field(ge=1, le=5, description="1 = must have / highest ... 5 = nice to have")
    type: TaskType = Field(description="feature, bug, chore, test or docs")
    complexity: int | None = Field(None, ge=1, le=10, description="1 = trivial ... 10 = very hard")
    dependencies: list[str] = Field(
        default_factory=list,
        description="What must be done first: ids from this answer, or exact titles of tasks from other parts",
    )
    section: str | None = Field(None, description="The heading in the text this task comes from")

    _text = field_validator("id", "title")(_required_text)

    @field_validator("type", mode="before")
    @classmethod
    def _lower_type(cls, value: object) -> object:
        return value.strip().lower() if isinstance(value, str) else value


def _unique_ids(tasks: list[LlmTask]) -> None:
    seen: set[str] = set()
    repeated: set[str] = set()
    for task in tasks:
        (repeated if task.id in seen else seen).add(task.id)
    if repeated:
        raise ValueError(f"ids must be unique in the answer; repeated: {', '.join(sorted(repeated))}")


class ChunkPlan(BaseModel):
    """The tasks needed to build what this part of the PRD asks for."""

    tasks: list[LlmTask]

    @model_validator(mode="after")
    def _check_ids(self) -> ChunkPlan:
        _unique_ids(self.tasks)
        return self


class SubtaskPlan(BaseModel):
    """The subtasks that together complete the task."""

    subtasks: list[LlmTask]

    @model_validator(mode="after")
    def _check_ids(self) -> SubtaskPlan:
        _unique_ids(self.subtasks)
        return self


class LlmComplexity(BaseModel):
    """One task's complexity score."""

    id: str = Field(description="The task's id as given")
    score: int = Field(ge=1, le=10, description="1 = trivial ... 10 = very hard")
    reasoning: str = Field(description="What drives the score, in one or two sentences")


class ComplexityAnswer(BaseModel):
    """Complexity scores for the listed tasks."""

    scores: list[LlmComplexity]


# ---------------------------------------------------------------------------------------------- results


IssueKind = Literal["unresolved_dependency", "self_dependency", "cycle_broken", "duplicate_merged"]


@dataclass(frozen=True, slots=True)
class PlanIssue:
    """Something the merge changed in what the model said: a dropped dependency, a broken cycle, a merged task."""

    kind: IssueKind
    key: str
    message: str
    ref: str | None = None


class ComplexityScore(NamedTuple):
    """A task's score (1-10) and the model's reasoning."""

    key: str
    score: int
    reasoning: str


# ---------------------------------------------------------------------------------------------- PRD -> plan


async def plan_with_llm(
    provider: StructuredModel,
    text: str,
    *,
    num_tasks: int | None = None,
    prompt_template: str | None = None,
    concurrency: int = 4,
    progress: Progress | None = None,
    issues: list[PlanIssue] | None = None,
    max_chunk_chars: int = DEFAULT_MAX_CHARS,
    max_tokens: int = PLAN_MAX_TOKENS,
    template_ref: str = PLAN_TEMPLATE,
    usage: Usage | None = None,
) -> list[PlannedTask]:
    """The PRD `text` as a plan: keys "1".."n" in document order, dependencies by key, each task's PRD section.

    The document is cut along its headings (`chunk_document`); chunks are parsed by `provider` in parallel, at
    most `concurrency` at a time, each prompt listing the titles already found elsewhere (nearest chunks first)
    so that the model can depend on them by title. The answers are merged: tasks with the same or nearly the
    same title in different parts become one (the first keeps its key, the highest priority and the others'
    details); dependencies resolve by local id within a chunk, then by title, then by section heading (the
    section's final tasks), then by the closest title, forward ones included. What resolves to nothing is
    dropped; a cycle the model produced is broken with `core.graph.fix`. Each such change is logged and, when
    `issues` is given, appended to it. `prompt_template` (Jinja2, e.g. the stored version of `prd.parse`, named
    `template_ref` in errors; the shipped default otherwise) uses `chunk_text`, `heading_path`, `target_tasks`,
    `known_titles` and `outline`; `usage` counts the tokens of every request. `progress(done, total)` is called with
    0 first, then after each chunk. `num_tasks` is a target spread over chunks by size, not a cap.
    Raises the provider's error if any chunk fails (the other calls are cancelled), InvalidInput on bad input.
    """
    if concurrency < 1:
        raise InvalidInput("concurrency must be at least 1")
    if num_tasks is not None and num_tasks < 1:
        raise InvalidInput("num_tasks must be at least 1")
    source = prompt_template if prompt_template is not None else default_text(PLAN_TEMPLATE)
    check(source, name=template_ref, allowed=_PLAN_FIELDS, required={"chunk_text"})
    chunks = chunk_document(text, max_chars=max_chunk_chars)
    if not chunks:
        raise InvalidInput("the PRD has no text")
    document_outline = _outline_text(outline(text))
    total_chars = sum(len(chunk.text) for chunk in chunks)
    answers: list[ChunkPlan] = [ChunkPlan(tasks=[])] * len(chunks)
    known: list[tuple[int, str]] = []
    semaphore = asyncio.Semaphore(concurrency)
    done = 0
    if progress is not None:
        progress(0, len(chunks))

    async def parse(chunk: Chunk) -> None:
        nonlocal done
        async with semaphore:
            # Rendered once a slot is free, not when queued: by then more titles are known.
            part = f" (part {chunk.part} of {chunk.parts})" if chunk.parts > 1 else ""
            variables = {
                "chunk_text": chunk.text,
                "heading_path": chunk.section + part,
                "target_tasks": _target(num_tasks, len(chunk.text), total_chars),
                "known_titles": _known_titles(known, chunk.index),
                "outline": document_outline,
            }
            prompt = render_source(source, variables, name=template_ref)
            answer = await provider.structured(
                system=SYSTEM_PROMPT, prompt=prompt, schema=ChunkPlan, max_tokens=max_tokens, usage=usage
            )
        answers[chunk.index] = answer
        known.extend((chunk.index, task.title) for task in answer.tasks)
        done += 1
        log.debug("prd chunk parsed", chunk=chunk.index, section=chunk.section, tasks=len(answer.tasks))
        if progress is not None:
            progress(done, len(chunks))

    await _run_all([parse(chunk) for chunk in chunks])
    found: list[PlanIssue] = []
    plan = _merge(chunks, answers, found)
    for issue in found:
        log.info("prd plan adjusted", kind=issue.kind, key=issue.key, ref=issue.ref, detail=issue.message)
    if issues is not None:
        issues.extend(found)
    log.info("prd parsed", provider=provider.name, chunks=len(chunks), tasks=len(plan), adjustments=len(found))
    return plan


async def _run_all(coroutines: list[Any]) -> None:
    """Await all; on the first failure cancel the rest and raise that failure itself (not an ExceptionGroup)."""
    try:
        async with asyncio.TaskGroup() as group:
            for coroutine in coroutines:
                group.create_task(coroutine)
    except BaseExceptionGroup as failed:
        # Callers catch TaskmasterError subclasses, which an ExceptionGroup would hide.
        raise failed.exceptions[0] from None


def _target(num_tasks: int | None, size: int, total: int) -> str:
    if num_tasks is None:
        return "as many tasks as this part needs (typically one per distinct requirement or component)"
    share = max(1, round(num_tasks * size / total))
    return f"about {share} task(s) for this part (about {num_tasks} for the whole document)"


def _known_titles(known: list[tuple[int, str]], index: int) -> str:
    if not known:
        return "(none yet)"
    nearest = sorted(known, key=lambda item: abs(item[0] - index))[:KNOWN_TITLES_LIMIT]
    nearest.sort(key=lambda item: item[0])
    return "\n".join(f"- {title}" for _, title in nearest)


def _outline_text(paths: list[tuple[str, ...]]) -> str:
    lines: list[str] = []
    size = 0
    for path in paths:
        if len(path) > 2:
            continue
        line = "  " * (len(path) - 1) + "- " + path[-1]
        if size + len(line) > OUTLINE_LIMIT:
            lines.append("- ...")
            break
        lines.append(line)
        size += len(line) + 1
    return "\n".join(lines) or "(no headings)"


def _template(text: str, allowed: frozenset[str], *, required: set[str]) -> Template:
    """The prompt as a `string.Template`, refusing unknown or missing placeholders (a typo would go unseen)."""
    template = Template(text)
    if not template.is_valid():
        raise InvalidInput("the prompt template has a `$` that starts no placeholder: write `$$` for a dollar sign")
    names = set(template.get_identifiers())
    if unknown := names - allowed:
        raise InvalidInput(
            f"the prompt template uses unknown placeholders: {', '.join(sorted(unknown))}"
            f" (known: {', '.join(sorted(allowed))})"
        )
    if missing := required - names:
        raise InvalidInput(f"the prompt template lacks {', '.join('$' + name for name in sorted(missing))}")
    return template


# ---------------------------------------------------------------------------------------------- merge


_WORD = re.compile(r"[a-z0-9]+")
_FILLER = frozenset({"a", "an", "the", "and", "of", "for", "to", "with", "in", "on"})


def title_signature(title: str) -> str:
    """A title reduced to what identifies it: lower case, words only, no filler words, no plural `s`."""
    words = []
    for word in _WORD.findall(title.lower()):
        if word in _FILLER:
            continue
        if len(word) > 3 and word.endswith("s") and not word.endswith("ss"):
            word = word[:-1]
        words.append(word)
    return " ".join(words) or title.strip().lower()


def _heading_signature(heading: str) -> str:
    return " ".join(heading.lower().strip().strip("#").split())


@dataclass(eq=False, slots=True)
class _Entry:
    """One task of one chunk's answer while the answers are merged."""

    order: int
    chunk: int
    local: LlmTask
    path: tuple[str, ...]
    signature: str
    priority: int
    complexity: int | None
    details: str | None
    test_strategy: str | None
    key: str = ""
    survivor: _Entry | None = None
    merged_from: list[str] = field(default_factory=list)
    dependencies: dict[str, None] = field(default_factory=dict)

    def canonical(self) -> _Entry:
        entry = self
        while entry.survivor is not None:
            entry = entry.survivor
        return entry


def _merge(chunks: Sequence[Chunk], answers: Sequence[ChunkPlan], issues: list[PlanIssue]) -> list[PlannedTask]:
    entries: list[_Entry] = []
    local_ids: list[dict[str, _Entry]] = []
    for chunk, answer in zip(chunks, answers, strict=True):
        ids: dict[str, _Entry] = {}
        for task in answer.tasks:
            entry = _Entry(
                order=len(entries),
                chunk=chunk.index,
                local=task,
                path=_source_path(chunk, task.section),
                signature=title_signature(task.title),
                priority=task.priority,
                complexity=task.complexity,
                details=task.details,
                test_strategy=task.test_strategy,
            )
            entries.append(entry)
            ids[task.id] = entry
        local_ids.append(ids)

    _merge_duplicates(entries)
    survivors = [entry for entry in entries if entry.survivor is None]
    for number, entry in enumerate(survivors, start=1):
        entry.key = str(number)
    for entry in entries:
        if entry.survivor is not None:
            keep = entry.canonical()
            keep.merged_from.append(format_path(entry.path))
            issues.append(
                PlanIssue(
                    "duplicate_merged",
                    keep.key,
                    f'"{entry.local.title}" ({format_path(entry.path)}) merged into #{keep.key} "{keep.local.title}"',
                    ref=entry.local.title,
                )
            )

    _resolve_dependencies(entries, survivors, local_ids, issues)
    plan = [
        PlannedTask(
            key=entry.key,
            title=entry.local.title[:TEXT_LIMIT],
            description=entry.local.description,
            details=entry.details,
            test_strategy=entry.test_strategy,
            type=entry.local.type,
            priority=entry.priority,
            complexity=entry.complexity,
            dependencies=list(entry.dependencies),
            source_section=format_path(entry.path)[:TEXT_LIMIT],
            extra={"merged_from": entry.merged_from} if entry.merged_from else {},
        )
        for entry in survivors
    ]
    return _break_cycles(plan, issues)


def _source_path(chunk: Chunk, named: str | None) -> tuple[str, ...]:
    """The section a task came from: the one the model named, if the chunk has it; else the chunk's own path."""
    if named:
        wanted = _heading_signature(named)
        for path in chunk.sections:
            if path and wanted in (_heading_signature(path[-1]), _heading_signature(format_path(path))):
                return path
    return chunk.sections[0] if len(chunk.sections) == 1 else chunk.heading_path


def _merge_duplicates(entries: list[_Entry]) -> None:
    """Mark each duplicate's `survivor`: same signature anywhere, or a near-identical title in another chunk."""
    first: dict[str, _Entry] = {}
    for entry in entries:
        twin = first.get(entry.signature)
        if twin is None:
            first[entry.signature] = entry
        else:
            _absorb(twin, entry)
    # Near matches only across chunks: within one answer the model listed both on purpose. Sorted by length,
    # so the scan stops once lengths alone rule out the threshold.
    singles = sorted(first.values(), key=lambda entry: len(entry.signature))
    stretch = (2 - DUPLICATE_SIMILARITY) / DUPLICATE_SIMILARITY
    for i, a in enumerate(singles):
        if a.survivor is not None:
            continue
        for b in singles[i + 1 :]:
            if len(b.signature) > len(a.signature) * stretch:
                break
            if b.survivor is not None or b.chunk == a.chunk or _numbers(a.signature) != _numbers(b.signature):
                continue
            matcher = difflib.SequenceMatcher(None, a.signature, b.signature, autojunk=False)
            if (
                matcher.real_quick_ratio() >= DUPLICATE_SIMILARITY
                and matcher.quick_ratio() >= DUPLICATE_SIMILARITY
                and matcher.ratio() >= DUPLICATE_SIMILARITY
            ):
                keep, drop = (a, b) if a.order < b.order else (b, a)
                _absorb(keep, drop)
                if drop is a:
                    break


def _numbers(signature: str) -> list[str]:
    # "phase 1" and "phase 2" are close as strings and different as tasks.
    return re.findall(r"\d+", signature)


def _absorb(keep: _Entry, drop: _Entry) -> None:
    """Fold `drop` into `keep`: the higher priority and complexity, and details neither had alone."""
    drop.survivor = keep
    keep.priority = min(keep.priority, drop.priority)
    if drop.complexity is not None:
        keep.complexity = max(keep.complexity or 0, drop.complexity)
    if drop.details and (not keep.details or drop.details not in keep.details):
        keep.details = f"{keep.details}\n\n{drop.details}" if keep.details else drop.details
    keep.test_strategy = keep.test_strategy or drop.test_strategy


def _resolve_dependencies(
    entries: list[_Entry], survivors: list[_Entry], local_ids: list[dict[str, _Entry]], issues: list[PlanIssue]
) -> None:
    by_signature: dict[str, _Entry] = {}
    for entry in survivors:
        by_signature.setdefault(entry.signature, entry)
    signatures = list(by_signature)
    headings: dict[str, set[tuple[str, ...]]] = {}
    for entry in survivors:
        for depth in range(1, len(entry.path) + 1):
            path = entry.path[:depth]
            headings.setdefault(_heading_signature(path[-1]), set()).add(path)
            headings.setdefault(_heading_signature(format_path(path)), set()).add(path)

    def link(owner: _Entry, target: _Entry, ref: str) -> None:
        if target is owner:
            issues.append(PlanIssue("self_dependency", owner.key, f"#{owner.key} named itself as a dependency", ref))
        else:
            owner.dependencies.setdefault(target.key, None)

    by_section: list[tuple[_Entry, str, set[tuple[str, ...]]]] = []
    for entry in entries:  # duplicates too: their dependencies now belong to their survivor
        owner = entry.canonical()
        for raw in entry.local.dependencies:
            ref = raw.strip()
            if not ref:
                continue
            local = local_ids[entry.chunk].get(ref)
            if local is not None:
                link(owner, local.canonical(), ref)
                continue
            same = by_signature.get(title_signature(ref))
            if same is not None:
                link(owner, same, ref)
                continue
            paths = headings.get(_heading_signature(ref))
            if paths:
                by_section.append((owner, ref, paths))
                continue
            close = difflib.get_close_matches(title_signature(ref), signatures, n=1, cutoff=DEPENDENCY_SIMILARITY)
            if close:
                link(owner, by_signature[close[0]], ref)
                continue
            issues.append(
                PlanIssue(
                    "unresolved_dependency",
                    owner.key,
                    f'#{owner.key} "{owner.local.title}": dependency {ref!r} names no task or section; dropped',
                    ref,
                )
            )
    # A section named as a dependency means its work is done: its final tasks (those nothing else in the section
    # waits for) stand for it, and through them the whole section.
    for owner, ref, paths in by_section:
        group = [s for s in survivors if s is not owner and any(s.path[: len(p)] == p for p in paths)]
        waited_for = {key for s in group for key in s.dependencies}
        finals = [s for s in group if s.key not in waited_for]
        if not finals:
            issues.append(
                PlanIssue("unresolved_dependency", owner.key, f"#{owner.key}: section {ref!r} has no other task", ref)
            )
        for target in finals:
            link(owner, target, ref)


def _break_cycles(plan: list[PlannedTask], issues: list[PlanIssue]) -> list[PlannedTask]:
    """`plan` without the edges `core.graph.fix` removes (loops the model made), each removal reported."""
    titles = {task.key: task.title for task in plan}
    edges = [(task.key, dependency) for task in plan for dependency in task.dependencies]
    result = graph.fix([task.key for task in plan], edges, label=lambda key: f'#{key} "{titles.get(key, key)}"')
    if not result.removed:
        return plan
    dropped: dict[str, set[str]] = {}
    for removal in result.removed:
        dependent, dependency = removal.edge
        dropped.setdefault(dependent, set()).add(dependency)
        kind: IssueKind = "cycle_broken" if removal.kind == "cycle" else "unresolved_dependency"
        issues.append(PlanIssue(kind, dependent, removal.message, dependency))
    return [
        task.model_copy(update={"dependencies": [d for d in task.dependencies if d not in dropped[task.key]]})
        if task.key in dropped
        else task
        for task in plan
    ]


# ---------------------------------------------------------------------------------------------- expand


async def expand_with_llm(
    provider: StructuredModel,
    task: TaskLike,
    num: int = 5,
    *,
    context: str | None = None,
    prompt_template: str | None = None,
    key_prefix: str = "",
    max_tokens: int = SMALL_MAX_TOKENS,
    template_ref: str = EXPAND_TEMPLATE,
    usage: Usage | None = None,
) -> list[PlannedTask]:
    """At most `num` subtasks of `task`, keyed `f"{key_prefix}{i}"` (1-based), dependencies among themselves.

    Subtasks inherit the task's `source_section` when it has one. `context` (e.g. the project's stack) is added
    to the prompt; `prompt_template` (Jinja2, the stored `task.expand` or the shipped default) may use `title`,
    `description`, `details`, `test_strategy`, `num` and `context`; `usage` counts the tokens. Dependencies on
    anything but a sibling are dropped (logged); a loop is broken.
    """
    if not 1 <= num <= 50:
        raise InvalidInput("num must be between 1 and 50")
    source = prompt_template if prompt_template is not None else default_text(EXPAND_TEMPLATE)
    check(source, name=template_ref, allowed=_EXPAND_FIELDS, required={"title"})
    variables = {
        "title": task.title,
        "description": task.description or "(none)",
        "details": task.details or "(none)",
        "test_strategy": task.test_strategy or "(none)",
        "num": num,
        "context": context or "",
    }
    prompt = render_source(source, variables, name=template_ref)
    answer = await provider.structured(
        system=SYSTEM_PROMPT, prompt=prompt, schema=SubtaskPlan, max_tokens=max_tokens, usage=usage
    )
    chosen = answer.subtasks[:num]
    keys = {subtask.id: f"{key_prefix}{number}" for number, subtask in enumerate(chosen, start=1)}
    section = getattr(task, "source_section", None)
    issues: list[PlanIssue] = []
    subtasks: list[PlannedTask] = []
    for subtask in chosen:
        key = keys[subtask.id]
        dependencies: list[str] = []
        for ref in subtask.dependencies:
            target = keys.get(ref.strip())
            if target is None or target == key:
                issues.append(PlanIssue("unresolved_dependency", key, f"subtask dependency {ref!r} dropped", ref))
            elif target not in dependencies:
                dependencies.append(target)
        subtasks.append(
            PlannedTask(
                key=key,
                title=subtask.title[:TEXT_LIMIT],
                description=subtask.description,
                details=subtask.details,
                test_strategy=subtask.test_strategy,
                type=subtask.type,
                priority=subtask.priority,
                complexity=subtask.complexity,
                dependencies=dependencies,
                source_section=section,
            )
        )
    subtasks = _break_cycles(subtasks, issues)
    for issue in issues:
        log.info("subtasks adjusted", kind=issue.kind, key=issue.key, ref=issue.ref, detail=issue.message)
    return subtasks


# ---------------------------------------------------------------------------------------------- complexity


async def analyze_complexity_with_llm(
    provider: StructuredModel,
    tasks: Sequence[PlannedTask] | Mapping[str, TaskLike],
    *,
    batch_size: int = 20,
    concurrency: int = 4,
    prompt_template: str | None = None,
    progress: Progress | None = None,
    max_tokens: int = SMALL_MAX_TOKENS,
) -> list[ComplexityScore]:
    """A score (1-10) and reasoning per task, in input order; `tasks` are planned tasks or a key -> task map.

    Tasks go in batches of `batch_size`, at most `concurrency` calls at a time, under short local ids (so a
    long key cannot be mistyped). Ids the model skipped are asked once more; a task still unscored is left out
    of the result (and logged). `prompt_template` may use `$tasks`. `progress(done, total)` counts batches.
    """
    if batch_size < 1 or concurrency < 1:
        raise InvalidInput("batch_size and concurrency must be at least 1")
    template = _template(prompt_template or DEFAULT_COMPLEXITY_PROMPT, _COMPLEXITY_FIELDS, required={"tasks"})
    items: list[tuple[str, TaskLike]] = (
        list(tasks.items()) if isinstance(tasks, Mapping) else [(task.key, task) for task in tasks]
    )
    batches = [items[start : start + batch_size] for start in range(0, len(items), batch_size)]
    scores: dict[str, ComplexityScore] = {}
    semaphore = asyncio.Semaphore(concurrency)
    done = 0
    if progress is not None:
        progress(0, len(batches))

    async def score(batch: list[tuple[str, TaskLike]]) -> None:
        nonlocal done
        missing = batch
        async with semaphore:
            for _ in range(2):  # the first answer, and one more for the ids it skipped
                local = {f"t{number}": item for number, item in enumerate(missing, start=1)}
                listing = "\n\n".join(_describe(local_id, task) for local_id, (_, task) in local.items())
                answer = await provider.structured(
                    system=SYSTEM_PROMPT,
                    prompt=template.substitute(tasks=listing),
                    schema=ComplexityAnswer,
                    max_tokens=max_tokens,
                )
                for item in answer.scores:
                    hit = local.get(item.id.strip())
                    if hit is not None and hit[0] not in scores:
                        scores[hit[0]] = ComplexityScore(hit[0], item.score, item.reasoning.strip())
                missing = [item for item in missing if item[0] not in scores]
                if not missing:
                    break
        done += 1
        if progress is not None:
            progress(done, len(batches))

    await _run_all([score(batch) for batch in batches])
    unscored = [key for key, _ in items if key not in scores]
    if unscored:
        log.warning("complexity not scored", provider=provider.name, keys=unscored)
    return [scores[key] for key, _ in items if key in scores]


def _describe(local_id: str, task: TaskLike) -> str:
    lines = [f"[{local_id}] {task.title}"]
    for label, value in (("Description", task.description), ("Details", task.details)):
        if value:
            lines.append(f"{label}: {value[:1500]}")
    return "\n".join(lines)
