"""Debug rounds of a failed step (`DebugRecovery`, the real `RecoveryHandler`): ask a debugger for a patch, check it,
commit it in the mirror on top of the commit under test, rerun the step and its dependents in a trial pipeline, and
push or suggest a green fix; after `max_rounds` (or past a budget) open an issue for a person. Every round is a
`recovery_rounds` row. Also: the pipeline that validates a pushed fix, and whether a failed pipeline's report
still opens the manual-review issue itself."""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import structlog
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from taskmaster.core.errors import TaskmasterError
from taskmaster.costs import service as costs
from taskmaster.db.models import Pipeline, PipelineStep, Project, PullRequest, RecoveryRound
from taskmaster.db.session import Database
from taskmaster.forges.base import ForgeError
from taskmaster.pipelines import transitions
from taskmaster.pipelines.logs import read_logs
from taskmaster.pipelines.plan import PlannedStep
from taskmaster.pipelines.report import COMMENT_LIMIT
from taskmaster.pipelines.states import PipelineStatus, StepStatus
from taskmaster.pipelines.trials import create_trial
from taskmaster.projects import settings as project_settings
from taskmaster.projects.repository import forge_path
from taskmaster.templates.render import render
from taskmaster.workflows.codegen import service as codegen_runs
from taskmaster.workflows.recovery.base import (
    Debugger,
    DebugInput,
    PriorRound,
    RecoveryServices,
)
from taskmaster.workflows.recovery.checks import check_patch
from taskmaster.workflows.recovery.gitops import (
    PatchDoesNotApply,
    apply_patch,
    commit_fix,
    diff_between,
    keep_in_mirror,
    push_branch,
)
from taskmaster.workflows.recovery.workflow import RecoveryDecision, RecoveryRequest, recovery_agent
from taskmaster.workspaces.cleanup import remove_tree

log = structlog.stdlib.get_logger("taskmaster.workflows.recovery")

TEMPLATE = "recovery.debug"
PURPOSE = "recovery"
DIFF_LIMIT = 60_000
LOG_HEAD_LINES = 40
LOG_TAIL_CHARS = 6000
SUGGEST_MARKER = "recovery"
"""The marker of the pull request comment that suggests a fix (one per pull request, edited by later fixes)."""
_ERROR_LINE = re.compile(
    r"error|fail|exception|traceback|assert|panic|fatal|undefined|cannot|not found|expected", re.IGNORECASE
)
FINAL_RESULTS = frozenset({"pushed", "suggested"})


@dataclass(frozen=True, slots=True)
class _Context:
    pipeline: Pipeline
    project: Project
    step: PipelineStep
    settings: project_settings.RecoverySettings
    branch: str | None
    base_sha: str | None
    pr_number: int | None
    command: str
    log_text: str


@dataclass(frozen=True, slots=True)
class FixValidation:
    """A fix a recovery pushed for a pipeline: its commit, the branch it went to, and the pipeline that validates
    it (None while none exists: the forge's webhook, the local forge or the caller makes it)."""

    fix_sha: str
    branch: str | None
    pipeline_id: uuid.UUID | None


