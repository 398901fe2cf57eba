"""The `codegen` workflow kind: one task becomes a branch, a commit, a push and a pull request linked to the task.

Stages (journal steps, `workflows.journal`): claim → checkout (fresh, from the mirror cache, on branch
`taskmaster/<number>-<slug>`) → prompt (`codegen.task`) → slot (one of the project's `codegen.max_parallel` agent
slots, held for the agent only) → agent → check → commit
(kept as a git bundle in the journal) → push → pull_request → link (task `review`). Each effect outside the
database is idempotent, so a run started again after a crash ends with exactly one branch and one pull request.
A failure undoes what was made (remote branch, PR) and sends the task back to `pending` (`blocked` after
`codegen.max_failures` failed runs).
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import shutil
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import structlog
from sqlalchemy import and_, func, select

from taskmaster.agents.base import AgentResult, CodingAgent, CodingJob
from taskmaster.audit import service as audit
from taskmaster.config import Settings
from taskmaster.core.clock import utcnow
from taskmaster.core.errors import TaskmasterError
from taskmaster.core.text import slug
from taskmaster.costs.service import CallRecord, record_call
from taskmaster.db.models import Project, PullRequest, Task, WorkflowRun, WorkflowStep
from taskmaster.db.session import Database
from taskmaster.forges.base import Forge, ForgeConflict, PullRequestLookup, PullRequestRef
from taskmaster.projects import settings as project_settings
from taskmaster.projects.credentials import Credentials
from taskmaster.projects.forges import ForgeFactory
from taskmaster.projects.repository import forge_path
from taskmaster.projects.service import lock_project
from taskmaster.tasks import service as tasks
from taskmaster.templates.render import render
from taskmaster.workflows.base import RunInput, RunResult
from taskmaster.workflows.codegen import sweep
from taskmaster.workflows.codegen.agents import AgentChoice, AgentRegistry, default_agents
from taskmaster.workflows.codegen.gitops import Git, GitFailed, points_outside, protected_changes
from taskmaster.workflows.journal import Journal
from taskmaster.workspaces.git_cache import MirrorCache

log = structlog.stdlib.get_logger("taskmaster.workflows.codegen")

KIND = "codegen"
CONVENTION_FILES = ("AGENTS.md", "CLAUDE.md", "CONTRIBUTING.md")
CONVENTION_MAX_CHARS = 20_000
TRANSCRIPT_MAX_CHARS = 100_000
SLOT_POLL_SECONDS = 0.5
PREPARING_AT_ONCE = 2
"""Runs of a process claiming, checking out and rendering their prompt at once. That work is local (one fetch
serves the runs of a request) and shares the CPU, so more at once only delays each: with 4 agent slots, the 4th
agent of a batch started 0.1 s later with 4 than with 2 (`bench/codegen.py`). Two, not one, so that a slow fetch
of one repository does not hold every other project's runs."""
CANCEL_POLL_SECONDS = 1.0


def branch_name(number: int, title: str) -> str:
    return f"taskmaster/{number}-{slug(title)}"


_FAILURE_WORDS = {"failed": "failed", "timeout": "timed out", "refused": "was refused", "infra": "could not run"}
"""How a run's error names an agent's failure kind (`AgentFailure`)."""


def trigger_subject(task_id: uuid.UUID) -> str:
    """What makes two code-generation requests for one task the same run while one is live."""
    return f"task:{task_id}"


def acceptance_of(task: Task) -> list[str]:
    """The task's acceptance criteria: `extra["acceptance_criteria"]` when a planner stored them, else the bullet
    lines under an "Acceptance criteria" heading of its description or details."""
    stored = (task.extra or {}).get("acceptance_criteria") or (task.extra or {}).get("acceptance")
    if isinstance(stored, list):
        return [str(item) for item in stored if str(item).strip()]
    found: list[str] = []
    for text in (task.description, task.details):
        inside = False
        for line in (text or "").splitlines():
            if re.match(r"^\s*(?:#+\s*)?(?:acceptance(?: criteria)?|done when)\s*:?\s*$", line, re.I):
                inside = True
                continue
            bullet = re.match(r"^\s*(?:[-*+]|\d+[.)])\s+(?:\[[ xX]\]\s*)?(?P<text>\S.*)$", line)
            if inside and bullet:
                found.append(bullet["text"].strip())
            elif inside and line.strip():
                inside = False
    return found


