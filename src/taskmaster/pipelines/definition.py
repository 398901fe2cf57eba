"""`.taskmaster.yml`: the schema of a repository's own pipeline, loading it with line-numbered errors, and the default.

`load_definition` reports every problem as one line, `file:line: key.path: what was expected`, so that a person can
fix the file without guessing; `default_validation_definition` is the shape of what runs when a repository has no
file (`pipelines/defaults.py` detects the commands).
"""

from __future__ import annotations

import difflib
import json
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Annotated, Any, NoReturn, Self, TypeAlias

import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    ByteSize,
    ConfigDict,
    Field,
    PlainValidator,
    PositiveInt,
    ValidationError,
    model_validator,
)
from pydantic_core import PydanticCustomError
from yaml.constructor import ConstructorError
from yaml.reader import ReaderError

from taskmaster.core import graph
from taskmaster.core.errors import InvalidInput
from taskmaster.pipelines.builtins import BUILTIN_STEPS as BUILTIN_STEPS
from taskmaster.pipelines.states import PipelineType

DEFAULT_SOURCE = ".taskmaster.yml"
MAX_DEFINITION_BYTES = 256 * 1024
MAX_STEPS = 100
MAX_STEP_NAME = 64
MAX_RETRIES = 10
MAX_CONCURRENCY = 64
MAX_DURATION = 7 * 24 * 3600
DEFAULT_PIPELINE_TIMEOUT = 3600
DEFAULT_STEP_TIMEOUT = 1800
DEFAULT_RETRIES = 3
DEFAULT_RETRY_ON: tuple[str, ...] = ("infra", "timeout")
RETRY_WORDS: tuple[str, ...] = ("infra", "timeout")

# A YAML file of a few hundred kilobytes can still expand, through aliases, into billions of nodes.
_MAX_NODES = 20_000
_MAX_DEPTH = 32
_MERGE_TAG = "tag:yaml.org,2002:merge"
_PLAIN_TAGS = frozenset({"tag:yaml.org,2002:map", "tag:yaml.org,2002:seq"})
# PostgreSQL text cannot hold NUL, and no command, name or value needs one: YAML's "\0" escape is refused where written.
_NUL_MESSAGE = "the character U+0000 (NUL) is not allowed"
_STEP_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]*")
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_DURATION = re.compile(r"(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?")
_DURATION_UNITS = (86400, 3600, 60, 1)
# Keys people bring from other CI systems, mapped to ours, for "did you mean".
_KEY_ALIASES = {
    "depends_on": "needs",
    "dependencies": "needs",
    "requires": "needs",
    "script": "run",
    "command": "run",
    "cmd": "run",
    "commands": "run",
    "environment": "env",
    "variables": "env",
    "if": "when",
    "retry": "retries",
    "max_retries": "retries",
    "continue_on_error": "allow_failure",
    "timeout_minutes": "timeout",
    "jobs": "steps",
}

Loc: TypeAlias = tuple[str | int, ...]


class StepKind(StrEnum):
    """A step either runs a shell command (`run`) or a built-in step (`uses`)."""

    RUN = "run"
    USES = "uses"


class StepWhen(StrEnum):
    """When a step runs once its needs are finished: on their success (default), on a failure, or always."""

    ON_SUCCESS = "on_success"
    ON_FAILURE = "on_failure"
    ALWAYS = "always"


class WorkspaceMode(StrEnum):
    """`shared`: the pipeline's checkout, as earlier steps left it (default); `fresh`: a clean checkout."""

    SHARED = "shared"
    FRESH = "fresh"


# --- errors ---