class DebugRecovery:
    """The `RecoveryHandler` of a process: rounds by the project's `recovery.*` settings, through `services`."""

    def __init__(self, db: Database, services: RecoveryServices) -> None:
        self.db = db
        self.services = services

    async def recover(self, request: RecoveryRequest) -> RecoveryDecision:
        if request.pipeline_id is None or request.step_name is None:
            return RecoveryDecision("unrecovered", "no failed step to debug")
        await self._abandon_interrupted(request.pipeline_id, request.step_name)
        context = await self._context(request.pipeline_id, request.step_name)
        if context is None:
            return RecoveryDecision("unrecovered", "the step no longer awaits recovery")
        config = context.settings
        rounds = await _rounds(self.db, request.pipeline_id, request.step_name)
        stop_reason = f"no fix passed its trial in {config.max_rounds} round(s)"
        debugger: Debugger | None = None
        try:
            debugger = self.services.debuggers.make(recovery_agent(context.project), context.project)
            for number in range(len(rounds) + 1, config.max_rounds + 1):
                over = await self._over_budget(context)
                if over is not None:
                    stop_reason = over
                    break
                done = await self._round(context, debugger, number, rounds, request.run_id)
                rounds.append(done)
                if done.result in FINAL_RESULTS:
                    passed = await _passed_steps(self.db, done.trial_pipeline_id)
                    sha = (done.fix_sha or "")[:12]
                    how = "pushed to the branch" if done.result == "pushed" else "suggested on the pull request"
                    detail = f"fixed by {sha} ({how}, round {number}); passed in trial {done.trial_pipeline_id}"
                    return RecoveryDecision("fixed", detail, passed=tuple(passed))
                if done.result == "handed_off":
                    return RecoveryDecision("unrecovered", f"handed to {done.agent}: its fix comes as a new commit")
        except TaskmasterError as exc:  # the debugger cannot be made here (not configured): a person must look
            stop_reason = f"recovery could not run: {exc.detail}"
        finally:
            if debugger is not None:
                await debugger.aclose()
        issue_url = await self._open_issue(context, rounds, stop_reason)
        return RecoveryDecision("unrecovered", stop_reason, issue_url=issue_url)

    # --- one round ---

    async def _round(
        self, context: _Context, debugger: Debugger, number: int, earlier: list[RecoveryRound], run_id: uuid.UUID | None
    ) -> RecoveryRound:
        pipeline, project = context.pipeline, context.project
        sha = pipeline.commit_sha or ""
        mirror_path = await self.services.mirror.ensure(project.repository, token=self._token(project))
        diff = await diff_between(mirror_path, context.base_sha, sha, limit=DIFF_LIMIT)
        # One writer at a time on SQLite: this transaction reads (the template) and then writes (the round).
        async with self.db.single_writer(), self.db.transaction() as session:
            prompt = await render(session, TEMPLATE, {
                "step_name": context.step.step_name, "commit_sha": sha, "branch": context.branch, "round": number,
                "max_rounds": context.settings.max_rounds, "command": context.command,
                "exit_code": context.step.exit_code, "step_definition": _definition(context.step),
                "log_excerpt": error_excerpt(context.log_text), "diff": diff,
                "earlier": [PriorRound(r.round, r.patch, r.result, r.detail) for r in earlier],
            })  # fmt: skip
            row = await _start_round(session, context, number, debugger.label, prompt.name, prompt.version, run_id)
            made_by = (
                await codegen_runs.agent_run_of_pull_request(session, pipeline.pull_request_id)
                if pipeline.pull_request_id is not None
                else None
            )
        request = DebugInput(
            project_id=project.id, project_name=project.name, pipeline_id=pipeline.id,
            step_name=context.step.step_name, round=number, commit_sha=sha, branch=context.branch,
            repository=_forge_repo(project), prompt=prompt.text, template_name=prompt.name,
            template_version=prompt.version, resume_id=made_by or pipeline.agentapi_session_id,
        )  # fmt: skip
        scratch = self.services.workspace_root / "recovery" / f"{pipeline.id}-{number}-{uuid.uuid4().hex[:8]}"
        try:
            return await self._try(context, debugger, request, row, scratch)
        except TaskmasterError as exc:  # git, the mirror or the trial's plan failed: this round is an error
            return await self._finish(row, "error", detail=exc.detail[:2000])
        finally:
            for checkout in (scratch / "agent", scratch / "fix"):
                if checkout.exists():
                    await self.services.mirror.remove(checkout)  # unregistered, so its mirror may be evicted
            await remove_tree(scratch)

    async def _try(
        self, context: _Context, debugger: Debugger, request: DebugInput, row: RecoveryRound, scratch: Path
    ) -> RecoveryRound:
        project, sha = context.project, request.commit_sha
        mirror, token = self.services.mirror, self._token(project)
        workspace = None
        if debugger.needs_checkout:
            workspace = (await mirror.checkout(project.repository, sha, scratch / "agent", token=token)).path
        try:
            answer = await debugger.debug(request, workspace)
        except TaskmasterError as exc:
            spent = getattr(exc, "usage", None)
            tokens_in = spent.input_tokens if spent is not None else 0
            tokens_out = spent.output_tokens if spent is not None else 0
            model = getattr(exc, "model", None)
            await self._record_call(context, row, debugger.label, model, tokens_in, tokens_out, None)
            return await self._finish(row, "error", detail=exc.detail)
        cost = await self._record_call(
            context, row, answer.agent, answer.model, answer.input_tokens, answer.output_tokens, answer.cost_usd
        )
        async with self.db.transaction() as session:
            stored = await _reload(session, row)
            stored.agent, stored.patch, stored.explanation = answer.agent[:100], answer.patch, answer.explanation
            stored.input_tokens, stored.output_tokens, stored.cost_usd = answer.input_tokens, answer.output_tokens, cost
        if answer.handed_off:
            return await self._finish(row, "handed_off", detail=answer.explanation[:500] or None)
        if answer.patch is None:
            return await self._finish(row, "no_fix", detail=answer.explanation[:500] or "the agent found no fix")
        problems = check_patch(answer.patch, allow_config_changes=context.settings.allow_config_changes)
        if problems:
            return await self._finish(row, "refused", detail="; ".join(problems)[:2000])
        fix = await mirror.checkout(project.repository, sha, scratch / "fix", token=token)
        try:
            await apply_patch(fix.path, answer.patch)
        except PatchDoesNotApply as exc:
            return await self._finish(row, "refused", detail=exc.detail)
        subject = f"Fix step '{context.step.step_name}' (Taskmaster recovery, round {request.round})"
        fix_sha = await commit_fix(
            fix.path, subject=subject, body=answer.explanation, pipeline_id=str(request.pipeline_id)
        )
        mirror_path = mirror.mirror_path(project.repository)
        await keep_in_mirror(
            fix.path, mirror_path, fix_sha, f"refs/taskmaster/fixes/{request.pipeline_id}/{request.round}"
        )
        async with self.db.transaction() as session:
            # Recorded before anything is pushed: the fix's own pipeline (from a webhook) must know it is a fix.
            stored = await _reload(session, row)
            stored.fix_sha = fix_sha
            source = await session.get(Pipeline, context.pipeline.id)
            assert source is not None
            trial = await create_trial(
                session, source, project, commit_sha=fix_sha, step=context.step.step_name, mirror=mirror,
                worker_id=self.services.trial_owner,
            )  # fmt: skip
            stored.trial_pipeline_id = trial.id
            trial_id = trial.id
        status = await self.services.run_trial(trial_id)
        if status is not PipelineStatus.SUCCESS:
            return await self._finish(row, "red", detail=await _trial_failure(self.db, trial_id, status))
        return await self._deliver(context, row, fix.path, fix_sha, answer.patch, answer.explanation)

    async def _deliver(
        self, context: _Context, row: RecoveryRound, checkout: Path, fix_sha: str, patch: str, explanation: str
    ) -> RecoveryRound:
        project = context.project
        if context.settings.mode == "push" and context.branch:
            try:
                await push_branch(checkout, project.repository, fix_sha, context.branch, token=self._token(project))
            except TaskmasterError as exc:
                return await self._finish(row, "error", detail=f"the fix passed but could not be pushed: {exc.detail}")
            done = await self._finish(row, "pushed", detail=f"pushed {fix_sha[:12]} to {context.branch}")
            await self._announce_push(context)
            return done
        where = await self._suggest(context, fix_sha, patch, explanation)
        return await self._finish(row, "suggested", detail=where)

    async def _announce_push(self, context: _Context) -> None:
        """Tell a local forge of the pushed fix now: it has no push hook, and a read of the pull request raises its
        `synchronize` event (the fix's own pipeline) at once rather than at the workers' next look at its branches
        (`forges.local_poll_seconds`). A remote forge sends its webhook by itself."""
        project = context.project
        if project.forge != "local" or context.pr_number is None or (repo := _forge_repo(project)) is None:
            return
        forge = self.services.forges.for_project(project)
        if forge is None:
            return
        try:
            await forge.get_pull_request(repo, context.pr_number)
        except ForgeError as exc:  # the fix is pushed; a worker's watch of the local forge notices it later
            log.warning("the local forge was not told of a pushed fix", pipeline_id=str(context.pipeline.id),
                        error=exc.detail)  # fmt: skip
        finally:
            await forge.aclose()

    async def _suggest(self, context: _Context, fix_sha: str, patch: str, explanation: str) -> str:
        project = context.project
        if context.pr_number is None or (repo := _forge_repo(project)) is None:
            return "no pull request to comment on: the patch is kept with the round"
        forge = self.services.forges.for_project(project)
        if forge is None:
            return "the project has no forge client: the patch is kept with the round"
        body = (
            f"### 🩺 Taskmaster: a fix for step `{context.step.step_name}`\n\n{explanation.strip()}\n\n"
            f"It passed a trial run of the step and its dependents (commit `{fix_sha[:12]}`, not pushed).\n\n"
            f"```diff\n{patch.strip()}\n```\n"
        )
        try:
            await forge.upsert_comment(repo, context.pr_number, marker=SUGGEST_MARKER, body=body[:COMMENT_LIMIT])
        except ForgeError as exc:
            return f"the suggestion could not be posted: {exc.detail}"
        finally:
            await forge.aclose()
        return f"suggested on pull request #{context.pr_number}"

    # --- records ---

    async def _abandon_interrupted(self, pipeline_id: uuid.UUID, step_name: str) -> None:
        """Rounds a stopped worker left `running` end as `error`; their trials, if still live, are canceled (no
        loop resumes a trial: only the round that made it ran it)."""
        async with self.db.transaction() as session:
            rows = await session.scalars(
                select(RecoveryRound).where(
                    RecoveryRound.pipeline_id == pipeline_id,
                    RecoveryRound.step_name == step_name,
                    RecoveryRound.result == "running",
                )
            )
            for row in rows:
                row.result, row.detail = "error", "interrupted: the recovery run stopped during this round"
                trial = await session.get(Pipeline, row.trial_pipeline_id) if row.trial_pipeline_id else None
                if trial is not None and not PipelineStatus(trial.status).is_terminal:
                    reason = "interrupted: the recovery run that made this trial stopped"
                    await transitions.end_with_steps(
                        session, trial, transitions.CANCEL, reason=reason, step_reason=reason
                    )

    async def _finish(self, row: RecoveryRound, result: str, *, detail: str | None) -> RecoveryRound:
        async with self.db.transaction() as session:
            stored = await _reload(session, row)
            stored.result, stored.detail = result, detail
        async with self.db.session() as session:
            return await _reload(session, row)

    async def _record_call(
        self, context: _Context, row: RecoveryRound, agent: str, model: str | None, tokens_in: int, tokens_out: int,
        cost: float | None,
    ) -> float | None:  # fmt: skip
        async with self.db.transaction() as session:
            call = await costs.record_call(
                session,
                costs.CallRecord(
                    project_id=context.project.id, purpose=PURPOSE, provider=agent, model=model,
                    input_tokens=tokens_in, output_tokens=tokens_out, cost_usd=cost,
                    template_name=row.template_name, template_version=row.template_version,
                    pipeline_id=context.pipeline.id, workflow_run_id=row.workflow_run_id,
                ),
                prices=self.services.settings.costs.prices,
            )  # fmt: skip
            return call.cost_usd

    async def _over_budget(self, context: _Context) -> str | None:
        """Why no further round may start (a budget is spent), or None."""
        config = context.settings
        async with self.db.session() as session:
            spent = await costs.total(session, pipeline_id=context.pipeline.id)
            midnight = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
            today = await costs.total(session, project_id=context.project.id, since=midnight)
        if spent.cost_usd >= config.budget_usd:
            return f"the pipeline's recovery budget is spent (${spent.cost_usd:.4f} of ${config.budget_usd:.2f})"
        if today.cost_usd >= config.daily_budget_usd:
            return (
                f"the project's daily recovery budget is spent (${today.cost_usd:.4f} of "
                f"${config.daily_budget_usd:.2f} today)"
            )
        return None

    async def _open_issue(self, context: _Context, rounds: list[RecoveryRound], reason: str) -> str | None:
        project = context.project
        repo = _forge_repo(project)
        forge = self.services.forges.for_project(project) if repo is not None else None
        if forge is None or repo is None:
            log.info("no forge to open a manual-review issue on", pipeline_id=str(context.pipeline.id))
            return None
        title = (
            f"Manual review: step '{context.step.step_name}' of pipeline {context.pipeline.id} failed on "
            f"{(context.pipeline.commit_sha or '')[:12]}"
        )
        try:
            issue = await forge.create_issue(repo, title=title, body=render_issue(context, rounds, reason))
        except ForgeError as exc:
            log.warning("manual-review issue not opened", pipeline_id=str(context.pipeline.id), error=exc.detail)
            return None
        finally:
            await forge.aclose()
        url = issue.url or f"#{issue.number}"
        async with self.db.transaction() as session:
            pipeline = await session.get(Pipeline, context.pipeline.id)
            if pipeline is not None:
                pipeline.review_issue_url = url[:1000]
        return url

    async def _context(self, pipeline_id: uuid.UUID, step_name: str) -> _Context | None:
        async with self.db.session() as session:
            pipeline = await session.get(Pipeline, pipeline_id)
            project = await session.get(Project, pipeline.project_id) if pipeline is not None else None
            step = await session.scalar(
                select(PipelineStep).where(PipelineStep.pipeline_id == pipeline_id, PipelineStep.step_name == step_name)
            )
            if pipeline is None or project is None or step is None:
                return None
            if step.status != StepStatus.AWAITING_RECOVERY.value:
                return None
            pr = await session.get(PullRequest, pipeline.pull_request_id) if pipeline.pull_request_id else None
            chunks = await read_logs(session, pipeline_id, step=step_name)
        config = project_settings.load(_typed_settings(project.settings)).recovery
        return _Context(
            pipeline=pipeline, project=project, step=step, settings=config,
            branch=pr.head_ref if pr is not None else pipeline.branch_name,
            base_sha=pr.base_sha if pr is not None else None, pr_number=pr.number if pr is not None else None,
            command=_command(step),
            log_text="".join(chunk.content for chunk in chunks),
        )  # fmt: skip

    def _token(self, project: Project) -> str | None:
        return self.services.credentials.forge_token(project)


