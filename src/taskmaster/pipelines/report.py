"""A pipeline's result, reported to its forge: a commit status per step and overall, one check run (GitHub App
mode), one persistent pull request comment, and an issue for manual review. Plain values in, `Forge` calls out.
"""

from __future__ import annotations

import html
import re
from collections import OrderedDict
from collections.abc import Awaitable, Sequence
from dataclasses import dataclass
from typing import TypeVar

import structlog

from taskmaster.core.errors import InvalidInput
from taskmaster.forges.base import (
    Annotation,
    CheckConclusion,
    CheckRunSpec,
    CheckStatus,
    CommitState,
    Forge,
    ForgeError,
    ForgeNotFound,
    IssueRef,
)
from taskmaster.pipelines.states import FailureReason, PipelineStatus, StepStatus

T = TypeVar("T")

log = structlog.stdlib.get_logger("taskmaster.pipelines.report")

COMMENT_MARKER = "pipeline"
"""The marker of the one persistent comment a pull request gets (see `Forge.upsert_comment`)."""
CHECK_RUN_TEXT_LIMIT = 65535
"""GitHub's limit on a check run's summary and on its text, in characters."""
COMMENT_LIMIT = 65000
"""Under GitHub's 65536 characters for a comment or issue body, leaving room for the marker line."""
COMMENT_LOG_TAIL = 6000
"""How much of a failing step's log a comment or issue shows; the check run's text shows more."""
ERROR_MESSAGE_LIMIT = 2000
MAX_ANNOTATIONS = 500
"""Annotations sent per check run (10 requests of 50); the summary says how many more there were."""
SUPERSEDED = "superseded by a newer commit"
_SENT_CACHE_SIZE = 4096
# Room kept for headings, tables and markers when log tails share a size limit.
_MARKDOWN_OVERHEAD = 4096

_RETRIABLE = frozenset({StepStatus.RETRY_SCHEDULED, StepStatus.AWAITING_RECOVERY})
"""Failed once and not finished: the step says why it failed while it waits."""
_COMMIT_STATE: dict[str, CommitState] = {
    StepStatus.PENDING: CommitState.PENDING,
    StepStatus.QUEUED: CommitState.PENDING,
    StepStatus.WAITING: CommitState.PENDING,
    StepStatus.RETRY_SCHEDULED: CommitState.PENDING,
    StepStatus.AWAITING_RECOVERY: CommitState.PENDING,
    StepStatus.RUNNING: CommitState.RUNNING,
    StepStatus.SUCCESS: CommitState.SUCCESS,
    StepStatus.FAILED: CommitState.FAILURE,
    StepStatus.ERROR: CommitState.ERROR,
    StepStatus.TIMED_OUT: CommitState.ERROR,
    StepStatus.CANCELED: CommitState.CANCELED,
    StepStatus.SKIPPED: CommitState.SKIPPED,
}

# An error (infra) still blocks a merge: GitHub's "failure"; a time-out has its own conclusion.
_CONCLUSION: dict[PipelineStatus, CheckConclusion] = {
    PipelineStatus.SUCCESS: CheckConclusion.SUCCESS,
    PipelineStatus.FAILED: CheckConclusion.FAILURE,
    PipelineStatus.ERROR: CheckConclusion.FAILURE,
    PipelineStatus.TIMED_OUT: CheckConclusion.TIMED_OUT,
    PipelineStatus.CANCELED: CheckConclusion.CANCELLED,
}

_WORDS: dict[str, str] = {
    StepStatus.PENDING: "pending",
    StepStatus.QUEUED: "queued",
    StepStatus.WAITING: "waiting for its needs",
    StepStatus.RETRY_SCHEDULED: "retry scheduled",
    StepStatus.AWAITING_RECOVERY: "awaiting recovery",
    StepStatus.RUNNING: "running",
    StepStatus.SUCCESS: "passed",
    StepStatus.FAILED: "failed",
    StepStatus.ERROR: "error",
    StepStatus.TIMED_OUT: "timed out",
    StepStatus.CANCELED: "canceled",
    StepStatus.SKIPPED: "skipped",
}

