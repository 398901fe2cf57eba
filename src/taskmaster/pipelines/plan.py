"""The static plan of one pipeline: its steps in a fixed order, with everything the engine needs to schedule them.

`compile_plan` turns a definition into a frozen `Plan`; `ready_steps`, `steps_to_skip` and `is_finished` are pure
functions of a plan and its steps' statuses. In a status mapping, a step that is missing counts as `pending`.
"""

from __future__ import annotations

import heapq
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from taskmaster.core.errors import InvalidInput
from taskmaster.pipelines.definition import PipelineDefinition, StepDefinition, StepKind, StepWhen, WorkspaceMode
from taskmaster.pipelines.states import STEP_NOT_STARTED, FailureReason, PipelineType, StepStatus

PLAN_FORMAT = 1


@dataclass(frozen=True, slots=True)
class RetryOn:
    """Which failures of a step are retried automatically (up to its `max_retries`)."""

    exit_codes: frozenset[int] = frozenset()
    infra: bool = True
    timeout: bool = True

    def allows(self, reason: FailureReason | str, exit_code: int | None = None) -> bool:
        """Whether a failure for `reason` (with the attempt's exit code, for `code`) may be retried."""
        reason = FailureReason(reason)
        if reason is FailureReason.INFRA:
            return self.infra
        if reason is FailureReason.TIMEOUT:
            return self.timeout
        return exit_code is not None and exit_code in self.exit_codes

    @classmethod
    def from_definition(cls, items: tuple[int | str, ...]) -> RetryOn:
        return cls(
            exit_codes=frozenset(i for i in items if isinstance(i, int)),
            infra=FailureReason.INFRA.value in items,
            timeout=FailureReason.TIMEOUT.value in items,
        )


