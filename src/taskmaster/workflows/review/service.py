"""The AI review of one commit: gather its input (the diff from the mirror cache, other steps' results, the
repository's rules, the PR and its task), run the project's reviewer over the chunks, anchor, drop what an earlier
push reported, apply the policy, store the report and its findings, and publish them to the forge."""

from __future__ import annotations

import asyncio
import re
import tempfile
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path

import structlog
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from taskmaster.agents.base import CodingAgent
from taskmaster.agents.llm.base import LlmProvider, ProviderNotConfigured
from taskmaster.agents.llm.factory import provider_from_settings
from taskmaster.config import Settings
from taskmaster.core.errors import TaskmasterError
from taskmaster.db.models import Pipeline, PipelineStep, Project, PullRequest, Task
from taskmaster.db.models import ReviewFinding as FindingRow
from taskmaster.db.models import ReviewReport as ReportRow
from taskmaster.db.session import Database
from taskmaster.pipelines.logs import log_tail
from taskmaster.pipelines.states import STEP_FAILURES, StepStatus
from taskmaster.projects import settings as project_settings
from taskmaster.projects.credentials import Credentials
from taskmaster.projects.forges import ForgeFactory
from taskmaster.workflows.review import policy
from taskmaster.workflows.review.agent import AgentReviewer
from taskmaster.workflows.review.anchor import anchor_all
from taskmaster.workflows.review.base import Reviewer, ReviewJob
from taskmaster.workflows.review.chunks import DEFAULT_SKIP, plan_chunks
from taskmaster.workflows.review.diff import DiffError, git_diff, git_show, parse_diff
from taskmaster.workflows.review.llm import LlmReviewer
from taskmaster.workflows.review.offline import OfflineReviewer
from taskmaster.workflows.review.publish import publish, render_markdown
from taskmaster.workflows.review.schemas import ReviewInput, ReviewReport, RuleFile, StepResult
from taskmaster.workspaces.git_cache import MirrorCache

log = structlog.stdlib.get_logger("taskmaster.workflows.review")

RULE_FILES = (".taskmaster/review.md", "AGENTS.md", "CLAUDE.md")
RULES_LIMIT = 16_000
"""Characters of each rule file the reviewer reads."""
BODY_LIMIT = 8_000
"""Characters of the pull request's body the reviewer reads."""
STEP_LOG_LIMIT = 3_000
"""Characters of a failing step's log tail the reviewer reads."""

LlmMaker = Callable[[str], AbstractAsyncContextManager[LlmProvider]]
AgentMaker = Callable[[Project], CodingAgent]


@asynccontextmanager
async def review_model(settings: Settings, provider: str) -> AsyncIterator[LlmProvider]:
    """The provider for a review: an invalid verdict gets exactly one repair round; closed on exit."""
    made = provider_from_settings(settings, provider, output_retries=1)  # type: ignore[arg-type]
    try:
        yield made
    finally:
        await made.aclose()


@dataclass
class ReviewServices:
    """What a review needs from its process (the runtime builds it once): the database, the mirror cache, the
    project credentials and forges, how to make a model (`make_llm`, default `review_model`) and a coding agent
    (`make_agent`: the runtime's `coding_agent`; without it the `agentapi` reviewer is skipped, saying so)."""

    db: Database
    settings: Settings
    mirror: MirrorCache
    credentials: Credentials
    forges: ForgeFactory | None = None
    make_llm: LlmMaker | None = None
    make_agent: AgentMaker | None = None
    parallel: int = 4

    def llm(self, provider: str) -> AbstractAsyncContextManager[LlmProvider]:
        if self.make_llm is not None:
            return self.make_llm(provider)
        return review_model(self.settings, provider)


@dataclass(frozen=True, slots=True)
class ReviewTarget:
    """What to review: a pipeline's `ai_review` step, or (`/taskmaster review`) a pull request's head."""

    project_id: uuid.UUID
    sha: str
    pipeline_id: uuid.UUID | None = None
    step_name: str | None = None
    pull_request_id: uuid.UUID | None = None
    workflow_run_id: uuid.UUID | None = None
    reviewer: str | None = None
    """A reviewer chosen by the step's `with:` (among what the project allows); None: the project's."""


@dataclass
class ReviewResult:
    """How a review ended: `status` "passed", "failed" (the policy), "skipped" (nothing to review, no reviewer),
    "error" (no valid verdict) or "infra" (a service could not be reached); `message` says why in one line."""

    status: str
    message: str
    report: ReviewReport | None = None
    report_id: uuid.UUID | None = None
    warnings: list[str] = field(default_factory=list)


@dataclass
class _Subject:
    project_id: uuid.UUID
    project_name: str
    repository: str
    token: str | None
    review: project_settings.ReviewSettings
    project: Project
    pr: PullRequest | None
    acceptance: tuple[str, ...]
    steps: tuple[StepResult, ...]