_ICONS: dict[str, str] = {
    StepStatus.PENDING: "⏳",
    StepStatus.QUEUED: "⏳",
    StepStatus.WAITING: "⏳",
    StepStatus.RETRY_SCHEDULED: "🔁",
    StepStatus.AWAITING_RECOVERY: "🩺",
    StepStatus.RUNNING: "🔄",
    StepStatus.SUCCESS: "✅",
    StepStatus.FAILED: "❌",
    StepStatus.ERROR: "❗",
    StepStatus.TIMED_OUT: "⏱️",
    StepStatus.CANCELED: "🚫",
    StepStatus.SKIPPED: "⏭️",
}

_KEPT_WHEN_SUPERSEDED = frozenset({StepStatus.SUCCESS, StepStatus.SKIPPED})


@dataclass(frozen=True, slots=True)
class StepReport:
    """One step as the forge shows it. `log_tail` is the end of its log with secrets already masked; the
    reporter shortens it further. `annotations` are findings on lines of files (lint errors, failing asserts).
    """

    name: str
    status: StepStatus
    failure_reason: FailureReason | None = None
    exit_code: int | None = None
    duration_ms: int | None = None
    error_message: str | None = None
    log_tail: str = ""
    annotations: tuple[Annotation, ...] = ()
    summary: str = ""
    """A built-in step's own section of the report, in Markdown (the AI review's findings); empty: none."""

    @property
    def skipped_for_a_reason(self) -> bool:
        """Skipped with a reason (a built-in step with no service, or nothing to do), unlike a step that was not
        needed: it did not pass, so it must not be shown as passing."""
        return self.status is StepStatus.SKIPPED and bool(self.error_message)

    def __post_init__(self) -> None:
        # Callers read these from database columns: a plain string is accepted and checked.
        object.__setattr__(self, "status", _member(StepStatus, self.status))
        if self.failure_reason is not None:
            object.__setattr__(self, "failure_reason", _member(FailureReason, self.failure_reason))
        object.__setattr__(self, "annotations", tuple(self.annotations))


@dataclass(frozen=True, slots=True)
class RecoveryReport:
    """One recovery round of a step, as the pull request's comment lists it."""

    step: str
    round: int
    agent: str
    result: str
    detail: str | None = None
    fix_sha: str | None = None
    tokens: int = 0
    cost_usd: float | None = None


@dataclass(frozen=True, slots=True)
class PipelineReport:
    """A pipeline at one moment, for its forge: `repo` as the forge names it, its steps in plan order,
    `details_url` where a person reads more (the dashboard), `superseded` when a newer commit replaced it.
    """

    pipeline_id: str
    repo: str
    commit_sha: str
    pull_request_number: int | None
    status: PipelineStatus
    failure_reason: FailureReason | None = None
    duration_ms: int | None = None
    error_message: str | None = None
    steps: tuple[StepReport, ...] = ()
    details_url: str | None = None
    superseded: bool = False
    recovery: tuple[RecoveryReport, ...] = ()
    """The recovery rounds of its failed steps, in order."""
    review_issue_url: str | None = None

    def __post_init__(self) -> None:
        if not self.commit_sha:
            raise InvalidInput(f"pipeline {self.pipeline_id}: a report needs the commit sha")
        object.__setattr__(self, "pipeline_id", str(self.pipeline_id))
        object.__setattr__(self, "status", _member(PipelineStatus, self.status))
        if self.failure_reason is not None:
            object.__setattr__(self, "failure_reason", _member(FailureReason, self.failure_reason))
        object.__setattr__(self, "steps", tuple(self.steps))
        object.__setattr__(self, "recovery", tuple(self.recovery))

    @property
    def is_finished(self) -> bool:
        """Terminal, or superseded (which ends it whatever the last status written was)."""
        return self.superseded or self.status.is_terminal