@dataclass(frozen=True, slots=True)
class PlannedStep:
    """One step as the engine runs it.

    `kind` says which of `command` (a shell command) or `uses` (a built-in step) is set. `needs` are the steps that
    must be finished first: as written, except that an `on_failure`/`always` step written without needs gets every
    step that is neither such a step nor downstream of one (it runs last). `dependents` are the steps that need
    this one. `timeout` is per attempt, in seconds. `position` is the index in `Plan.steps`; `level` is the depth in
    the graph (0: needs nothing; else one more than its deepest need).
    """

    name: str
    kind: StepKind
    command: str | None
    uses: str | None
    needs: tuple[str, ...]
    dependents: tuple[str, ...]
    timeout: int
    max_retries: int
    retry_on: RetryOn
    env: Mapping[str, str]
    allow_failure: bool
    when: StepWhen
    workspace: WorkspaceMode
    network: bool
    position: int
    level: int
    limits: Mapping[str, int] = field(default_factory=lambda: MappingProxyType({}))
    """Resource limits the step asks for (`cpu`, `memory`, `processes`, `disk`, `tmp`); absent: the defaults."""
    params: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
    """A built-in step's options (`with:`)."""

    def to_json(self) -> dict[str, Any]:
        """Plain JSON data (e.g. for `pipeline_steps.config`); `from_json` reads it back equal."""
        return {
            "name": self.name,
            "kind": self.kind.value,
            "command": self.command,
            "uses": self.uses,
            "needs": list(self.needs),
            "dependents": list(self.dependents),
            "timeout": self.timeout,
            "max_retries": self.max_retries,
            "retry_on": {
                "exit_codes": sorted(self.retry_on.exit_codes),
                "infra": self.retry_on.infra,
                "timeout": self.retry_on.timeout,
            },
            "env": dict(self.env),
            "allow_failure": self.allow_failure,
            "when": self.when.value,
            "workspace": self.workspace.value,
            "network": self.network,
            "position": self.position,
            "level": self.level,
            "limits": dict(self.limits),
            "params": dict(self.params),
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> PlannedStep:
        retry_on = data["retry_on"]
        return cls(
            name=_typed(data["name"], str),
            kind=StepKind(data["kind"]),
            command=_typed(data["command"], str, optional=True),
            uses=_typed(data["uses"], str, optional=True),
            needs=tuple(_typed(n, str) for n in data["needs"]),
            dependents=tuple(_typed(n, str) for n in data["dependents"]),
            timeout=_typed(data["timeout"], int),
            max_retries=_typed(data["max_retries"], int),
            retry_on=RetryOn(
                exit_codes=frozenset(_typed(c, int) for c in retry_on["exit_codes"]),
                infra=_typed(retry_on["infra"], bool),
                timeout=_typed(retry_on["timeout"], bool),
            ),
            env=MappingProxyType({_typed(k, str): _typed(v, str) for k, v in data["env"].items()}),
            allow_failure=_typed(data["allow_failure"], bool),
            when=StepWhen(data["when"]),
            workspace=WorkspaceMode(data["workspace"]),
            network=_typed(data["network"], bool),
            position=_typed(data["position"], int),
            level=_typed(data["level"], int),
            limits=MappingProxyType({_typed(k, str): _typed(v, int) for k, v in data.get("limits", {}).items()}),
            params=MappingProxyType({_typed(k, str): _typed(v, str) for k, v in data.get("params", {}).items()}),
        )


@dataclass(frozen=True, slots=True)
class Plan:
    """A pipeline's steps in topological order (file order wherever the needs allow), its overall `timeout` in
    seconds and its `concurrency` (None: the worker decides). Frozen; `to_json`/`from_json` round-trip it."""

    pipeline_type: PipelineType
    steps: tuple[PlannedStep, ...]
    timeout: int
    concurrency: int | None
    _by_name: Mapping[str, PlannedStep] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_by_name", MappingProxyType({step.name: step for step in self.steps}))

    def __getitem__(self, name: str) -> PlannedStep:
        return self._by_name[name]

    def __contains__(self, name: object) -> bool:
        return name in self._by_name

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(step.name for step in self.steps)

    def to_json(self) -> dict[str, Any]:
        """Plain JSON data, for the `ci_cd_pipelines.definition` column."""
        return {
            "format": PLAN_FORMAT,
            "pipeline_type": self.pipeline_type.value,
            "timeout": self.timeout,
            "concurrency": self.concurrency,
            "steps": [step.to_json() for step in self.steps],
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Plan:
        """Read back what `to_json` wrote. Raises `InvalidInput` for anything else."""
        try:
            if data.get("format") != PLAN_FORMAT:
                raise ValueError(f"format {data.get('format')!r}, expected {PLAN_FORMAT}")
            plan = cls(
                pipeline_type=PipelineType(data["pipeline_type"]),
                steps=tuple(PlannedStep.from_json(step) for step in data["steps"]),
                timeout=_typed(data["timeout"], int),
                concurrency=_typed(data["concurrency"], int, optional=True),
            )
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise InvalidInput(f"stored pipeline plan is not valid: {type(exc).__name__}: {exc}") from None
        # The helpers rely on this: unique names, positions in order, every need earlier in the plan.
        seen: set[str] = set()
        for position, step in enumerate(plan.steps):
            if step.position != position or step.name in seen or not seen.issuperset(step.needs):
                raise InvalidInput(f"stored pipeline plan is not valid: step {step.name!r} is out of order")
            seen.add(step.name)
        return plan


def _typed(value: Any, kind: type[Any], *, optional: bool = False) -> Any:
    if value is None and optional:
        return None
    # bool is an int; a stored `true` must not pass for a timeout.
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise TypeError(f"expected {kind.__name__}, got {value!r}")
    return value


def compile_plan(definition: PipelineDefinition, *, pipeline_type: PipelineType | str = "validation") -> Plan:
    """The plan a pipeline of `pipeline_type` runs. Deterministic: the same definition gives an equal plan.

    Order: Kahn's algorithm, taking among the steps whose needs are placed the one written first.
    Raises `InvalidInput` for an unknown pipeline type.
    """
    resolved = definition.for_type(pipeline_type)
    written = list(resolved.steps)
    needs = _effective_needs(resolved.steps)

    file_index = {name: i for i, name in enumerate(written)}
    waiting = {name: len(needs[name]) for name in written}
    dependents: dict[str, list[str]] = {name: [] for name in written}
    for name in written:
        for need in needs[name]:
            dependents[need].append(name)
    heap = [file_index[name] for name in written if not waiting[name]]
    heapq.heapify(heap)
    order: list[str] = []
    while heap:
        name = written[heapq.heappop(heap)]
        order.append(name)
        for dependent in dependents[name]:
            waiting[dependent] -= 1
            if not waiting[dependent]:
                heapq.heappush(heap, file_index[dependent])
    if len(order) < len(written):  # only a definition built without validation gets here
        raise InvalidInput("circular needs between steps: " + ", ".join(n for n in written if waiting[n]))

    position = {name: i for i, name in enumerate(order)}
    level: dict[str, int] = {}
    steps: list[PlannedStep] = []
    for name in order:
        step = resolved.steps[name]
        level[name] = 1 + max((level[n] for n in needs[name]), default=-1)
        steps.append(
            PlannedStep(
                name=name,
                kind=step.kind,
                command=step.run,
                uses=step.uses,
                needs=needs[name],
                dependents=tuple(sorted(dependents[name], key=position.__getitem__)),
                timeout=step.timeout,
                max_retries=step.retries,
                retry_on=RetryOn.from_definition(step.retry_on),
                env=MappingProxyType(dict(step.env)),
                allow_failure=step.allow_failure,
                when=step.when,
                workspace=step.workspace,
                network=step.network,
                position=position[name],
                level=level[name],
                limits=MappingProxyType({k: int(v) for k, v in step.limits.model_dump(exclude_none=True).items()}),
                params=MappingProxyType(dict(step.with_)),
            )
        )
    return Plan(resolved.pipeline_type, tuple(steps), resolved.timeout, resolved.concurrency)


def _effective_needs(steps: Mapping[str, StepDefinition]) -> dict[str, tuple[str, ...]]:
    """Needs as written, except for finalizers (`on_failure`/`always` without needs), which wait for the rest.

    Without this, `always: cleanup` would run first. "The rest" is every step that is not downstream of a finalizer
    (those run after it, and waiting for them would close a loop); finalizers themselves run side by side.
    """
    needs = {name: tuple(step.needs) for name, step in steps.items()}
    finalizers = [name for name, step in steps.items() if not step.needs and step.when is not StepWhen.ON_SUCCESS]
    if not finalizers:
        return needs
    dependents: dict[str, list[str]] = {name: [] for name in steps}
    for name, written in needs.items():
        for need in written:
            dependents[need].append(name)
    downstream = set(finalizers)
    stack = list(finalizers)
    while stack:
        for dependent in dependents[stack.pop()]:
            if dependent not in downstream:
                downstream.add(dependent)
                stack.append(dependent)
    body = tuple(name for name in steps if name not in downstream)
    for name in finalizers:
        needs[name] = body
    return needs


# --- scheduling helpers: pure, on the plan and a status per step ---


def _statuses(plan: Plan, statuses: Mapping[str, StepStatus | str]) -> dict[str, StepStatus]:
    return {step.name: StepStatus(statuses.get(step.name, StepStatus.PENDING)) for step in plan.steps}


def _counts_as_failure(step: PlannedStep, status: StepStatus) -> bool:
    return status.is_failure and not step.allow_failure


def _satisfies(need: PlannedStep, status: StepStatus) -> bool:
    """Whether a finished need lets an `on_success` dependent run."""
    return status is StepStatus.SUCCESS or (status.is_failure and need.allow_failure)


def has_failure(plan: Plan, statuses: Mapping[str, StepStatus | str]) -> bool:
    """Whether a step has failed (failed, error, timed out) without `allow_failure`: what `on_failure` waits for."""
    current = _statuses(plan, statuses)
    return any(_counts_as_failure(step, current[step.name]) for step in plan.steps)


def ready_steps(plan: Plan, statuses: Mapping[str, StepStatus | str]) -> list[str]:
    """The not yet started (pending or waiting) steps that may start now, in plan order.

    Every need must be finished (terminal). Then an `on_success` step needs each of them to have succeeded, or to
    have failed with `allow_failure`; an `on_failure` step needs the pipeline to have a failure (`has_failure`); an
    `always` step needs nothing more. Concurrency limits are the caller's business.
    """
    current = _statuses(plan, statuses)
    failed = any(_counts_as_failure(step, current[step.name]) for step in plan.steps)
    ready: list[str] = []
    for step in plan.steps:
        if current[step.name] not in STEP_NOT_STARTED:
            continue
        if not all(current[need].is_terminal for need in step.needs):
            continue
        if step.when is StepWhen.ON_SUCCESS:
            runs = all(_satisfies(plan[need], current[need]) for need in step.needs)
        else:
            runs = failed or step.when is StepWhen.ALWAYS
        if runs:
            ready.append(step.name)
    return ready


def steps_to_skip(plan: Plan, statuses: Mapping[str, StepStatus | str]) -> list[str]:
    """The not yet started steps that can no longer run, in plan order; mark them `skipped`.

    An `on_success` step is skipped once a need has finished without satisfying it (failed without
    `allow_failure`, skipped, canceled), and so, transitively, are its `on_success` dependents; other branches are
    untouched. `on_failure` steps are skipped once the pipeline has no failure and everything except them (and
    what depends on them) has finished: no failure can come any more. `always` steps are never skipped.
    """
    current = _statuses(plan, statuses)
    skipped: set[str] = set()
    changed = True
    while changed:
        changed = False
        for step in plan.steps:  # in topological order, so a skip reaches all its dependents in one pass
            if step.when is not StepWhen.ON_SUCCESS or current[step.name] not in STEP_NOT_STARTED:
                continue
            if any(current[n].is_terminal and not _satisfies(plan[n], current[n]) for n in step.needs):
                current[step.name] = StepStatus.SKIPPED
                skipped.add(step.name)
        if any(_counts_as_failure(step, current[step.name]) for step in plan.steps):
            continue
        hoping = [s.name for s in plan.steps if s.when is StepWhen.ON_FAILURE and current[s.name] in STEP_NOT_STARTED]
        behind = set(hoping)
        stack = list(hoping)
        while stack:
            for dependent in plan[stack.pop()].dependents:
                if dependent not in behind:
                    behind.add(dependent)
                    stack.append(dependent)
        if hoping and all(current[s.name].is_terminal for s in plan.steps if s.name not in behind):
            for name in hoping:
                current[name] = StepStatus.SKIPPED
                skipped.add(name)
            changed = True  # their on_success dependents can go too
    return [step.name for step in plan.steps if step.name in skipped]


def is_finished(plan: Plan, statuses: Mapping[str, StepStatus | str]) -> bool:
    """Whether every step of the plan has reached a terminal status."""
    current = _statuses(plan, statuses)
    return all(status.is_terminal for status in current.values())
