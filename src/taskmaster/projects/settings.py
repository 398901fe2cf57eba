"""Typed project settings: every key a project may set, read through one model and changed by dotted name.

Stored as the project's JSON column, holding only what was set; a key set to None goes back to its default.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from taskmaster.core.errors import InvalidInput

AgentType = Literal["claude", "codex", "gemini", "aider", "goose", "custom"]
CodingAgentKind = Literal["offline", "agentapi", "codegen"]
Reviewer = Literal["offline", "anthropic", "openai", "ollama", "agentapi"]
FailOn = Literal["blocker", "major", "minor", "none"]
RecoveryAgent = Literal["off", "anthropic", "openai", "ollama", "agentapi", "codegen"]
RecoveryMode = Literal["push", "suggest"]
Severity = Literal["blocker", "major", "minor", "nit"]

_SEVERITY_RANK: dict[str, int] = {"blocker": 0, "major": 1, "minor": 2, "nit": 3, "none": -1}


class _Group(BaseModel):
    # Stored data written by another version may hold keys this one does not know: reading ignores them, while
    # `apply` refuses unknown keys on write.
    model_config = ConfigDict(extra="ignore", frozen=True)


class AgentSettings(_Group):
    """The coding agent that code generation and recovery run."""

    type: AgentType = Field("claude", description="Which agent CLI: claude, codex, gemini, aider, goose or custom.")
    command: str | None = Field(
        None, min_length=1, max_length=1000, description="The command line to run; default: the type's own CLI."
    )


class CodegenSettings(_Group):
    """Code generation: which coding agent writes the code, how many tasks at once, what happens after a merge."""

    agent: CodingAgentKind = Field("offline", description="The coding agent: offline, agentapi or codegen.")
    max_parallel: int = Field(2, ge=1, le=64, description="Coding agents of this project working at once.")
    max_failures: int = Field(
        3, ge=1, le=100, description="Failed runs of one task before it is blocked instead of going back to pending."
    )
    loop: bool = Field(False, description="When a Taskmaster PR merges, start runs for the tasks it made ready.")
    timeout: float = Field(1800.0, gt=0, le=86400, description="Seconds a coding agent may work on one task.")


class ReviewSettings(_Group):
    """The AI review's reviewer and its pass/fail policy."""

    reviewer: Reviewer = Field("offline", description="offline, anthropic, openai, ollama or agentapi.")
    fail_on: FailOn = Field("major", description="The least severe finding that fails the review; none: never fail.")
    min_confidence: float = Field(
        0.8, ge=0, le=1, description="Below blocker, a finding fails the review only with at least this confidence."
    )
    allowed: tuple[Reviewer, ...] = Field(
        (),
        max_length=5,
        description="Reviewers a step's `with: {reviewer: …}` may choose besides this one and offline "
        "(comma-separated).",
    )
    skip: tuple[str, ...] | None = Field(
        None,
        max_length=200,
        description="Glob patterns of files the review skips (comma-separated); unset: lock, vendored and "
        "generated files.",
    )
    max_tokens_per_chunk: int = Field(
        12_000, ge=1_000, le=1_000_000, description="Diff tokens sent to the reviewer per request at most."
    )

    @field_validator("skip", "allowed", mode="before")
    @classmethod
    def _split(cls, value: Any) -> Any:
        # `--set review.skip=a/**,*.lock` arrives as one string.
        if isinstance(value, str):
            return tuple(part.strip() for part in value.split(",") if part.strip())
        return value

    def allows(self, reviewer: str) -> bool:
        """Whether a step's `with:` may choose `reviewer`: the project's own, offline, or one listed in `allowed`."""
        return reviewer in (self.reviewer, "offline", *self.allowed)

    def fails(self, severity: Severity, confidence: float) -> bool:
        """Whether one finding fails the review: by default any blocker, or a major with confidence >= 0.8."""
        if self.fail_on == "none" or _SEVERITY_RANK[severity] > _SEVERITY_RANK[self.fail_on]:
            return False
        return severity == "blocker" or confidence >= self.min_confidence


class RecoverySettings(_Group):
    """What happens after a step fails for a code reason."""

    agent: RecoveryAgent = Field("off", description="off, a provider (anthropic, openai, ollama), agentapi or codegen.")
    mode: RecoveryMode = Field("suggest", description="push a fix commit to the branch, or suggest it on the PR.")
    max_rounds: int = Field(2, ge=0, le=10, description="Fix attempts per failed pipeline.")
    budget_usd: float = Field(1.0, ge=0, le=10_000, description="Most a pipeline's recovery may spend on models.")
    daily_budget_usd: float = Field(
        10.0, ge=0, le=100_000, description="Most this project's recoveries may spend on models per UTC day."
    )
    allow_config_changes: bool = Field(
        False, description="A fix may change CI, lint or test configuration (.taskmaster.yml, workflows, pytest…)."
    )