def distinct_test_strategy(task: Task) -> str:
    """The task's test strategy, empty when it only lists its acceptance criteria again (the offline planner
    keeps a PRD's criteria as both), so that a prompt or a PR body does not say the same thing twice."""
    strategy = (task.test_strategy or "").strip()
    bullets = [re.sub(r"^\s*(?:[-*+]|\d+[.)])\s+", "", line).strip() for line in strategy.splitlines() if line.strip()]
    return "" if bullets and bullets == acceptance_of(task) else strategy


class _Failed(Exception):
    def __init__(self, stage: str, reason: str) -> None:
        super().__init__(reason)
        self.stage = stage
        self.reason = reason


class _Canceled(Exception):
    pass


@dataclass
class CodegenParts:
    """What a codegen run needs from the process (the runtime's parts), and the process's agent slots."""

    settings: Settings
    mirror: MirrorCache
    credentials: Credentials
    forges: ForgeFactory
    agents: AgentRegistry
    agent_slots: asyncio.Semaphore = field(default_factory=lambda: asyncio.Semaphore(1))
    """`worker.codegen_concurrency`: the agents this process runs at once."""
    preparing: asyncio.Semaphore = field(default_factory=lambda: asyncio.Semaphore(1))
    """`PREPARING_AT_ONCE`: the runs claiming, checking out and rendering their prompt at once, so that the first
    runs reach their agent first instead of every run in flight sharing the CPU until all are ready."""
    slot_freed: asyncio.Condition = field(default_factory=asyncio.Condition)
    """Notified when a run of this process frees a project slot, so that its waiters need not poll for it."""


class CodegenWorkflow:
    """The `codegen` workflow kind; at most `worker.codegen_concurrency` of its agents at once in this process (the
    stages before and after the agent run beside them, bounded by the worker's `concurrency`)."""

    name = KIND

    def __init__(
        self,
        settings: Settings,
        *,
        mirror: MirrorCache,
        credentials: Credentials,
        forges: ForgeFactory,
        agents: AgentRegistry | None = None,
    ) -> None:
        self.parts = CodegenParts(
            settings, mirror, credentials, forges, agents or default_agents(),
            agent_slots=asyncio.Semaphore(settings.worker.codegen_concurrency),
            preparing=asyncio.Semaphore(min(PREPARING_AT_ONCE, settings.worker.codegen_concurrency)),
        )  # fmt: skip

    async def run(self, db: Database, run: RunInput) -> RunResult:
        return await _Run(self.parts, db, run).go()

    async def sweep(self, db: Database) -> int:
        """Undo what runs that ended without their cleanup made (their PR closed, their branch deleted) and give
        their task back (`SweepingKind`); safe on several workers at once (the task goes back once)."""
        stale_after = self.parts.settings.worker.stale_after_seconds
        orphans = await sweep.orphaned_runs(db, kind=KIND, stale_after_seconds=stale_after)
        for run, status in orphans:
            log.warning("tidying up after a code-generation run that ended without it", run_id=str(run.run_id),
                        status=status)  # fmt: skip
            await _Run(self.parts, db, run).abandon(status)
        return len(orphans)