async def review(
    services: ReviewServices, target: ReviewTarget, write: Callable[[str], Awaitable[None]]
) -> ReviewResult:
    """Review `target`, store the report (and its findings) and publish it; `write` receives the readable report."""
    async with services.db.session() as session:
        subject = await _subject(session, services.credentials, target)
    name = target.reviewer or subject.review.reviewer
    unavailable = _unavailable(services, name)
    if unavailable is not None:
        await write(f"AI review skipped: {unavailable}\n")
        return ReviewResult("skipped", unavailable)
    try:
        git_dir = await services.mirror.ensure(subject.repository, token=subject.token)
        base = await _base(git_dir, subject.pr, target.sha)
        if base is None:
            why = "nothing to review: the commit has no base to compare with"
            await write(f"AI review skipped: {why}\n")
            return ReviewResult("skipped", why)
        files = parse_diff(await git_diff(git_dir, base, target.sha))
        rules = await _rules(git_dir, target.sha)
    except DiffError as exc:
        await write(f"AI review: {exc.detail}\n")
        return ReviewResult("error", exc.detail)
    except TaskmasterError as exc:  # the mirror could not be fetched
        await write(f"AI review: {exc.detail}\n")
        return ReviewResult("infra", exc.detail)
    if not files:
        why = f"nothing to review: no file changed between {base[:12]} and {target.sha[:12]}"
        await write(f"AI review skipped: {why}\n")
        return ReviewResult("skipped", why)
    review_input = ReviewInput(
        base_sha=base,
        head_sha=target.sha,
        title=(subject.pr.title or "") if subject.pr else "",
        body=((subject.pr.body or "") if subject.pr else "")[:BODY_LIMIT],
        acceptance=subject.acceptance,
        rules=rules,
        steps=subject.steps,
        files=tuple(files),
    )
    skip = subject.review.skip if subject.review.skip is not None else DEFAULT_SKIP
    plan = plan_chunks(files, budget=subject.review.max_tokens_per_chunk, skip=skip)
    await write(
        f"AI review by {name} of {len(files)} changed files ({base[:12]}...{target.sha[:12]}) in "
        f"{len(plan.chunks)} part{'s' if len(plan.chunks) != 1 else ''}\n"
    )
    async with _reviewer_resource(services, subject, name, target.sha) as (reviewer, checkout):
        job = ReviewJob(
            input=review_input,
            plan=plan,
            project_id=subject.project_id,
            log=write,
            checkout=checkout,
            pipeline_id=target.pipeline_id,
            workflow_run_id=target.workflow_run_id,
        )
        try:
            answer = await reviewer.review(job)
        except TaskmasterError as exc:
            status = "infra" if exc.http_status >= 500 else "error"
            await write(f"AI review {status}: {exc.detail}\n")
            return ReviewResult(status, exc.detail)
        label = reviewer.name
    anchored, unanchored = anchor_all(answer.verdict.findings, files)
    async with services.db.session() as session:
        earlier = await _earlier_fingerprints(session, subject.pr, target.sha)
    for finding in anchored:
        finding.new = finding.fingerprint not in earlier
    failing = policy.failing(anchored, subject.review)
    report = ReviewReport(
        reviewer=label,
        summary=answer.verdict.summary,
        findings=anchored,
        unanchored=unanchored,
        coverage=plan.coverage,
        meets_acceptance=answer.verdict.meets_acceptance,
        passed=not failing,
        failing=failing,
        chunks=len(plan.chunks),
        input_tokens=answer.input_tokens,
        output_tokens=answer.output_tokens,
    )
    await write(render_log(report, policy.explain(subject.review)))
    report_id = await _store(services.db, target, subject, report)
    warnings = await publish(
        services.forges, subject.project, subject.pr, target, report, earlier_findings=bool(earlier)
    )
    for warning in warnings:
        await write(f"warning: {warning}\n")
    if failing:
        message = f"AI review failed: {len(failing)} finding{'s' if len(failing) != 1 else ''} over the policy"
        return ReviewResult("failed", message, report, report_id, warnings)
    return ReviewResult("passed", "AI review passed", report, report_id, warnings)