class LimitSettings(_Group):
    """The most a step of this project may ask for with `limits:` in `.taskmaster.yml` (within the server's own
    maximum, `executor.max_limits`); unset: the server's maximum alone."""

    cpu: int | None = Field(None, ge=1, description="CPU seconds per process.")
    memory: int | None = Field(None, ge=1, description="Bytes of memory of the step's processes together.")
    processes: int | None = Field(None, ge=1, description="Processes and threads at once.")
    disk: int | None = Field(None, ge=1, description="Bytes in the step's workspace.")
    tmp: int | None = Field(None, ge=1, description="Bytes in the step's private /tmp.")


class ProjectSettings(_Group):
    """Every project setting, with its default."""

    cancelled_satisfies_dependencies: bool = Field(
        False, description="A cancelled task counts as done for the tasks that depend on it."
    )
    push_pipelines: bool = Field(False, description="A push to a branch without an open PR requests a pipeline.")
    allow_sha1_signatures: bool = Field(False, description="Accept GitHub's legacy SHA-1 webhook signature.")
    forge_api_url: str | None = Field(
        None,
        pattern=r"^https?://[^\s]+$",
        max_length=1000,
        description="The forge's API URL, for GitHub Enterprise or a self-managed GitLab.",
    )
    agent: AgentSettings = AgentSettings()
    codegen: CodegenSettings = CodegenSettings()
    review: ReviewSettings = ReviewSettings()
    recovery: RecoverySettings = RecoverySettings()
    limits: LimitSettings = LimitSettings()


def load(stored: Mapping[str, Any] | None) -> ProjectSettings:
    """The typed settings of a project's stored JSON; a stored value that is no longer valid is named."""
    try:
        return ProjectSettings.model_validate(stored or {})
    except ValidationError as exc:
        raise InvalidInput(f"stored project settings are invalid: {_describe(exc)}") from None


def keys() -> list[str]:
    """Every dotted key, in the order `taskmaster project show` prints them."""
    return list(_leaves(ProjectSettings))


def flat(settings: ProjectSettings) -> dict[str, Any]:
    """The settings by dotted key."""
    values: dict[str, Any] = {}
    for key in _leaves(ProjectSettings):
        value: Any = settings
        for part in key.split("."):
            value = getattr(value, part)
        values[key] = value
    return values


def apply(stored: Mapping[str, Any] | None, changes: Mapping[str, Any]) -> dict[str, Any]:
    """The stored JSON after `changes` (dotted key -> value; None resets a key to its default), validated.

    Raises InvalidInput naming the first unknown key or the keys whose values are refused; `stored` is not changed.
    """
    known = set(_leaves(ProjectSettings))
    result = _copy(stored or {})
    for key, value in changes.items():
        if key not in known:
            raise InvalidInput(f"unknown project setting {key!r}; known settings: {', '.join(sorted(known))}")
        _put(result, key, value)
    try:
        validated = ProjectSettings.model_validate(result)
    except ValidationError as exc:
        raise InvalidInput(f"invalid project setting: {_describe(exc)}") from None
    # Store what pydantic made of each value ("3" -> 3); keys written by others stay untouched.
    typed = flat(validated)
    for key, value in changes.items():
        if value is not None:
            _put(result, key, typed[key])
    return {key: value for key, value in result.items() if value != {} or key not in ProjectSettings.model_fields}


def nested(changes: Mapping[str, Any]) -> dict[str, Any]:
    """Dotted changes from a mapping that may also nest groups (`{"review": {"fail_on": "minor"}}`)."""
    dotted: dict[str, Any] = {}
    for key, value in changes.items():
        if isinstance(value, Mapping) and key in ProjectSettings.model_fields:
            dotted.update({f"{key}.{inner}": v for inner, v in value.items()})
        else:
            dotted[key] = value
    return dotted


def _leaves(model: type[BaseModel], prefix: str = "") -> Iterator[str]:
    for name, field in model.model_fields.items():
        annotation = field.annotation
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            yield from _leaves(annotation, f"{prefix}{name}.")
        else:
            yield f"{prefix}{name}"


def _put(stored: dict[str, Any], key: str, value: Any) -> None:
    *groups, leaf = key.split(".")
    target = stored
    for group in groups:
        if not isinstance(target.get(group), dict):
            target[group] = {}
        target = target[group]
    if value is None:
        target.pop(leaf, None)
    else:
        target[leaf] = value


def _copy(stored: Mapping[str, Any]) -> dict[str, Any]:
    return {key: _copy(value) if isinstance(value, Mapping) else value for key, value in stored.items()}


def _describe(exc: ValidationError) -> str:
    return "; ".join(f"{'.'.join(map(str, error['loc']))}: {error['msg']}" for error in exc.errors())