class _Run:
    def __init__(self, parts: CodegenParts, db: Database, run: RunInput) -> None:
        self.parts = parts
        self.settings = parts.settings
        self.db = db
        self.run = run
        self.journal = Journal(db, run.run_id, run.attempt)
        self.worker = f"codegen:{run.run_id}"
        self.task_id = uuid.UUID(str(run.params["task_id"]))
        self.choice = AgentChoice.from_params(run.params)
        self.workdir = self.settings.workspace_root.absolute() / "codegen" / str(run.run_id)
        self.checkout = self.workdir / "repo"
        self.stage = "queued"
        self.info: dict[str, Any] = {}
        self._holds_slot = False
        self._preparing = False
        self._outside_before: list[str] = []
        self._git_config: bytes | None = None
        self._project_row: Project | None = None
        self._task_row: Task | None = None

    # ------------------------------------------------------------------------------------------------ the run

    async def go(self) -> RunResult:
        try:
            await self.parts.preparing.acquire()
            self._preparing = True
            claim = await self._claim()
            if claim.get("not_ready"):
                return RunResult("failed", {"stage": "claim", "reason": "not ready"}, claim["not_ready"])
            self.info = claim
            await self._keep_claim()
            change = await self.journal.output("commit")
            if change is None:
                change = await self._make_change()
            self._prepared()
            if change.get("agent_pull_request_url"):
                pull = await self._step("pull_request", self._find_agents_pull_request)
            else:
                await self._step("push", self._push)
                pull = await self._step("pull_request", self._open_pull_request)
            await self._link_step(pull)
            result = {"stage": "done", "branch": pull.get("branch"), "pull_request_number": pull["number"],
                      "pull_request_url": pull["url"], "task_number": self.info["number"]}  # fmt: skip
            log.info("codegen run opened a pull request", run_id=str(self.run.run_id), **result)
            return RunResult("succeeded", result)
        except _Canceled:
            await self._undo()
            await self._task_back("canceled", "the run was canceled")
            return RunResult("failed", {"stage": self.stage, "reason": "canceled"}, "canceled")
        except _Failed as failed:
            log.warning("codegen run failed", run_id=str(self.run.run_id), stage=failed.stage, reason=failed.reason)
            await self._undo()
            status = await self._task_back(failed.stage, failed.reason)
            result = {"stage": failed.stage, "reason": failed.reason, "task_status": status}
            return RunResult("failed", result, f"{failed.stage}: {failed.reason}"[:1000])
        finally:
            self._prepared()
            with contextlib.suppress(Exception):
                # A run that failed or was canceled holding it, or a resumed run's slot from its earlier attempt.
                await self._free_slot(force=self.run.attempt > 1)
            await self._clear_workdir()

    async def abandon(self, status: str) -> None:
        """Tidy up after this run, which ended as `status` without undoing what it made (see `sweep`)."""
        self.info = await self.journal.output("claim") or {}
        await self._undo()
        reason = "the run was canceled" if status == "canceled" else f"the run ended {status}"
        await self._task_back("canceled" if status == "canceled" else status, f"{reason}; tidied up after it")
        await self._clear_workdir()

    def _prepared(self) -> None:
        if self._preparing:
            self._preparing = False
            self.parts.preparing.release()

    async def _step(self, name: str, fn: Any) -> dict[str, Any]:
        self.stage = name
        await self._check_canceled()
        try:
            output: dict[str, Any] = await self.journal.step(name, fn)
        except _Failed:
            raise
        except TaskmasterError as exc:
            raise _Failed(name, str(exc)) from exc
        return output

    async def _timed(self, name: str, fn: Any, *, announce: bool = True) -> dict[str, Any]:
        self.stage = name
        await self._check_canceled()
        try:
            output: dict[str, Any] = await self.journal.timed(name, fn, announce=announce)
        except _Failed:
            raise
        except TaskmasterError as exc:
            raise _Failed(name, str(exc)) from exc
        return output

    async def _check_canceled(self) -> None:
        async with self.db.session() as session:
            status = await session.scalar(select(WorkflowRun.status).where(WorkflowRun.id == self.run.run_id))
        if status == "canceled":
            raise _Canceled()

    # ------------------------------------------------------------------------------------------------ admission

    async def _admit(self, *, start: str) -> None:
        """Wait for one of the project's `codegen.max_parallel` agent slots (a `slot` step of a `running` run, kept
        until its agent ends: a run resumed inside its agent holds it again), and record step `start` as started in
        the transaction that takes the slot."""
        if self.run.attempt > 1 and await self.journal.output("slot") is not None:
            self._holds_slot = True
            await self.journal.start(start)
            return
        while True:
            await self._check_canceled()
            async with self.db.single_writer(), self.db.transaction() as session:
                project = await lock_project(session, self.run.project_id)
                limit = project_settings.load(project.settings).codegen.max_parallel
                holding = await session.scalar(
                    select(func.count())
                    .select_from(WorkflowStep)
                    .join(WorkflowRun, WorkflowRun.id == WorkflowStep.run_id)
                    .where(
                        WorkflowRun.project_id == self.run.project_id, WorkflowRun.kind == KIND,
                        WorkflowRun.status == "running", WorkflowStep.name == "slot",
                        WorkflowStep.finished_at.is_not(None), WorkflowRun.id != self.run.run_id,
                    )
                )  # fmt: skip
                if (holding or 0) < limit:
                    now = utcnow()
                    session.add(WorkflowStep(run_id=self.run.run_id, name="slot", output={"limit": limit},
                                             attempt=self.run.attempt, started_at=now, finished_at=now))  # fmt: skip
                    await self.journal.start_in(session, start, at=now)
                    self._holds_slot = True
                    return
            # Woken at once when a run of this process frees a slot; the poll catches other workers' runs.
            freed = self.parts.slot_freed
            async with freed:
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(SLOT_POLL_SECONDS):
                        await freed.wait()

    async def _free_slot(self, *, force: bool = False) -> None:
        if not (self._holds_slot or force):
            return
        await self.journal.forget("slot")
        self._holds_slot = False
        await self._slot_freed()

    async def _slot_freed(self) -> None:
        """Wake this process's runs waiting for a project slot (other workers' runs find it by polling)."""
        async with self.parts.slot_freed:
            self.parts.slot_freed.notify_all()

    async def _agent_stage(self, project: Project, task: Task, prompt: dict[str, Any]) -> dict[str, Any]:
        """The agent inside this process's and the project's agent slots. When it returns, one write frees the
        project slot and records its cost and output, and both slots are handed on before anything else, so that
        the next run's agent starts at once."""
        self.stage = "agent"
        await self._check_canceled()
        async with self.parts.agent_slots:
            await self._admit(start="agent")
            try:
                output, result = await self._agent(project, task, prompt)
            except TaskmasterError as exc:
                raise _Failed("agent", str(exc)) from exc
            await self._agent_done(project, prompt, result, output)
        await self._slot_freed()
        if not result.ok:
            how = _FAILURE_WORDS.get(result.failure or "failed", "failed")
            raise _Failed("agent", f"the agent {how}: {result.error or 'no reason given'}")
        await self._after_agent()
        return output

    async def _agent_done(
        self, project: Project, prompt: dict[str, Any], result: AgentResult, output: dict[str, Any]
    ) -> None:
        """The project slot freed, the agent's call (tokens, cost) and its step's output recorded: one transaction."""
        async with self.db.single_writer(), self.db.transaction() as session:
            await self.journal.forget_in(session, "slot")
            await record_call(
                session,
                CallRecord(
                    project_id=project.id, purpose="codegen", provider=self.choice.kind,
                    model=self.choice.type if self.choice.kind == "agentapi" else None,
                    input_tokens=result.input_tokens or 0, output_tokens=result.output_tokens or 0,
                    cost_usd=result.cost_usd, template_name=prompt["name"], template_version=prompt["version"],
                    workflow_run_id=self.run.run_id,
                ),
                prices=self.settings.costs.prices,
            )  # fmt: skip
            await self.journal.record_in(session, "agent", output)
        self._holds_slot = False

    # ------------------------------------------------------------------------------------------------ claim

    async def _claim(self) -> dict[str, Any]:
        """The `claim` step: the claim and its record in one transaction (nothing outside the database to redo)."""
        self.stage = "queued"
        done = await self.journal.output("claim")
        if done is not None:
            return done
        started = utcnow()
        async with self.db.single_writer(), self.db.transaction() as session:
            task = await tasks.claim_ready_task(session, self.run.project_id, self.task_id, assignee=self.worker)
            if task is None:
                found = await session.get(Task, self.task_id)
                what = f"task #{found.number} is not ready (status {found.status})" if found else "the task is gone"
                output: dict[str, Any] = {"not_ready": what}
            else:
                # The run holds the task while its worker's heartbeat holds the run: no expiry of its own.
                task.lease_expires_at = None
                project = await session.get_one(Project, self.run.project_id)
                output = {
                    "number": task.number, "title": task.title, "branch": branch_name(task.number, task.title),
                    "base_branch": project.default_branch,
                }  # fmt: skip
            await self.journal.record_in(session, "claim", output, started_at=started)
            return output

    async def _keep_claim(self) -> None:
        """A run started again still holds its task: the claim is renewed (it may have lapsed while no worker ran)."""
        if self.run.attempt <= 1:
            return
        async with self.db.single_writer(), self.db.transaction() as session:
            task = await session.get_one(Task, self.task_id, populate_existing=True)
            if task.status == "pending" or (task.status == "in_progress" and task.assignee == self.worker):
                task.status, task.assignee, task.lease_expires_at = "in_progress", self.worker, None
                task.claimed_at = task.claimed_at or utcnow()

    # ------------------------------------------------------------------------------------------------ the change

    async def _project(self) -> Project:
        """The project as this run first read it (read once per run: its repository and forge do not move)."""
        if self._project_row is None:
            async with self.db.session() as session:
                project = await session.get_one(Project, self.run.project_id)
                session.expunge(project)
                self._project_row = project
        return self._project_row

    async def _task(self) -> Task:
        if self._task_row is None:
            async with self.db.session() as session:
                task = await session.get_one(Task, self.task_id)
                session.expunge(task)
                self._task_row = task
        return self._task_row

    async def _clear_workdir(self) -> None:
        """Remove the run's directory, its checkout through the mirror cache (which forgets it at once rather than
        at its next eviction pass)."""
        if self.checkout.exists():
            with contextlib.suppress(Exception):
                await self.parts.mirror.remove(self.checkout)
        await asyncio.to_thread(shutil.rmtree, self.workdir, True)

    async def _fresh_checkout(self, project: Project, ref: str) -> str:
        await self._clear_workdir()
        await asyncio.to_thread(self.workdir.mkdir, parents=True, exist_ok=True)
        token = self.parts.credentials.forge_token(project)
        requested = self.run.requested_at.timestamp() if self.run.requested_at is not None else None
        made = await self.parts.mirror.checkout(
            project.repository, ref, self.checkout, token=token, fetched_since=requested
        )
        return made.sha

    def _git(self) -> Git:
        author = (self.settings.codegen.author_name, self.settings.codegen.author_email)
        return Git(self.checkout, author=author)

    async def _make_change(self) -> dict[str, Any]:
        project = await self._project()
        task = await self._task()
        branch, base_branch = self.info["branch"], self.info["base_branch"]

        async def checkout() -> dict[str, Any]:
            base_sha = await self._fresh_checkout(project, base_branch)
            await self._git().branch(branch)
            return {"base_sha": base_sha, "branch": branch}

        made = await self._timed("checkout", checkout, announce=False)
        base_sha = made["base_sha"]
        prompt_out = await self._timed("prompt", lambda: self._prompt(project, task), announce=False)
        self._prepared()
        agent_out = await self._agent_stage(project, task, prompt_out)
        if agent_out.get("pull_request_url"):
            output = {"agent_pull_request_url": agent_out["pull_request_url"], "head_branch": agent_out["head_branch"]}
            await self.journal.record("commit", output)
            return output
        await self._timed("check", lambda: self._check(task, base_sha), announce=False)

        async def commit() -> dict[str, Any]:
            git = self._git()
            summary = agent_out.get("summary") or ""
            message = (
                f"{task.title} (task #{task.number})\n\n{summary.strip()}\n\n"
                f"Taskmaster-Task: {project.name}#{task.number}\n"
            )
            sha = await git.commit(message)
            return {"sha": sha, "base_sha": base_sha, "branch": branch, "bundle": await git.bundle(branch, base_sha)}

        return await self._step("commit", commit)

    async def _prompt(self, project: Project, task: Task) -> dict[str, Any]:
        variables = {
            "project": project.name,
            "branch": self.info["branch"],
            "base_branch": self.info["base_branch"],
            "task": {
                "number": task.number, "title": task.title, "description": task.description or "",
                "details": task.details or "", "test_strategy": distinct_test_strategy(task),
            },
            "acceptance": acceptance_of(task),
            "dependencies": await self._dependencies(task),
            "conventions": await asyncio.to_thread(self._conventions),
        }  # fmt: skip
        async with self.db.session() as session:  # rendering only reads
            rendered = await render(session, "codegen.task", variables)
        self.prompt_text = rendered.text
        return {"template": rendered.ref, "name": rendered.name, "version": rendered.version}

    async def _dependencies(self, task: Task) -> list[dict[str, Any]]:
        ids = [uuid.UUID(str(value)) for value in (task.dependencies or []) if _is_uuid(value)]
        if not ids:
            return []
        async with self.db.session() as session:
            deps = (await session.scalars(select(Task).where(Task.id.in_(ids)).order_by(Task.number))).all()
            pulls = (await session.scalars(select(PullRequest).where(PullRequest.task_id.in_(ids)))).all()
        by_task: dict[uuid.UUID, list[dict[str, Any]]] = {}
        for pull in pulls:
            if pull.task_id is not None:
                by_task.setdefault(pull.task_id, []).append(
                    {"number": pull.number, "url": pull.url, "merged": pull.merged}
                )
        return [
            {
                "number": dep.number, "title": dep.title, "status": dep.status,
                "outcome": str((dep.extra or {}).get("codegen", {}).get("summary") or ""),
                "pull_requests": by_task.get(dep.id, []),
            }
            for dep in deps
        ]  # fmt: skip

    def _conventions(self) -> list[dict[str, str]]:
        found = []
        for name in CONVENTION_FILES:
            path = self.checkout / name
            if path.is_file() and not path.is_symlink():
                text = path.read_text(encoding="utf-8", errors="replace")
                found.append({"name": name, "text": text[:CONVENTION_MAX_CHARS]})
        return found

    async def _agent(self, project: Project, task: Task, prompt: dict[str, Any]) -> tuple[dict[str, Any], AgentResult]:
        """Run the agent; its result, and the `agent` step's output made of it (recorded by the caller)."""
        agent: CodingAgent = self.parts.agents.make(project, self.choice)
        previous = await self.journal.get("agent_started") if self.run.attempt > 1 else None
        timeout = project_settings.load(project.settings).codegen.timeout
        job = CodingJob(
            project_id=project.id, project_name=project.name, task_number=task.number, title=task.title,
            prompt=self.prompt_text, checkout=self.checkout, branch=self.info["branch"],
            base_branch=self.info["base_branch"], timeout=timeout,
            repository=forge_path(project),
            details=task.details, acceptance=tuple(acceptance_of(task)), test_strategy=task.test_strategy,
            metadata={"taskmaster_task": f"{project.name}#{task.number}", "taskmaster_run": str(self.run.run_id)},
            resume_id=(previous.output.get("external_id") if previous is not None else None),
        )  # fmt: skip

        async def started(external_id: str) -> None:
            await self.journal.record("agent_started", {"external_id": external_id})

        self._outside_before = await asyncio.to_thread(_listing, self.workdir)
        self._git_config = await asyncio.to_thread(_read, self.checkout / ".git" / "config")
        try:
            result = await self._watch(agent.run(job, on_started=started))
        finally:
            await agent.aclose()
        output = {
            "agent": agent.label, "ok": result.ok, "summary": result.summary[:5000],
            "transcript": result.transcript[-TRANSCRIPT_MAX_CHARS:], "failure": result.failure, "error": result.error,
            "external_id": result.external_id, "pull_request_url": result.pull_request_url,
            "head_branch": result.head_branch, "input_tokens": result.input_tokens,
            "output_tokens": result.output_tokens, "cost_usd": result.cost_usd,
            "claims_implementation": result.claims_implementation,
        }  # fmt: skip
        return output, result

    async def _after_agent(self) -> None:
        """What a successful agent may not have done: write beside its checkout, or change its git configuration."""
        if await asyncio.to_thread(_listing, self.workdir) != self._outside_before:
            raise _Failed("check", "the agent wrote outside its checkout")
        if await asyncio.to_thread(_read, self.checkout / ".git" / "config") != self._git_config:
            raise _Failed("check", "the agent changed the checkout's git configuration")

    async def _watch(self, work: Any) -> AgentResult:
        """Run the agent; a cancel of the run stops it (the agent's task is cancelled, which ends its processes)."""
        agent_task: asyncio.Task[AgentResult] = asyncio.ensure_future(work)
        try:
            while True:
                done, _ = await asyncio.wait({agent_task}, timeout=CANCEL_POLL_SECONDS)
                if done:
                    return agent_task.result()
                await self._check_canceled()
        finally:
            if not agent_task.done():
                agent_task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await agent_task

    async def _check(self, task: Task, base_sha: str) -> dict[str, Any]:
        change = await self._git().staged_change(base_sha)
        if not change.paths:
            raise _Failed("check", "the agent changed nothing (empty diff)")
        if change.files_before > 0 and change.files_after == 0:
            raise _Failed("check", f"the agent deleted the whole tree ({change.files_before} files)")
        for path, target in change.symlinks:
            if points_outside(self.checkout, path, target):
                raise _Failed("check", f"the agent made {path} a symbolic link out of the checkout ({target})")
        text = "\n".join(filter(None, (task.title, task.description, task.details, task.test_strategy)))
        protected = protected_changes(change.paths, text)
        if protected:
            raise _Failed(
                "check", f"the agent changed pipeline or CI configuration the task does not ask for: "
                f"{', '.join(protected)}",
            )  # fmt: skip
        return {"files": len(change.paths), "deleted": len(change.deleted), "paths": list(change.paths[:200])}

    # ------------------------------------------------------------------------------------------------ effects

    async def _push(self) -> dict[str, Any]:
        project = await self._project()
        change = await self.journal.output("commit")
        assert change is not None
        if not (self.checkout / ".git").exists():
            await self._fresh_checkout(project, change["base_sha"])
            await self._git().restore(change["branch"], change["bundle"])
        token = self.parts.credentials.forge_token(project)
        done = await self._git().push(project.repository, change["branch"], change["sha"], token)
        return {"sha": change["sha"], "branch": change["branch"], "done": done}

    def _forge(self, project: Project) -> Forge:
        forge = self.parts.forges.for_project(project)
        if forge is None:
            raise _Failed(
                "pull_request",
                f"project {project.name} has no forge client to open pull requests with "
                f"(forge {project.forge}: set its token, or use the local forge)",
            )
        return forge

    async def _open_pull_request(self) -> dict[str, Any]:
        project = await self._project()
        task = await self._task()
        change = await self.journal.output("commit")
        agent_out = await self.journal.output("agent") or {}
        assert change is not None
        repo, branch, base = _repo(project), change["branch"], self.info["base_branch"]
        forge = self._forge(project)
        try:
            found = await _find(forge, repo, branch, base)
            reused = found is not None
            if found is None:
                body = pull_request_body(task, agent_out, self.choice.kind, project.name)
                try:
                    found = await forge.create_pull_request(
                        repo, head=branch, base=base, title=f"{task.title} (task #{task.number})", body=body
                    )
                except ForgeConflict:
                    found = await _find(forge, repo, branch, base)
                    if found is None:
                        raise
        finally:
            await forge.aclose()
        return {"number": found.number, "url": found.url, "branch": branch, "sha": change["sha"], "reused": reused}

    async def _find_agents_pull_request(self) -> dict[str, Any]:
        project = await self._project()
        change = await self.journal.output("commit") or {}
        url = str(change["agent_pull_request_url"])
        number = _number_in(url)
        if number is None:
            raise _Failed("pull_request", f"the agent's pull request URL names no number: {url}")
        forge = self._forge(project)
        try:
            details = await forge.get_pull_request(_repo(project), number)
        finally:
            await forge.aclose()
        return {"number": details.number, "url": details.url, "branch": details.head_ref, "sha": details.head_sha,
                "reused": True, "by_agent": True}  # fmt: skip

    async def _link_step(self, pull: dict[str, Any]) -> dict[str, Any]:
        self.stage = "link"
        await self._check_canceled()
        done = await self.journal.output("link")
        if done is not None:
            return done
        try:
            return await self._link(pull)
        except TaskmasterError as exc:
            raise _Failed("link", str(exc)) from exc

    async def _link(self, pull: dict[str, Any]) -> dict[str, Any]:
        """The `link` step: the PR row, the task in `review`, and the step's record in one transaction."""
        project = await self._project()
        started = utcnow()
        async with self.db.single_writer(), self.db.transaction() as session:
            await lock_project(session, project.id)
            row = await session.scalar(
                select(PullRequest).where(PullRequest.project_id == project.id, PullRequest.number == pull["number"])
            )
            if row is None:
                row = PullRequest(project_id=project.id, number=pull["number"], head_ref=pull["branch"],
                                  head_sha=pull["sha"], base_ref=self.info["base_branch"])  # fmt: skip
                session.add(row)
            row.title = f"{self.info['title']} (task #{self.info['number']})"[:1000]
            row.url, row.task_id, row.author = pull["url"], self.task_id, row.author or "taskmaster"
            task = await session.get_one(Task, self.task_id, populate_existing=True)
            agent_out = await self.journal.output("agent") or {}
            task.extra = {**(task.extra or {}), "codegen": {
                "run_id": str(self.run.run_id), "pull_request": pull["number"], "url": pull["url"],
                "summary": agent_out.get("summary", ""),
            }}  # fmt: skip
            if task.status in ("in_progress", "pending"):
                await tasks.set_status(session, task, "review", actor=self.worker)
            task.assignee = None
            task.lease_expires_at = None
            await session.flush()
            output = {"pull_request_id": str(row.id)}
            await self.journal.record_in(session, "link", output, started_at=started)
            return output

    # ------------------------------------------------------------------------------------------------ undo

    async def _undo(self) -> None:
        """Remove what this run made outside the database: its PR (closed) and its remote branch."""
        try:
            project = await self._project()
        except Exception:  # the project is gone: nothing to undo there
            return
        change = await self.journal.output("commit") or {}
        if change.get("agent_pull_request_url"):
            return  # an agent that opened its own PR keeps it; the failure was before or at linking
        pull = await self.journal.output("pull_request")
        branch = change.get("branch") or self.info.get("branch")
        forge = None
        try:
            forge = self.parts.forges.for_project(project)
            if forge is not None:
                found = PullRequestRef(pull["number"], pull["url"]) if pull else None
                if found is None and branch and (await self.journal.get("pull_request")) is not None:
                    found = await _find(forge, _repo(project), branch, self.info.get("base_branch"))
                if found is not None:
                    await forge.close_pull_request(_repo(project), found.number)
        except Exception as exc:
            log.warning("could not close the run's pull request", run_id=str(self.run.run_id), error=str(exc))
        finally:
            if forge is not None:
                await forge.aclose()
        if branch and change.get("sha") and (await self.journal.get("push")) is not None:
            try:
                if not (self.checkout / ".git").exists():
                    await self._fresh_checkout(project, change["base_sha"])
                token = self.parts.credentials.forge_token(project)
                await self._git().delete_remote(project.repository, branch, change["sha"], token)
            except (GitFailed, TaskmasterError, OSError) as exc:
                log.warning("could not delete the run's branch", run_id=str(self.run.run_id), error=str(exc))
        await self.journal.forget("push", "pull_request", "link")

    async def _task_back(self, stage: str, reason: str) -> str | None:
        """The task goes back to `pending`, or `blocked` after `codegen.max_failures` failed runs; a note says why."""
        async with self.db.single_writer(), self.db.transaction() as session:
            project = await lock_project(session, self.run.project_id)
            task = await session.get(Task, self.task_id, populate_existing=True)
            if task is None or task.status != "in_progress" or task.assignee != self.worker:
                return task.status if task else None
            failed_before = await session.scalar(
                select(func.count()).select_from(WorkflowRun).where(
                    and_(WorkflowRun.project_id == project.id, WorkflowRun.kind == KIND,
                         WorkflowRun.trigger_key == f"{KIND}:{trigger_subject(self.task_id)}",
                         WorkflowRun.status == "failed")
                )
            )  # fmt: skip
            failures = (failed_before or 0) + (0 if stage == "canceled" else 1)
            limit = project_settings.load(project.settings).codegen.max_failures
            status = "blocked" if failures >= limit else "pending"
            note = {"last_run": str(self.run.run_id), "stage": stage, "reason": reason[:500], "failures": failures}
            task.extra = {**(task.extra or {}), "codegen": {**(task.extra or {}).get("codegen", {}), **note}}
            await tasks.set_status(session, task, status, actor=self.worker)  # type: ignore[arg-type]
            task.assignee = None
            await audit.record(
                session, actor=self.worker, action="codegen.failed", target_type="task", target_id=task.id,
                project_id=project.id, data=note,
            )  # fmt: skip
            return status