def render_log(report: ReviewReport, explained: str) -> str:
    """The report as the step's log shows it: counts, every file's coverage, findings, then the decision."""
    counts = report.counts()
    new = len(report.new_findings)
    lines = [
        f"reviewer: {report.reviewer} ({report.chunks} parts, {report.input_tokens:,} tokens in, "
        f"{report.output_tokens:,} out)",
        f"findings: {len(report.findings)} on changed lines ({new} new, {len(report.findings) - new} already "
        f"reported on an earlier push), {report.unanchored_count} not on a changed line (not posted)",
        f"coverage: {counts['reviewed']} reviewed, {counts['clipped']} clipped, {counts['skipped']} skipped",
    ]
    for item in report.coverage:
        lines.append(f"  {item.status:<8} {item.path}" + (f": {item.reason}" if item.reason else ""))
    if report.summary:
        lines.append("summary: " + report.summary.strip().replace("\n", "\n  "))
    if report.meets_acceptance is not None:
        lines.append(f"meets the task's acceptance criteria: {'yes' if report.meets_acceptance else 'no'}")
    for finding in report.findings:
        span = f"{finding.start_line}" + (f"-{finding.end_line}" if finding.end_line != finding.start_line else "")
        seen = "" if finding.new else " [already reported]"
        lines.append(
            f"  {finding.severity:<7} {finding.category:<10} {finding.file}:{span} ({finding.confidence:.2f})"
            f"{seen}: {finding.message}"
        )
    for loose in report.unanchored:
        lines.append(f"  unanchored {loose.severity} {loose.category} {loose.file}:{loose.start_line}: {loose.message}")
    verdict = "FAILED" if report.failing else "passed"
    lines.append(f"policy ({explained}): {verdict}")
    lines.extend(f"  {line}" for line in report.failing)
    return "\n".join(lines) + "\n"


# --- input ----------------------------------------------------------------------------------------------------


async def _subject(session: AsyncSession, credentials: Credentials, target: ReviewTarget) -> _Subject:
    project = await session.get(Project, target.project_id)
    if project is None:
        raise TaskmasterError(f"project {target.project_id} does not exist")
    pr_id = target.pull_request_id
    steps: list[StepResult] = []
    if target.pipeline_id is not None:
        pipeline = await session.get(Pipeline, target.pipeline_id)
        if pipeline is not None:
            pr_id = pr_id or pipeline.pull_request_id
            rows = (
                await session.scalars(
                    select(PipelineStep)
                    .where(PipelineStep.pipeline_id == pipeline.id, PipelineStep.step_name != target.step_name)
                    .order_by(PipelineStep.position)
                )
            ).all()
            for row in rows:
                failed = StepStatus(row.status) in STEP_FAILURES
                tail = (await log_tail(session, row.id, chars=STEP_LOG_LIMIT)) if failed else ""
                steps.append(
                    StepResult(name=row.step_name, status=row.status, failure_reason=row.failure_reason, log_tail=tail)
                )
    pr = await session.get(PullRequest, pr_id) if pr_id is not None else None
    acceptance: tuple[str, ...] = ()
    if pr is not None and pr.task_id is not None:
        task = await session.get(Task, pr.task_id)
        if task is not None:
            acceptance = acceptance_of(task.details, task.test_strategy)
    return _Subject(
        project_id=project.id,
        project_name=project.name,
        repository=project.repository,
        token=credentials.forge_token(project),
        review=project_settings.load(project.settings).review,
        project=project,
        pr=pr,
        acceptance=acceptance,
        steps=tuple(steps),
    )


_ACCEPTANCE_HEADING = re.compile(r"^\s*(?:#+\s*)?(?:acceptance(?: criteria)?|done when)\s*:?\s*(?P<rest>.*)$", re.I)
_BULLET = re.compile(r"^\s*(?:[-*+]|\d+[.)])\s+(?P<text>\S.*)$")


def acceptance_of(details: str | None, test_strategy: str | None) -> tuple[str, ...]:
    """A task's acceptance criteria: the bullets under an "Acceptance criteria" line of its details (or that
    line's own text), else the lines of its test strategy."""
    criteria: list[str] = []
    lines = (details or "").splitlines()
    for index, line in enumerate(lines):
        heading = _ACCEPTANCE_HEADING.match(line)
        if heading is None:
            continue
        if heading["rest"].strip():
            criteria.append(heading["rest"].strip())
        for following in lines[index + 1 :]:
            bullet = _BULLET.match(following)
            if bullet is None:
                if following.strip():
                    break
                continue
            criteria.append(bullet["text"].strip())
        break
    if not criteria and test_strategy:
        criteria = [
            (_BULLET.match(line) or re.match(r"(?P<text>.*)", line))["text"].strip()  # type: ignore[index]
            for line in test_strategy.splitlines()
            if line.strip()
        ]
    return tuple(item[:500] for item in criteria[:30])