# --- reads other layers use ---


async def rounds_of(session: AsyncSession, pipeline_id: uuid.UUID) -> list[RecoveryRound]:
    """A pipeline's recovery rounds, by step and round."""
    query = (
        select(RecoveryRound)
        .where(RecoveryRound.pipeline_id == pipeline_id)
        .order_by(RecoveryRound.step_name, RecoveryRound.round)
    )
    return list(await session.scalars(query))


async def fix_validation(session: AsyncSession, pipeline_id: uuid.UUID) -> FixValidation | None:
    """The pipeline validating the fix that recovery pushed for `pipeline_id` (the newest non-trial pipeline of the
    project at the fix's commit); None when no fix was pushed."""
    fix = await session.scalar(
        select(RecoveryRound)
        .where(RecoveryRound.pipeline_id == pipeline_id, RecoveryRound.result == "pushed")
        .order_by(RecoveryRound.created_at.desc())
        .limit(1)
    )
    if fix is None or fix.fix_sha is None:
        return None
    source = await session.get(Pipeline, pipeline_id)
    assert source is not None
    validating = await session.scalar(
        select(Pipeline.id)
        .where(
            Pipeline.project_id == source.project_id,
            Pipeline.commit_sha == fix.fix_sha,
            Pipeline.trial_of.is_(None),
        )
        .order_by(Pipeline.created_at.desc())
        .limit(1)
    )
    branch = source.branch_name
    if source.pull_request_id is not None:
        branch = await session.scalar(select(PullRequest.head_ref).where(PullRequest.id == source.pull_request_id))
    return FixValidation(fix.fix_sha, branch, validating)