@dataclass(frozen=True, slots=True)
class DefinitionProblem:
    """One fault in a definition: where it is (`loc`, and `line`/`column` counted from 1 when known) and what was
    expected. `path` renders `loc` as people write it: ``steps.test.retry_on[1]``."""

    message: str
    loc: Loc = ()
    line: int | None = None
    column: int | None = None

    @property
    def path(self) -> str:
        return render_path(self.loc)

    def render(self, source: str = DEFAULT_SOURCE) -> str:
        where = source + "".join(f":{n}" for n in (self.line, self.column) if n is not None)
        text = f"{where}: {self.path}: {self.message}" if self.loc else f"{where}: {self.message}"
        return _visible(text)


class DefinitionError(InvalidInput):
    """A pipeline definition is not valid; `problems` holds each fault, the message one line per fault."""

    code = "invalid_pipeline_definition"
    title = "Invalid pipeline definition"

    def __init__(self, problems: Sequence[DefinitionProblem], *, source: str = DEFAULT_SOURCE) -> None:
        self.problems = tuple(problems)
        self.source = source
        super().__init__(
            "\n".join(p.render(source) for p in self.problems),
            problems=[
                {"line": p.line, "column": p.column, "path": _visible(p.path), "message": _visible(p.message)}
                for p in problems
            ],
        )


def _visible(text: str) -> str:
    """`text` with each NUL written as its YAML escape, so a message can be stored and shown."""
    return text.replace("\0", "\\0")


def render_path(loc: Iterable[str | int]) -> str:
    """``("steps", "test", "needs", 0)`` → ``steps.test.needs[0]``."""
    text = ""
    for part in loc:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else part)
    return text


# --- field types: each validator says what it expected and what it got, in one sentence ---


def _fail(message: str) -> NoReturn:
    raise PydanticCustomError("definition", "{message}", {"message": message})


def _show(value: Any) -> str:
    """A value as it looked in the file, briefly."""
    if value is None:
        return "an empty value"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        text = json.dumps(value, ensure_ascii=False)
        return text if len(text) <= 60 else text[:56] + '..."'
    if isinstance(value, Mapping):
        return "a mapping"
    if isinstance(value, list | tuple):
        return "a list"
    return str(value)


def _suggest(word: Any, choices: Iterable[str], aliases: Mapping[str, str] | None = None) -> str:
    """`` (did you mean "retries"?)`` for a close misspelling or a known alias, else nothing."""
    if not isinstance(word, str):
        return ""
    options = list(choices)
    guess = (aliases or {}).get(word.lower())
    if guess is None or guess not in options:
        close = difflib.get_close_matches(word, options, n=1, cutoff=0.6)
        guess = close[0] if close else None
    return f' (did you mean "{guess}"?)' if guess else ""


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _duration(value: Any) -> int:
    seconds: int | None = None
    if _is_int(value):
        seconds = value
    elif isinstance(value, str):
        text = value.strip()
        match = _DURATION.fullmatch(text)
        if text.isdigit():
            seconds = int(text)
        elif text and match:
            seconds = sum(int(n) * unit for n, unit in zip(match.groups(), _DURATION_UNITS, strict=True) if n)
    if seconds is None:
        _fail(f'expected a duration (seconds or "10m"), got {_show(value)}')
    if not 1 <= seconds <= MAX_DURATION:
        _fail(f"expected a duration from 1 second to 7 days, got {_show(value)}")
    return seconds


def _int_between(low: int, high: int) -> PlainValidator:
    def check(value: Any) -> int:
        if not _is_int(value) or not low <= value <= high:
            _fail(f"expected a whole number from {low} to {high}, got {_show(value)}")
        return int(value)

    return PlainValidator(check)


def _strict_bool(value: Any) -> bool:
    if not isinstance(value, bool):
        _fail(f"expected true or false, got {_show(value)}")
    return value


def _one_of(choices: Sequence[str], convert: Callable[[str], Any] = str) -> PlainValidator:
    def check(value: Any) -> Any:
        if not isinstance(value, str) or value not in choices:
            _fail(f"expected one of {', '.join(choices)}, got {_show(value)}{_suggest(value, choices)}")
        return convert(value)

    return PlainValidator(check)