def pull_request_body(task: Task, agent_out: dict[str, Any], kind: str, project_name: str) -> str:
    """Description, acceptance criteria, test strategy and the agent's summary; says plainly when nothing was
    implemented (the offline agent's record-only change)."""
    parts = []
    if agent_out.get("claims_implementation") is False:
        parts.append(
            "> **No feature was implemented.** The offline agent recorded this task in the repository "
            "(`docs/tasks/`) so that a person or a coding agent can implement it."
        )
    parts.append(task.description or task.title)
    criteria = acceptance_of(task)
    if criteria:
        parts.append("## Acceptance criteria\n\n" + "\n".join(f"- [ ] {item}" for item in criteria))
    strategy = distinct_test_strategy(task)
    if strategy:
        parts.append(f"## Test strategy\n\n{strategy}")
    summary = str(agent_out.get("summary") or "").strip()
    parts.append(f"## What the agent did ({agent_out.get('agent') or kind})\n\n{summary or '(no summary)'}")
    parts.append(f"---\nOpened by Taskmaster for task {project_name}#{task.number}.")
    return "\n\n".join(parts)


async def _find(forge: Forge, repo: str, branch: str, base: str | None) -> PullRequestRef | None:
    if isinstance(forge, PullRequestLookup):
        return await forge.find_pull_request(repo, head=branch, base=base)
    return None


def _repo(project: Project) -> str:
    return forge_path(project) or project.repository


def _number_in(url: str) -> int | None:
    found = re.search(r"/(?:pull|pulls|merge_requests)/(\d+)", url)
    return int(found.group(1)) if found else None


def _is_uuid(value: object) -> bool:
    try:
        uuid.UUID(str(value))
    except ValueError:
        return False
    return True


def _listing(path: Path) -> list[str]:
    """The entries beside the checkout in the run's directory (the agent must add none)."""
    try:
        return sorted(entry.name for entry in path.iterdir() if entry.name != "repo")
    except FileNotFoundError:
        return []


def _read(path: Path) -> bytes | None:
    try:
        return path.read_bytes()
    except OSError:
        return None