async def report_opens_issue(session: AsyncSession, pipeline_id: uuid.UUID) -> bool:
    """Whether a failed pipeline's forge report opens the manual-review issue itself: only when no recovery run
    decides it (the project's recovery is off, or the pipeline validates a fix, which is never recovered)."""
    pipeline = await session.get(Pipeline, pipeline_id)
    if pipeline is None or pipeline.trial_of is not None:
        return False
    project = await session.get(Project, pipeline.project_id)
    if project is None:
        return False
    return recovery_agent(project) == "off"


def error_excerpt(text: str, *, head_lines: int = LOG_HEAD_LINES, tail_chars: int = LOG_TAIL_CHARS) -> str:
    """The error-dense lines of a log (numbered, before its tail) and its tail: what a debugger needs to read."""
    lines = text.splitlines()
    tail = text[-tail_chars:]
    tail_start = len(text) - len(tail)
    picked: list[str] = []
    offset = 0
    for number, line in enumerate(lines, start=1):
        if offset >= tail_start:
            break
        if _ERROR_LINE.search(line):
            picked.append(f"{number:>6}: {line[:300]}")
            if len(picked) >= head_lines:
                break
        offset += len(line) + 1
    parts = []
    if picked:
        parts.append("Error lines (numbered):\n" + "\n".join(picked))
    parts.append(("End of the log:\n" if tail_start else "The log:\n") + (tail or "(empty)"))
    return "\n\n".join(parts)