def _command(value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        _fail(f"expected a shell command (a non-empty string), got {_show(value)}")
    return value


def _step_name(value: Any) -> str:
    if not isinstance(value, str) or len(value) > MAX_STEP_NAME or not _STEP_NAME.fullmatch(value):
        _fail(
            f'expected a step name (letters, digits, "_" and "-", at most {MAX_STEP_NAME} characters), '
            f"got {_show(value)}"
        )
    return value


def _env_name(value: Any) -> str:
    if not isinstance(value, str) or not _ENV_NAME.fullmatch(value):
        _fail(f"expected an environment variable name (letters, digits and _), got {_show(value)}")
    return value


def _option_name(value: Any) -> str:
    if not isinstance(value, str) or not _ENV_NAME.fullmatch(value):
        _fail(f"expected an option name (letters, digits and _), got {_show(value)}")
    return value


def _env_value(value: Any) -> str:
    # YAML reads `PORT: 8000` and `DEBUG: true` as numbers and booleans; the environment only has strings.
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str | int | float):
        return str(value)
    _fail(f"expected a string, got {_show(value)}")


def _retry_on_item(value: Any) -> int | str:
    if _is_int(value) and 1 <= value <= 255:
        return int(value)
    if isinstance(value, str) and value in RETRY_WORDS:
        return value
    _fail(
        f"expected an exit code (1 to 255) or one of {', '.join(RETRY_WORDS)}, got {_show(value)}"
        f"{_suggest(value, RETRY_WORDS)}"
    )


def _at_least_one_step(steps: dict[str, StepDefinition]) -> dict[str, StepDefinition]:
    if not steps:
        _fail("expected at least one step")
    if len(steps) > MAX_STEPS:
        _fail(f"expected at most {MAX_STEPS} steps, got {len(steps)}")
    return steps


Duration = Annotated[int, PlainValidator(_duration)]
Concurrency = Annotated[int, _int_between(1, MAX_CONCURRENCY)]
StepName = Annotated[str, PlainValidator(_step_name)]
StrictBool = Annotated[bool, PlainValidator(_strict_bool)]
RetryOnItem = Annotated[int | str, PlainValidator(_retry_on_item)]
TypeName = Annotated[str, _one_of([t.value for t in PipelineType])]
# A limit of 0 would mean "none" to the server's settings, but a step may only lower or raise a limit, not lift it.
Size = Annotated[ByteSize, Field(gt=0)]


# --- the schema ---