@dataclass(frozen=True, slots=True)
class ReportResult:
    """What one report left on the forge: the check run id (store it and pass it back as
    `previous_check_run_id` so the next report updates the same run), the comment id, the issue opened, and the
    forge errors met on the way (each call is attempted whatever the others did).
    """

    check_run_id: str | None = None
    comment_id: str | None = None
    issue: IssueRef | None = None
    errors: tuple[ForgeError, ...] = ()

    @property
    def ok(self) -> bool:
        return not self.errors


E = TypeVar("E", StepStatus, PipelineStatus, FailureReason)


def _member(kind: type[E], value: E | str) -> E:
    try:
        return kind(value)
    except ValueError:
        raise InvalidInput(f"{value!r} is not a {kind.__name__}") from None


def commit_state(status: PipelineStatus | StepStatus) -> CommitState:
    """The commit status state for a pipeline or step status (a superseded pipeline is reported canceled)."""
    return _COMMIT_STATE[status]


def needs_manual_review(report: PipelineReport) -> bool:
    """A pipeline whose own code failed (not the infrastructure, not a time-out), and that nothing replaced."""
    return (
        report.status is PipelineStatus.FAILED and report.failure_reason is FailureReason.CODE and not report.superseded
    )


class ForgeReporter:
    """Reports pipelines to one forge; the engine calls `report` on every pipeline state change.

    Each report sets the commit statuses `<prefix>/<step>` and `<prefix>`; when the forge's capabilities include
    check runs (GitHub as an App) it also creates, then updates, the check run named `<prefix>`. A finished
    pipeline of a pull request writes the pull request's one persistent comment (edited on later runs); a
    superseded one leaves the comment to the pipeline of the newer commit.

    Reporting is best effort: a `ForgeError` is logged and collected in `ReportResult.errors`, and the other
    calls still happen. With `skip_unchanged`, the reporter remembers (bounded, in this process) the last state
    and description it set per commit and context and does not send the same one again, which saves most writes
    on forges that pace them; turn it off if several processes report the same pipeline.
    """

    def __init__(
        self,
        forge: Forge,
        *,
        context_prefix: str = "taskmaster",
        issue_labels: Sequence[str] = (),
        skip_unchanged: bool = True,
    ) -> None:
        if not context_prefix or context_prefix != context_prefix.strip() or context_prefix.endswith("/"):
            raise InvalidInput(f"a status context prefix is a non-empty name, got {context_prefix!r}")
        self._forge = forge
        self._prefix = context_prefix
        self._check_runs = forge.capabilities.check_runs
        self._issue_labels = tuple(issue_labels)
        self._sent: OrderedDict[tuple[str, str, str], tuple[CommitState, str, str | None]] | None = (
            OrderedDict() if skip_unchanged else None
        )

    async def report(
        self,
        report: PipelineReport,
        *,
        previous_check_run_id: str | None = None,
        open_issue: bool = False,
    ) -> ReportResult:
        """Bring the forge up to date with `report`. `open_issue` asks for an issue for manual review, opened
        only when the pipeline failed on a `code` failure. Never raises `ForgeError`: see `ReportResult.errors`.
        """
        errors: list[ForgeError] = []
        check_run_id = previous_check_run_id
        if self._check_runs:
            made = await self._attempt(errors, report, "check run", self._check_run(report, previous_check_run_id))
            check_run_id = made or previous_check_run_id

        # GitHub's commit statuses have no skipped or neutral state (a skipped status reads as a green success):
        # there a step skipped for a reason gets no status at all; the pipeline's own status names it.
        hide = {f"{self._prefix}/{step.name}" for step in report.steps if step.skipped_for_a_reason}
        for context, state, description in commit_statuses(report, self._prefix):
            if self._forge.name == "github" and context in hide:
                continue
            await self._attempt(
                errors, report, f"status {context}", self._set_status(report, context, state, description)
            )

        comment_id: str | None = None
        if report.pull_request_number is not None and report.is_finished and not report.superseded:
            comment_id = await self._attempt(
                errors,
                report,
                "comment",
                self._forge.upsert_comment(
                    report.repo, report.pull_request_number, marker=COMMENT_MARKER, body=render_comment(report)
                ),
            )

        issue: IssueRef | None = None
        if open_issue and needs_manual_review(report):
            issue = await self._attempt(
                errors,
                report,
                "issue",
                self._forge.create_issue(
                    report.repo,
                    title=issue_title(report),
                    body=render_issue(report, forge=self._forge.name),
                    labels=self._issue_labels,
                ),
            )
        return ReportResult(check_run_id=check_run_id, comment_id=comment_id, issue=issue, errors=tuple(errors))

    async def _attempt(
        self, errors: list[ForgeError], report: PipelineReport, action: str, call: Awaitable[T]
    ) -> T | None:
        try:
            return await call
        except ForgeError as exc:
            log.warning(
                "forge report failed",
                forge=self._forge.name,
                repo=report.repo,
                pipeline_id=report.pipeline_id,
                action=action,
                error=exc.code,
                detail=exc.detail,
            )
            errors.append(exc)
            return None

    async def _check_run(self, report: PipelineReport, previous: str | None) -> str:
        spec = check_run_spec(report, name=self._prefix)
        if previous is not None:
            try:
                await self._forge.update_check_run(report.repo, previous, spec)
                return previous
            except ForgeNotFound:
                # Deleted with its check suite (a re-run on GitHub): a new run keeps the commit reported.
                log.info("check run gone, creating a new one", repo=report.repo, pipeline_id=report.pipeline_id)
        return await self._forge.create_check_run(report.repo, spec)

    async def _set_status(self, report: PipelineReport, context: str, state: CommitState, description: str) -> None:
        key = (report.repo, report.commit_sha, context)
        value = (state, description, report.details_url)
        if self._sent is not None and self._sent.get(key) == value:
            return
        await self._forge.set_commit_status(
            report.repo,
            report.commit_sha,
            context=context,
            state=state,
            description=description,
            target_url=report.details_url,
        )
        if self._sent is not None:
            self._sent[key] = value
            self._sent.move_to_end(key)
            while len(self._sent) > _SENT_CACHE_SIZE:
                self._sent.popitem(last=False)