async def _base(git_dir: Path, pr: PullRequest | None, sha: str) -> str | None:
    """The commit to compare with: the PR's base (its sha, else its branch in the mirror), else the parent."""
    candidates = []
    if pr is not None:
        if pr.base_sha:
            candidates.append(pr.base_sha)
        candidates.append(f"refs/heads/{pr.base_ref}")
    else:
        candidates.append(f"{sha}^")
    for candidate in candidates:
        process = await asyncio.create_subprocess_exec(
            "git", f"--git-dir={git_dir}", "rev-parse", "--verify", "--quiet", f"{candidate}^{{commit}}",
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL,
        )  # fmt: skip
        out, _ = await process.communicate()
        if process.returncode == 0 and out.strip():
            return out.decode().strip()
    return None


async def _rules(git_dir: Path, sha: str) -> tuple[RuleFile, ...]:
    found = []
    for path in RULE_FILES:
        text = await git_show(git_dir, sha, path, limit=RULES_LIMIT)
        if text and text.strip():
            found.append(RuleFile(path=path, text=text))
    return tuple(found)


# --- reviewers ------------------------------------------------------------------------------------------------


def _unavailable(services: ReviewServices, name: str) -> str | None:
    """None when reviewer `name` can work here; otherwise why not (the review is skipped, saying so)."""
    if name == "offline":
        return None
    if name == "agentapi":
        if services.make_agent is None:
            return "review.reviewer is agentapi, but this server has no coding agent for reviews"
        return None
    if name == "anthropic" or name == "openai":
        try:
            # Builds nothing remote: it only checks the key.
            provider_from_settings(services.settings, "anthropic" if name == "anthropic" else "openai")
        except ProviderNotConfigured as exc:
            return f"review.reviewer is {name}: {exc.detail}"
        return None
    if name == "ollama":
        return None
    return f"unknown reviewer {name!r}"


@asynccontextmanager
async def _reviewer_resource(
    services: ReviewServices, subject: _Subject, name: str, sha: str
) -> AsyncIterator[tuple[Reviewer, Callable[[], Awaitable[Path]]]]:
    made: list[Path] = []
    holder: dict[str, Path] = {}

    async def checkout() -> Path:
        # A local checkout of the head for a reviewer that reads the tree; removed after the review.
        if "path" not in holder:
            root = Path(tempfile.mkdtemp(prefix="taskmaster-review-"))
            dest = root / "checkout"
            made.append(root)
            await services.mirror.checkout(subject.repository, sha, dest, token=subject.token)
            holder["path"] = dest
        return holder["path"]

    try:
        if name in ("anthropic", "openai", "ollama"):
            async with services.llm(name) as provider:
                yield (
                    LlmReviewer(
                        provider, services.db, prices=services.settings.costs.prices, parallel=services.parallel
                    ),
                    checkout,
                )
        elif name == "agentapi" and services.make_agent is not None:
            maker = services.make_agent
            yield (
                AgentReviewer(
                    lambda: maker(subject.project),
                    services.db,
                    prices=services.settings.costs.prices,
                    project_name=subject.project_name,
                ),
                checkout,
            )
        else:
            yield OfflineReviewer(), checkout
    finally:
        for root in made:
            if "path" in holder:
                await services.mirror.remove(holder["path"])
            await asyncio.to_thread(_rmtree, root)


def _rmtree(path: Path) -> None:
    import shutil

    shutil.rmtree(path, ignore_errors=True)


# --- storage --------------------------------------------------------------------------------------------------


async def _earlier_fingerprints(session: AsyncSession, pr: PullRequest | None, sha: str) -> set[str]:
    """Fingerprints of findings posted for this pull request on other commits (earlier pushes)."""
    if pr is None:
        return set()
    rows = await session.scalars(
        select(FindingRow.fingerprint).where(
            FindingRow.pull_request_id == pr.id, FindingRow.commit_sha != sha, FindingRow.posted.is_(True)
        )
    )
    return set(rows.all())


async def _store(db: Database, target: ReviewTarget, subject: _Subject, report: ReviewReport) -> uuid.UUID:
    async with db.transaction() as session:
        row = ReportRow(
            project_id=subject.project_id,
            pipeline_id=target.pipeline_id,
            step_name=target.step_name,
            workflow_run_id=target.workflow_run_id,
            pull_request_id=subject.pr.id if subject.pr else None,
            commit_sha=target.sha,
            reviewer=report.reviewer[:100],
            passed=report.passed,
            report={**report.model_dump(mode="json"), "markdown": render_markdown(report)},
        )
        session.add(row)
        await session.flush()
        for finding in report.findings:
            session.add(
                FindingRow(
                    report_id=row.id,
                    pull_request_id=row.pull_request_id,
                    commit_sha=target.sha,
                    fingerprint=finding.fingerprint,
                    path=finding.file[:1000],
                    start_line=finding.start_line,
                    end_line=finding.end_line,
                    severity=finding.severity,
                    category=finding.category[:50],
                    message=finding.message,
                    confidence=finding.confidence,
                    posted=finding.new,
                )
            )
        return row.id