class StepLimitsDefinition(BaseModel):
    """Resource limits a step asks for instead of the server's defaults (`executor.limits`), each at most the
    server's maximum (`executor.max_limits`): `cpu` seconds of CPU time per process, `processes`, and the sizes
    `memory`, `disk` (the workspace) and `tmp` in bytes or with a unit ("512MiB", "2GB")."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    cpu: PositiveInt | None = None
    memory: Size | None = None
    processes: PositiveInt | None = None
    disk: Size | None = None
    tmp: Size | None = None


class StepDefinition(BaseModel):
    """One step: exactly one of `run` (a shell command) or `uses` (a built-in step: checkout, ai_review).

    `needs` names steps that must finish first. `timeout` is per attempt, in seconds (`"10m"`, `"90s"`, `"1h"` are
    read too). A failed attempt is retried up to `retries` times when its failure is listed in `retry_on`: exit codes,
    `infra` (clone, sandbox, lost worker) or `timeout`. `allow_failure` lets dependents run and the pipeline pass
    even if this step fails. `when`: `on_success` (default: every need succeeded), `on_failure` (the pipeline has a
    failure) or `always`; an `on_failure`/`always` step without `needs` runs last (see `plan`). `workspace`:
    `shared` (default) or `fresh`. `network`: whether the sandbox lets the step reach the network (default false).
    `limits`: resource limits other than the server's defaults (see `StepLimitsDefinition`).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    # Validated only when present, so `run:` with nothing after it is reported as such, not as "neither".
    run: Annotated[str | None, PlainValidator(_command)] = None
    uses: Annotated[str | None, _one_of(BUILTIN_STEPS)] = None
    needs: tuple[str, ...] = ()
    timeout: Duration = DEFAULT_STEP_TIMEOUT
    retries: Annotated[int, _int_between(0, MAX_RETRIES)] = DEFAULT_RETRIES
    retry_on: tuple[RetryOnItem, ...] = DEFAULT_RETRY_ON
    env: dict[Annotated[str, PlainValidator(_env_name)], Annotated[str, PlainValidator(_env_value)]] = Field(
        default_factory=dict
    )
    allow_failure: StrictBool = False
    when: Annotated[StepWhen, _one_of([w.value for w in StepWhen], StepWhen)] = StepWhen.ON_SUCCESS
    workspace: Annotated[WorkspaceMode, _one_of([w.value for w in WorkspaceMode], WorkspaceMode)] = WorkspaceMode.SHARED
    network: StrictBool = False
    limits: StepLimitsDefinition = StepLimitsDefinition()
    with_: dict[Annotated[str, PlainValidator(_option_name)], Annotated[str, PlainValidator(_env_value)]] = Field(
        default_factory=dict, alias="with"
    )
    """Options of a built-in step (`uses`), which checks them itself (e.g. `ai_review`'s `reviewer`)."""

    @model_validator(mode="after")
    def _run_or_uses(self) -> Self:
        if self.run is not None and self.uses is not None:
            _fail('expected one of "run" or "uses", got both')
        if self.run is None and self.uses is None:
            _fail(f'expected "run" (a shell command) or "uses" (a built-in step: {", ".join(BUILTIN_STEPS)})')
        if self.with_ and self.uses is None:
            _fail('"with" gives options to a built-in step: it goes with "uses", not "run"')
        return self

    @property
    def kind(self) -> StepKind:
        return StepKind.RUN if self.run is not None else StepKind.USES


Steps = Annotated[dict[StepName, StepDefinition], AfterValidator(_at_least_one_step)]


class TypeDefinition(BaseModel):
    """How one pipeline type differs from the top level. `steps`: its own full steps mapping, replacing the top
    level's; or `only`: a list of top-level step names, run with every step they need (directly or not). Either,
    neither, not both. `concurrency` and `timeout` override the top level's for this type."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    steps: Steps | None = None
    only: tuple[str, ...] | None = None
    concurrency: Concurrency | None = None
    timeout: Duration | None = None

    @model_validator(mode="after")
    def _steps_or_only(self) -> Self:
        given = self.model_fields_set
        if "steps" in given and self.steps is None:
            _fail('"steps" is empty: expected a mapping of steps')
        if "only" in given and not self.only:
            _fail('"only" is empty: expected a list of step names')
        if self.steps is not None and self.only is not None:
            _fail('expected one of "steps" or "only", got both')
        return self


@dataclass(frozen=True, slots=True)
class ResolvedDefinition:
    """What one pipeline type runs: its steps in file order, its concurrency (None: the worker decides), its
    overall timeout in seconds."""

    pipeline_type: PipelineType
    steps: Mapping[str, StepDefinition]
    concurrency: int | None
    timeout: int


class PipelineDefinition(BaseModel):
    """A whole `.taskmaster.yml`. `steps` is a mapping, in order, of step name to `StepDefinition`; `concurrency`
    caps how many steps run at once (unset: the worker's setting); `timeout` bounds the whole pipeline (seconds,
    default 3600); `types` lets `validation`, `push` or `codegen` pipelines differ (`TypeDefinition`), e.g.
    ``types: {push: {only: [lint, test]}}``.

    Validation also checks the step graph: every `needs` names a step, none twice, and no circular needs.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    concurrency: Concurrency | None = None
    timeout: Duration = DEFAULT_PIPELINE_TIMEOUT
    steps: Steps
    types: dict[TypeName, TypeDefinition] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _check_graph(self) -> Self:
        # Raised as our own error (not a ValueError), so pydantic lets it through and each problem keeps its path.
        problems = _cross_check(self.model_dump(include={"steps", "types"}))
        if problems:
            raise DefinitionError(problems)
        return self

    def for_type(self, pipeline_type: PipelineType | str = PipelineType.VALIDATION) -> ResolvedDefinition:
        """The steps, concurrency and timeout a pipeline of this type runs with. Unknown type: `InvalidInput`."""
        try:
            kind = PipelineType(pipeline_type)
        except ValueError:
            known = ", ".join(t.value for t in PipelineType)
            raise InvalidInput(f"unknown pipeline type {pipeline_type!r}: expected one of {known}") from None
        override = self.types.get(kind.value)
        if override is None:
            return ResolvedDefinition(kind, dict(self.steps), self.concurrency, self.timeout)
        if override.steps is not None:
            steps = dict(override.steps)
        elif override.only is not None:
            wanted = set(override.only)
            stack = list(override.only)
            while stack:
                for need in self.steps[stack.pop()].needs:
                    if need not in wanted:
                        wanted.add(need)
                        stack.append(need)
            steps = {name: step for name, step in self.steps.items() if name in wanted}
        else:
            steps = dict(self.steps)
        concurrency = override.concurrency if override.concurrency is not None else self.concurrency
        timeout = override.timeout if override.timeout is not None else self.timeout
        return ResolvedDefinition(kind, steps, concurrency, timeout)