# --- what is sent ---------------------------------------------------------------------------------------------


def commit_statuses(report: PipelineReport, prefix: str = "taskmaster") -> list[tuple[str, CommitState, str]]:
    """(context, state, description) for every step, in order, then for the pipeline."""
    statuses = [(f"{prefix}/{step.name}", *_step_status(report, step)) for step in report.steps]
    if report.superseded:
        statuses.append((prefix, CommitState.CANCELED, f"Canceled: {SUPERSEDED}"))
    else:
        statuses.append((prefix, commit_state(report.status), _headline(report)))
    return statuses


def check_run_spec(report: PipelineReport, *, name: str = "taskmaster") -> CheckRunSpec:
    """The pipeline's check run: queued, in progress, or completed with a conclusion; annotations only once
    completed, because GitHub appends the annotations of every update to the run's.
    """
    if report.superseded:
        status, conclusion = CheckStatus.COMPLETED, CheckConclusion.CANCELLED
    elif report.status.is_terminal:
        status, conclusion = CheckStatus.COMPLETED, _CONCLUSION[report.status]
        if report.status is PipelineStatus.SUCCESS and any(step.skipped_for_a_reason for step in report.steps):
            conclusion = CheckConclusion.NEUTRAL  # passed, but not everything asked for ran (e.g. the AI review)
    elif report.status is PipelineStatus.RUNNING:
        status, conclusion = CheckStatus.IN_PROGRESS, None
    else:
        status, conclusion = CheckStatus.QUEUED, None
    annotations: tuple[Annotation, ...] = ()
    omitted = 0
    if status is CheckStatus.COMPLETED and not report.superseded:
        every = [item for step in report.steps for item in step.annotations]
        annotations = tuple(every[:MAX_ANNOTATIONS])
        omitted = len(every) - len(annotations)
    summary = _summary(report)
    if omitted:
        summary += f"\n\n{omitted:,} more annotations are not shown."
    text = _failure_text(report)
    return CheckRunSpec(
        name=name,
        head_sha=report.commit_sha,
        status=status,
        conclusion=conclusion,
        title=_headline(report),
        summary=_cap(summary, CHECK_RUN_TEXT_LIMIT),
        text=_cap(text, CHECK_RUN_TEXT_LIMIT) if text else None,
        annotations=annotations,
        details_url=report.details_url,
        external_id=report.pipeline_id,
    )