def render_issue(context: _Context, rounds: list[RecoveryRound], reason: str) -> str:
    """The manual-review issue: the failing step, its log excerpt, and every round's patch and result."""
    pipeline = context.pipeline
    lines = [
        "Taskmaster's recovery found no fix for a failing step: it needs a person to look at it.",
        "",
        f"- Pipeline: `{pipeline.id}`",
        f"- Commit: `{pipeline.commit_sha}`",
        f"- Failing step: `{context.step.step_name}` (`{context.command}`, exit code {context.step.exit_code})",
        f"- Why recovery stopped: {reason}",
    ]
    if context.pr_number is not None:
        lines.append(f"- Pull request: #{context.pr_number}")
    parts = ["\n".join(lines), "### Log excerpt\n\n```\n" + error_excerpt(context.log_text, tail_chars=3000) + "\n```"]
    budget = max(2000, (COMMENT_LIMIT - sum(len(p) for p in parts) - 2000) // max(1, len(rounds)))
    for item in rounds:
        cost = f", ${item.cost_usd:.4f}" if item.cost_usd is not None else ""
        tokens = f"{item.input_tokens}+{item.output_tokens} tokens{cost}"
        head = f"### Round {item.round}: {item.result} ({item.agent}, {tokens})"
        body = [head]
        if item.detail:
            body.append(item.detail.strip())
        if item.explanation:
            body.append(item.explanation.strip()[:2000])
        patch = (item.patch or "").strip()
        body.append(f"```diff\n{patch[:budget]}\n```" if patch else "(no patch)")
        parts.append("\n\n".join(body))
    if not rounds:
        parts.append("No round ran.")
    return "\n\n".join(parts)[:COMMENT_LIMIT]


async def _rounds(db: Database, pipeline_id: uuid.UUID, step_name: str) -> list[RecoveryRound]:
    async with db.session() as session:
        rows = await session.scalars(
            select(RecoveryRound)
            .where(RecoveryRound.pipeline_id == pipeline_id, RecoveryRound.step_name == step_name)
            .order_by(RecoveryRound.round)
        )
        return list(rows)


async def _start_round(
    session: AsyncSession, context: _Context, number: int, agent: str, template: str, version: int,
    run_id: uuid.UUID | None,
) -> RecoveryRound:  # fmt: skip
    row = RecoveryRound(
        pipeline_id=context.pipeline.id, step_name=context.step.step_name, round=number, workflow_run_id=run_id,
        agent=agent[:100], template_name=template, template_version=version, input_tokens=0, output_tokens=0,
        result="running",
    )  # fmt: skip
    session.add(row)
    await session.flush()
    return row


async def _reload(session: AsyncSession, row: RecoveryRound) -> RecoveryRound:
    stored = await session.get(RecoveryRound, row.id, populate_existing=True)
    assert stored is not None
    return stored


async def _passed_steps(db: Database, trial_id: uuid.UUID | None) -> list[str]:
    if trial_id is None:
        return []
    async with db.session() as session:
        names = await session.scalars(
            select(PipelineStep.step_name).where(
                PipelineStep.pipeline_id == trial_id, PipelineStep.status == StepStatus.SUCCESS.value
            )
        )
        return list(names)


async def _trial_failure(db: Database, trial_id: uuid.UUID, status: PipelineStatus) -> str:
    async with db.session() as session:
        trial = await session.get(Pipeline, trial_id)
        message = (trial.error_message if trial is not None else None) or ""
    return f"trial {trial_id} ended {status.value}: {message.strip()[:1500]}"


def _definition(step: PipelineStep) -> str:
    planned = PlannedStep.from_json(step.config)
    lines = [f"name: {planned.name}", f"run: {planned.command}" if planned.command else f"uses: {planned.uses}"]
    if planned.needs:
        lines.append(f"needs: [{', '.join(planned.needs)}]")
    lines += [f"timeout: {planned.timeout}", f"retries: {planned.max_retries}", f"network: {planned.network}"]
    return "\n".join(lines)


def _command(step: PipelineStep) -> str:
    planned = PlannedStep.from_json(step.config)
    return planned.command or f"uses: {planned.uses}"


def _forge_repo(project: Project) -> str | None:
    """The repository as the project's forge names it: `owner/name` (GitLab: `group/…/name`); a local-forge project
    by its name."""
    if (path := forge_path(project)) is not None:
        return path
    return project.name if project.forge == "local" else None


def _typed_settings(stored: dict[str, Any] | None) -> dict[str, Any]:
    # The agent may be a name only this process knows (a test's scripted agent): read it raw, type the rest.
    copy = {key: value for key, value in (stored or {}).items() if key != "recovery.agent"}
    if isinstance(copy.get("recovery"), dict):
        copy["recovery"] = {k: v for k, v in copy["recovery"].items() if k != "agent"}
    return copy