# --- checks across steps, on plain data: they run on the validated model and, to report everything in one go, on
# the raw file when field validation already failed ---


def _cross_check(data: Any) -> list[DefinitionProblem]:
    if not isinstance(data, Mapping):
        return []
    problems: list[DefinitionProblem] = []
    top = data.get("steps")
    if isinstance(top, Mapping):
        problems += _graph_problems(top, ("steps",))
    types = data.get("types")
    for name, override in types.items() if isinstance(types, Mapping) else ():
        if not isinstance(override, Mapping):
            continue
        own = override.get("steps")
        if isinstance(own, Mapping):
            problems += _graph_problems(own, ("types", name, "steps"))
        only = override.get("only")
        if isinstance(only, list | tuple) and isinstance(top, Mapping):
            problems += _name_list_problems(only, ("types", name, "only"), top)
    return problems


def _name_list_problems(
    names: Sequence[Any], at: Loc, steps: Mapping[str, Any], owner: str | None = None
) -> list[DefinitionProblem]:
    """Faults in a list of step names: unknown, listed twice, or (for `owner`'s needs) the owner itself."""
    problems: list[DefinitionProblem] = []
    seen: set[str] = set()
    for i, name in enumerate(names):
        if not isinstance(name, str):
            continue  # pydantic reports the type
        if name == owner:
            message = f"circular dependency: {name} -> {name}"
        elif name in seen:
            message = f'"{name}" is listed twice'
        elif name not in steps:
            message = f'unknown step "{name}"' + (_suggest(name, steps) or f" (steps: {', '.join(steps)})")
        else:
            seen.add(name)
            continue
        problems.append(DefinitionProblem(message, (*at, i)))
    return problems


def _graph_problems(steps: Mapping[str, Any], at: Loc) -> list[DefinitionProblem]:
    problems: list[DefinitionProblem] = []
    needs_of: dict[str, list[Any]] = {}
    for name, step in steps.items():
        needs = step.get("needs") if isinstance(step, Mapping) else None
        needs_of[name] = list(needs) if isinstance(needs, list | tuple) else []
        problems += _name_list_problems(needs_of[name], (*at, name, "needs"), steps, owner=name)
    edges = [
        (name, need)
        for name, needs in needs_of.items()
        for need in dict.fromkeys(needs)
        if isinstance(need, str) and need != name and need in steps
    ]
    for found in graph.validate(list(steps), edges):
        if found.kind == "cycle" and found.cycle:
            first, second = found.cycle[0], found.cycle[1]
            problems.append(DefinitionProblem(found.message, (*at, first, "needs", needs_of[first].index(second))))
    return problems


