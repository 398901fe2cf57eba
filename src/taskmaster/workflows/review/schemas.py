"""The AI review's data: what a reviewer reads (`ReviewInput`), what it answers (`Verdict`) and what is reported
(`ReviewReport`: anchored findings, the unanchored count, and the coverage of every changed file)."""

from __future__ import annotations

from typing import Literal, Self

from pydantic import BaseModel, ConfigDict, Field, model_validator

from taskmaster.projects.settings import Severity

FileStatus = Literal["added", "modified", "deleted", "renamed"]
LineKind = Literal["+", "-", " "]
CoverageStatus = Literal["reviewed", "clipped", "skipped"]


class DiffLine(BaseModel):
    """One line of a hunk: added (`+`, with its new-file number), removed (`-`, no new number) or context."""

    model_config = ConfigDict(frozen=True)

    kind: LineKind
    new_line: int | None
    text: str


class Hunk(BaseModel):
    """One `@@` section: where it starts on each side, and its lines."""

    model_config = ConfigDict(frozen=True)

    old_start: int
    new_start: int
    header: str = ""
    lines: tuple[DiffLine, ...] = ()

    @property
    def added(self) -> dict[int, str]:
        """New-file line number -> text of every added line."""
        return {line.new_line: line.text for line in self.lines if line.kind == "+" and line.new_line is not None}


class FileDiff(BaseModel):
    """The change to one file between the base and the head."""

    model_config = ConfigDict(frozen=True)

    path: str
    old_path: str | None = None
    status: FileStatus = "modified"
    binary: bool = False
    hunks: tuple[Hunk, ...] = ()

    @property
    def additions(self) -> int:
        return sum(1 for hunk in self.hunks for line in hunk.lines if line.kind == "+")

    @property
    def deletions(self) -> int:
        return sum(1 for hunk in self.hunks for line in hunk.lines if line.kind == "-")

    @property
    def added(self) -> dict[int, str]:
        """Every added line of the file by its new-file number."""
        lines: dict[int, str] = {}
        for hunk in self.hunks:
            lines.update(hunk.added)
        return lines


class StepResult(BaseModel):
    """Another step of the same pipeline, as the reviewer sees it (failures carry the tail of their log)."""

    name: str
    status: str
    failure_reason: str | None = None
    log_tail: str = ""


class RuleFile(BaseModel):
    """A file of the repository's own review rules at the commit (`.taskmaster/review.md`, AGENTS.md, CLAUDE.md)."""

    path: str
    text: str


class ReviewInput(BaseModel):
    """Everything one review reads."""

    base_sha: str
    head_sha: str
    title: str = ""
    body: str = ""
    acceptance: tuple[str, ...] = ()
    rules: tuple[RuleFile, ...] = ()
    steps: tuple[StepResult, ...] = ()
    files: tuple[FileDiff, ...] = ()


class Finding(BaseModel):
    """One problem a reviewer found. `quote` is the code it is about, copied from the diff's added lines: Taskmaster
    anchors the finding by matching it, so the line numbers are only a hint."""

    file: str = Field(min_length=1, max_length=1000, description="Path of the file, as in the diff.")
    start_line: int = Field(ge=1, description="First line in the new file.")
    end_line: int = Field(ge=1, description="Last line in the new file (>= start_line).")
    severity: Severity
    category: str = Field(min_length=1, max_length=50, description="e.g. bug, security, performance, style, test.")
    message: str = Field(min_length=1, max_length=4000)
    replacement: str | None = Field(None, max_length=20_000, description="Suggested text for the quoted lines.")
    confidence: float = Field(ge=0, le=1)
    quote: str = Field("", max_length=20_000, description="The exact code the finding is about (added lines).")

    @model_validator(mode="after")
    def _lines_in_order(self) -> Self:
        if self.end_line < self.start_line:
            raise ValueError(f"end_line {self.end_line} is before start_line {self.start_line}")
        return self


class Verdict(BaseModel):
    """The review of a pull request's diff: a summary, findings on the changed lines, and whether the change meets
    the task's acceptance criteria (null when there are none or it cannot be told)."""

    summary: str = Field(max_length=20_000)
    findings: list[Finding] = Field(default_factory=list, max_length=500)
    meets_acceptance: bool | None = None


class AnchoredFinding(Finding):
    """A finding placed on changed lines of its file; `fingerprint` identifies it across pushes of a PR."""

    fingerprint: str
    new: bool = True
    """False when an earlier push of the same pull request reported it already (it is not posted again)."""


class FileCoverage(BaseModel):
    """What the review did with one changed file, and why when it did not review all of it."""

    path: str
    status: CoverageStatus
    reason: str | None = None


class ReviewReport(BaseModel):
    """One review's result, as stored and reported."""

    reviewer: str
    summary: str = ""
    findings: list[AnchoredFinding] = Field(default_factory=list)
    unanchored: list[Finding] = Field(default_factory=list)
    coverage: list[FileCoverage] = Field(default_factory=list)
    meets_acceptance: bool | None = None
    passed: bool = True
    failing: list[str] = Field(default_factory=list)
    """Why the policy failed the review, one line per failing finding."""
    chunks: int = 0
    input_tokens: int = 0
    output_tokens: int = 0

    @property
    def unanchored_count(self) -> int:
        return len(self.unanchored)

    @property
    def new_findings(self) -> list[AnchoredFinding]:
        return [finding for finding in self.findings if finding.new]

    def counts(self) -> dict[str, int]:
        """Files by coverage status."""
        counted = {"reviewed": 0, "clipped": 0, "skipped": 0}
        for item in self.coverage:
            counted[item.status] += 1
        return counted