def render_comment(report: PipelineReport) -> str:
    """The pull request comment (without its marker line): result, step table, failing steps' details."""
    parts = [
        f"### {_ICONS[_overall_status(report)]} Taskmaster: {_headline(report)}",
        _facts(report),
        _step_table(report),
        *_step_summaries(report),
    ]
    if report.recovery:
        parts.append(_recovery_table(report))
    parts.extend(_failure_sections(report, log_limit=_log_budget(report, COMMENT_LIMIT, COMMENT_LOG_TAIL)))
    return _cap("\n\n".join(parts), COMMENT_LIMIT)


def _recovery_table(report: PipelineReport) -> str:
    rows = [
        "#### 🩺 Recovery",
        "",
        "| Step | Round | Agent | Result | Fix | Tokens | Cost | Detail |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for item in report.recovery:
        cost = "" if item.cost_usd is None else f"${item.cost_usd:.4f}"
        detail = _cell((item.detail or "").splitlines()[0][:120] if item.detail else "")
        fix = f"`{item.fix_sha[:12]}`" if item.fix_sha else ""
        rows.append(
            f"| `{_cell(item.step)}` | {item.round} | {_cell(item.agent)} | {item.result} | {fix} | {item.tokens} "
            f"| {cost} | {detail} |"
        )
    if report.review_issue_url:
        rows += ["", f"No fix passed its trial: [issue for manual review]({report.review_issue_url})."]
    return "\n".join(rows)


def issue_title(report: PipelineReport) -> str:
    """Names the pipeline, the commit and the failing step."""
    step = _failing_step(report)
    where = f" at step '{step.name}'" if step is not None else ""
    return f"Manual review: pipeline {report.pipeline_id} failed{where} on commit {report.commit_sha[:12]}"


def render_issue(report: PipelineReport, *, forge: str = "github") -> str:
    """The issue's body: why a person is needed, where (pipeline link, commit, pull request), and the failure."""
    pipeline = f"[{report.pipeline_id}]({report.details_url})" if report.details_url else f"`{report.pipeline_id}`"
    lines = [
        "Taskmaster's pipeline failed on the code under test and no automatic fix was found: "
        "it needs a person to look at it.",
        "",
        f"- Pipeline: {pipeline}",
        f"- Commit: `{report.commit_sha}`",
    ]
    if report.pull_request_number is not None:
        # GitLab refers to merge requests with `!`; `#` would point at an issue.
        sigil = "!" if forge == "gitlab" else "#"
        lines.append(f"- {'Merge' if forge == 'gitlab' else 'Pull'} request: {sigil}{report.pull_request_number}")
    parts = ["\n".join(lines), _step_table(report)]
    parts.extend(
        _failure_sections(report, log_limit=_log_budget(report, COMMENT_LIMIT, COMMENT_LOG_TAIL), collapsible=False)
    )
    return _cap("\n\n".join(parts), COMMENT_LIMIT)


# --- descriptions ---------------------------------------------------------------------------------------------


def _step_status(report: PipelineReport, step: StepReport) -> tuple[CommitState, str]:
    if report.superseded and step.status not in _KEPT_WHEN_SUPERSEDED:
        return CommitState.CANCELED, f"canceled: {SUPERSEDED}"
    return commit_state(step.status), _step_description(step)


def _step_description(step: StepReport) -> str:
    facts = [_reason(step)] if _reason(step) else []
    if step.status.is_terminal and (duration := format_duration(step.duration_ms)):
        facts.append(duration)
    text = _WORDS[step.status] + (f" ({', '.join(facts)})" if facts else "")
    if step.skipped_for_a_reason and step.error_message and (first := _first_line(step.error_message)):
        return f"{text}: {first}"
    if step.status.is_failure and step.error_message and (first := _first_line(step.error_message)):
        text += f": {first}"
    return text


def _reason(step: StepReport) -> str:
    """Why a step failed (or is retried), from the structured fields only (never free text)."""
    facts = []
    if step.failure_reason is not None and (step.status.is_failure or step.status in _RETRIABLE):
        facts.append(f"{step.failure_reason.value} failure")
    if step.exit_code not in (None, 0) and step.status.is_failure:
        facts.append(f"exit {step.exit_code}")
    return ", ".join(facts)


def _headline(report: PipelineReport) -> str:
    """One line for the overall status description, the check run title and the comment heading."""
    if report.superseded:
        return f"Canceled: {SUPERSEDED}"
    status = report.status
    total = len(report.steps)
    duration = format_duration(report.duration_ms)
    if status is PipelineStatus.RUNNING:
        done = sum(1 for step in report.steps if step.status.is_terminal)
        return f"Running: {done} of {total} steps finished"
    if status is PipelineStatus.SUCCESS:
        counted = f"{total} step{'s' if total != 1 else ''}"
        text = f"Passed: {counted}" + (f" in {duration}" if duration else "")
        skipped = [step for step in report.steps if step.skipped_for_a_reason]
        if skipped:
            text += "; skipped: " + ", ".join(f"{s.name} ({_first_line(s.error_message or '')})" for s in skipped)
        return text
    if status in (PipelineStatus.FAILED, PipelineStatus.ERROR, PipelineStatus.TIMED_OUT):
        failing = [step.name for step in report.steps if step.status.is_failure]
        text = _WORDS[status].capitalize()
        if failing:
            text += f" at {', '.join(failing)}"
        facts = [f"{report.failure_reason.value} failure"] if report.failure_reason is not None else []
        if duration:
            facts.append(duration)
        text += f" ({', '.join(facts)})" if facts else ""
        if not failing and report.error_message and (first := _first_line(report.error_message)):
            text += f": {first}"
        return text
    if status is PipelineStatus.CANCELED and report.error_message and (first := _first_line(report.error_message)):
        return f"Canceled: {first}"
    return _WORDS[status].capitalize()


def _overall_status(report: PipelineReport) -> PipelineStatus:
    return PipelineStatus.CANCELED if report.superseded else report.status


def _failing_step(report: PipelineReport) -> StepReport | None:
    failing = [step for step in report.steps if step.status.is_failure]
    code = [step for step in failing if step.failure_reason is FailureReason.CODE]
    chosen = code or failing
    return chosen[0] if chosen else None


def format_duration(duration_ms: int | None) -> str:
    """`850 ms`, `3.2 s`, `1m 05s`, `2h 03m`; empty when unknown."""
    if duration_ms is None or duration_ms < 0:
        return ""
    if duration_ms < 1000:
        return f"{duration_ms} ms"
    if duration_ms < 60_000:
        return f"{duration_ms / 1000:.1f} s"
    minutes, seconds = divmod(duration_ms // 1000, 60)
    if minutes < 60:
        return f"{minutes}m {seconds:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h {minutes:02d}m"


# --- Markdown -------------------------------------------------------------------------------------------------


def _summary(report: PipelineReport) -> str:
    return "\n\n".join([f"**{_headline(report)}**", _facts(report), _step_table(report), *_step_summaries(report)])


def _step_summaries(report: PipelineReport) -> list[str]:
    if report.superseded:
        return []
    return [step.summary.strip() for step in report.steps if step.summary.strip()]


def _facts(report: PipelineReport) -> str:
    # The duration is in the headline already.
    facts = [f"Commit `{report.commit_sha[:12]}`"]
    if report.details_url:
        facts.append(f"[Pipeline details]({report.details_url})")
    return " · ".join(facts)


def _step_table(report: PipelineReport) -> str:
    if not report.steps:
        return "_No steps._"
    rows = ["| Step | Status | Duration | Reason |", "| --- | --- | --- | --- |"]
    for step in report.steps:
        status: str = step.status
        reason = _reason(step)
        if report.superseded and step.status not in _KEPT_WHEN_SUPERSEDED:
            status, reason = StepStatus.CANCELED, SUPERSEDED
        rows.append(
            f"| {_cell(step.name)} | {_ICONS[status]} {_WORDS[status]} "
            f"| {format_duration(step.duration_ms) if step.status.is_terminal else ''} | {_cell(reason)} |"
        )
    return "\n".join(rows)


def _failure_text(report: PipelineReport) -> str:
    """The check run's text: every failing step's error and log tail, sharing GitHub's size limit."""
    budget = _log_budget(report, CHECK_RUN_TEXT_LIMIT, CHECK_RUN_TEXT_LIMIT)
    return "\n\n".join(_failure_sections(report, log_limit=budget, collapsible=False))


def _log_budget(report: PipelineReport, total: int, per_step: int) -> int:
    failing = sum(1 for step in report.steps if step.status.is_failure) or 1
    return max(500, min(per_step, (total - _MARKDOWN_OVERHEAD) // failing - ERROR_MESSAGE_LIMIT))


def _failure_sections(report: PipelineReport, *, log_limit: int, collapsible: bool = True) -> list[str]:
    if report.superseded:
        return []
    sections = []
    for step in report.steps:
        if not step.status.is_failure:
            continue
        heading = _WORDS[step.status] + (f" ({_reason(step)})" if _reason(step) else "")
        body = []
        if step.error_message and step.error_message.strip():
            body.append(_fenced(_tail(step.error_message.strip(), ERROR_MESSAGE_LIMIT)))
        if step.log_tail.strip():
            body.append(f"Log (last lines):\n\n{_fenced(_tail(step.log_tail, log_limit))}")
        if collapsible:
            summary = f"<summary><b>{html.escape(step.name)}</b>: {html.escape(heading)}</summary>"
            sections.append("\n\n".join([f"<details>{summary}", *body, "</details>"]))
        else:
            sections.append("\n\n".join([f"#### {_cell(step.name)}: {heading}", *body]))
    return sections


def _cell(text: str) -> str:
    """Text safe inside a Markdown table cell: one line, pipes escaped."""
    return " ".join(text.split()).replace("|", "\\|")


def _fenced(text: str) -> str:
    """A fenced code block that no run of backticks in `text` can close early (so @mentions stay inert too)."""
    longest = max((len(run) for run in re.findall(r"`+", text)), default=0)
    fence = "`" * max(3, longest + 1)
    return f"{fence}text\n{text.rstrip()}\n{fence}"


def _first_line(text: str) -> str:
    return next((line.strip() for line in text.splitlines() if line.strip()), "")


def _tail(text: str, limit: int) -> str:
    """The end of `text` within `limit` characters, starting at a line when one begins close to the cut."""
    if len(text) <= limit:
        return text
    marker_room = 64
    kept = text[len(text) - (limit - marker_room) :]
    newline = kept.find("\n", 0, 400)
    if newline >= 0:
        kept = kept[newline + 1 :]
    return f"[… {len(text) - len(kept):,} earlier characters not shown]\n{kept}"


def _cap(text: str, limit: int) -> str:
    """`text` within `limit` characters, its head kept and a marker saying how much was cut."""
    if len(text) <= limit:
        return text
    marker = "\n\n[… truncated: {:,} more characters not shown]"
    room = limit - len(marker.format(len(text)))
    return text[:room] + marker.format(len(text) - room)