# --- YAML with line numbers ---


class _TooBig(Exception):
    pass


class _Builder:
    """Turns a composed YAML node tree into plain data, noting each key's line and rejecting duplicate keys (which
    PyYAML would silently resolve to the last one)."""

    def __init__(self, loader: yaml.SafeLoader) -> None:
        self.loader = loader
        self.marks: dict[Loc, tuple[int, int]] = {}  # line and column of each key or list item, from 1
        self.problems: list[DefinitionProblem] = []
        self.nodes = 0
        self.checked: set[int] = set()
        self.refused: set[Loc] = set()  # where a NUL was found

    def build(self, node: yaml.Node, loc: Loc) -> Any:
        self.nodes += 1
        if self.nodes > _MAX_NODES:
            raise _TooBig
        if len(loc) > _MAX_DEPTH:
            self.problems.append(DefinitionProblem("nested too deeply", loc))
            return None
        if isinstance(node, yaml.CollectionNode) and node.tag not in _PLAIN_TAGS:
            # Collections are built here, not by PyYAML's constructor, so its refusal of unknown tags is ours to do.
            problem = f"could not determine a constructor for the tag {node.tag!r}"
            raise ConstructorError(None, None, problem, node.start_mark)
        if isinstance(node, yaml.MappingNode):
            return self._mapping(node, loc)
        if isinstance(node, yaml.SequenceNode):
            # Step names stay text too: `needs: [on]` names the step "on", not true.
            names = bool(loc) and loc[-1] in ("needs", "only")
            items = []
            for i, item in enumerate(node.value):
                self.marks[(*loc, i)] = _position(item)
                if names and isinstance(item, yaml.ScalarNode):
                    self.nodes += 1
                    items.append(self._text(str(item.value), (*loc, i), item))
                else:
                    items.append(self.build(item, (*loc, i)))
            return items
        value = self.loader.construct_object(node, deep=True)
        return self._text(value, loc, node) if isinstance(value, str) else value

    def _text(self, text: str, loc: Loc, node: yaml.Node) -> str:
        """`text`, or, when it holds a NUL, a problem at `loc` on its line and the text with the NUL written as `\\0`
        (later checks of that value are then dropped: `load_definition`)."""
        if "\0" not in text:
            return text
        if not any(loc[:n] in self.refused for n in range(len(loc) + 1)):  # a key's value is not reported again
            self.refused.add(loc)
            self.problems.append(DefinitionProblem(_NUL_MESSAGE, loc, _position(node)[0]))
        return _visible(text)

    def _mapping(self, node: yaml.MappingNode, loc: Loc) -> dict[str, Any]:
        if id(node) not in self.checked:  # an aliased mapping is flattened once; merged keys may repeat after that
            self.checked.add(id(node))
            first: dict[str, int] = {}
            for key_node, _ in node.value:
                if not isinstance(key_node, yaml.ScalarNode) or key_node.tag == _MERGE_TAG:
                    continue
                line = key_node.start_mark.line + 1
                if key_node.value in first:
                    what = "step" if _is_steps(loc) else "key"
                    message = f'duplicate {what} "{key_node.value}" (first at line {first[key_node.value]})'
                    self.problems.append(DefinitionProblem(message, (*loc, _visible(str(key_node.value))), line))
                else:
                    first[key_node.value] = line
            self.loader.flatten_mapping(node)
        result: dict[str, Any] = {}
        for key_node, value_node in node.value:
            if not isinstance(key_node, yaml.ScalarNode):
                line = key_node.start_mark.line + 1
                self.problems.append(DefinitionProblem("expected a plain key, got a mapping or list", loc, line))
                continue
            # Keys stay text: YAML 1.1 would read `on:` or `yes:` as booleans.
            key = self._text(str(key_node.value), (*loc, _visible(str(key_node.value))), key_node)
            self.marks[(*loc, key)] = _position(key_node)
            result[key] = self.build(value_node, (*loc, key))
        return result


def _position(node: yaml.Node) -> tuple[int, int]:
    return node.start_mark.line + 1, node.start_mark.column + 1


def _is_steps(loc: Loc) -> bool:
    return loc == ("steps",) or (len(loc) == 3 and loc[0] == "types" and loc[2] == "steps")


def _parse(text: str, source: str) -> tuple[dict[str, Any], dict[Loc, tuple[int, int]], list[DefinitionProblem]]:
    """The file as plain data, where each key sits, and the faults YAML itself lets pass (duplicate keys)."""
    size = len(text.encode("utf-8", "surrogatepass"))
    if size > MAX_DEFINITION_BYTES:
        message = f"the file is {size} bytes, more than the {MAX_DEFINITION_BYTES} allowed"
        raise DefinitionError([DefinitionProblem(message)], source=source)
    loader: yaml.SafeLoader | None = None
    try:
        loader = yaml.SafeLoader(text)  # already reads the text, and rejects unprintable characters
        root = loader.get_single_node()
        if root is None:
            message = "the file is empty: expected a mapping with steps"
            raise DefinitionError([DefinitionProblem(message)], source=source)
        builder = _Builder(loader)
        data = builder.build(root, ())
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        detail = ", ".join(part for part in (exc.context, exc.problem) if part) or "not valid YAML"
        line, column = (mark.line + 1, mark.column + 1) if mark else (None, None)
        raise DefinitionError([DefinitionProblem(f"invalid YAML: {detail}", (), line, column)], source=source) from None
    except ReaderError as exc:
        line = text.count("\n", 0, max(exc.position, 0)) + 1
        code = exc.character if isinstance(exc.character, int) else ord(str(exc.character)[:1] or "\0")
        message = f"invalid YAML: the character U+{code:04X} is not allowed"
        raise DefinitionError([DefinitionProblem(message, (), line)], source=source) from None
    except (_TooBig, RecursionError):
        message = f"the file expands to more than {_MAX_NODES} values (deep nesting or aliases)"
        raise DefinitionError([DefinitionProblem(message)], source=source) from None
    finally:
        if loader is not None:
            loader.dispose()
    builder.marks[()] = _position(root)
    if not isinstance(data, dict):
        message = f"expected a mapping (concurrency, timeout, steps, types) at the top level, got {_show(data)}"
        raise DefinitionError([DefinitionProblem(message, (), builder.marks[()][0])], source=source)
    return data, builder.marks, builder.problems


def _locate(problems: Iterable[DefinitionProblem], marks: Mapping[Loc, tuple[int, int]]) -> list[DefinitionProblem]:
    """Give each problem the line of its key (or of the nearest enclosing key), then sort them as the file reads."""
    located: list[tuple[tuple[int, int], DefinitionProblem]] = []
    for problem in problems:
        loc = problem.loc
        while loc not in marks and loc:
            loc = loc[:-1]
        mark = marks.get(loc, (0, 0))
        line = problem.line if problem.line is not None else mark[0] or None
        sort_key = mark if problem.line is None or problem.line == mark[0] else (problem.line, problem.column or 0)
        located.append((sort_key, DefinitionProblem(problem.message, problem.loc, line, problem.column)))
    located.sort(key=lambda pair: pair[0])
    return [problem for _, problem in located]


# Allowed keys by where they sit, for "unknown key" hints.
_TOP_KEYS = tuple(PipelineDefinition.model_fields)
_STEP_KEYS = tuple(field.alias or name for name, field in StepDefinition.model_fields.items())
_TYPE_KEYS = tuple(TypeDefinition.model_fields)
_LIMIT_KEYS = tuple(StepLimitsDefinition.model_fields)


def _keys_at(loc: Loc) -> tuple[str, ...]:
    if not loc:
        return _TOP_KEYS
    if _is_steps(loc[:-1]):
        return _STEP_KEYS
    if len(loc) == 2 and loc[0] == "types":
        return _TYPE_KEYS
    if loc[-1] == "limits" and _is_steps(loc[:-2]):
        return _LIMIT_KEYS
    return ()


def _from_pydantic(error: Any) -> DefinitionProblem:
    loc: Loc = tuple(error["loc"])
    if loc and loc[-1] == "[key]":
        loc = loc[:-1]
    kind = error["type"]
    value = error.get("input")
    if kind == "extra_forbidden":
        key, parent = loc[-1], loc[:-1]
        allowed = _keys_at(parent)
        hint = _suggest(key, allowed, _KEY_ALIASES) or (f" (expected one of: {', '.join(allowed)})" if allowed else "")
        return DefinitionProblem(f'unknown key "{key}"{hint}', loc)
    if kind == "missing":
        return DefinitionProblem(f'missing required key "{loc[-1]}"', loc[:-1])
    if kind in ("model_type", "model_attributes_type", "dict_type"):
        message = f"expected a mapping, got {_show(value)}"
    elif kind in ("tuple_type", "list_type"):
        message = f"expected a list, got {_show(value)}"
    elif kind == "string_type":
        message = f"expected a string, got {_show(value)}"
    else:
        message = str(error["msg"])
    return DefinitionProblem(message, loc)


def load_definition(text: str, *, source: str = DEFAULT_SOURCE) -> PipelineDefinition:
    """Parse and validate a `.taskmaster.yml`. `source` names the file in messages.

    Raises `DefinitionError` listing every problem found, each as ``source:line: key.path: what was expected``
    (YAML syntax errors as ``source:line:column: invalid YAML: ...``).
    """
    data, marks, problems = _parse(text, source)
    # A value refused for its NUL is reported once: not again as, say, a bad step name or an unknown need.
    refused = [p.loc for p in problems if p.message == _NUL_MESSAGE]
    found: list[DefinitionProblem] = []
    try:
        definition = PipelineDefinition.model_validate(data)
    except ValidationError as exc:
        found = [_from_pydantic(error) for error in exc.errors()]
        reported = {p.loc for p in found}
        found += [p for p in _cross_check(data) if p.loc not in reported]
    except DefinitionError as exc:
        found = list(exc.problems)
    problems += [p for p in found if not any(p.loc[: len(loc)] == loc for loc in refused)]
    if problems:
        raise DefinitionError(_locate(problems, marks), source=source)
    return definition


# --- the default, for repositories without a `.taskmaster.yml` ---

# Plain Python commands for callers that give none; a run detects its repository's own (`pipelines/defaults.py`).
DEFAULT_INSTALL = "python3 -m venv .venv && .venv/bin/python -m pip install -e '.[test]' pytest ruff"
DEFAULT_LINT = ".venv/bin/python -m ruff check ."
DEFAULT_TEST = ".venv/bin/python -m pytest -q"


def default_validation_definition(
    *, install: str = DEFAULT_INSTALL, lint: str = DEFAULT_LINT, test: str = DEFAULT_TEST
) -> PipelineDefinition:
    """`checkout → install → (lint ∥ test) → ai_review`, with commands for a Python repository unless given."""
    return PipelineDefinition.model_validate(
        {
            "steps": {
                "checkout": {"uses": "checkout", "timeout": 300},
                "install": {"run": install, "needs": ["checkout"], "network": True, "timeout": 900},
                "lint": {"run": lint, "needs": ["install"], "timeout": 600},
                "test": {"run": test, "needs": ["install"]},
                "ai_review": {"uses": "ai_review", "needs": ["lint", "test"], "timeout": 900},
            }
        }
    )
