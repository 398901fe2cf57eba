"""`CodegenAgent`: a `CodingAgent` whose work is a Codegen agent run; Codegen pushes the branch and opens the pull
request itself, and the result says where (the code-generation workflow finds that pull request and links it)."""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

from taskmaster.agents.base import AgentFailure, AgentKind, AgentNotConfigured, AgentResult, CodingJob, StartedCallback
from taskmaster.agents.codegen.client import (
    AgentRun,
    AgentType,
    CodegenClient,
    CodegenError,
    CodegenPlanLimit,
    CodegenUnavailable,
    RetryPolicy,
)
from taskmaster.core.errors import InvalidInput

if TYPE_CHECKING:
    from taskmaster.config import Settings

_T = TypeVar("_T")

SUCCEEDED = frozenset({"complete", "completed"})
FAILED = frozenset({"failed", "error", "cancelled", "stopped", "timeout", "max_iterations_reached", "out_of_tokens"})
"""Codegen's statuses, compared in lower case (the API answers `COMPLETE`, `ACTIVE`, `FAILED`, …; older runs and
the SDK's documentation say `completed`). Any other value (`pending`, `running`, `active`, `evaluation`, a new one)
means the run goes on."""


@dataclass(frozen=True, slots=True)
class PollPolicy:
    """How often a run is read: first after `initial` seconds, then each wait `factor` times longer up to `maximum`,
    jittered by ±`jitter` of itself. A follow-up's old terminal status is believed only after `resume_settle`
    seconds (the service may not have taken the follow-up up yet)."""

    initial: float = 5.0
    factor: float = 1.5
    maximum: float = 60.0
    jitter: float = 0.1
    resume_settle: float = 30.0

    def __post_init__(self) -> None:
        if min(self.initial, self.maximum, self.jitter, self.resume_settle) < 0 or self.factor < 1:
            raise InvalidInput("poll policy needs non-negative waits and a factor of at least 1")

    def wait(self, number: int) -> float:
        base = min(self.maximum, self.initial * self.factor**number)
        return max(0.0, base * (1 + random.uniform(-self.jitter, self.jitter)))


def run_outcome(status: str | None) -> bool | None:
    """True for a run that succeeded, False for one that failed, None while it goes on (case-insensitive)."""
    value = (status or "").strip().lower()
    if value in SUCCEEDED:
        return True
    if value in FAILED:
        return False
    return None


class CodegenAgent:
    """A `CodingAgent` on the Codegen API (kind and label "codegen").

    `run(job)` creates a run from `job.prompt` (with `repo_id`, `model`, `agent_type` and metadata naming the
    project, task and branch), or with `job.resume_id` goes on polling that run; `on_started(str(id))` is called
    as soon as the id is known; the run is read with `PollPolicy` backoff until its status is final or
    `job.timeout` passes. The checkout is not touched: the pull request is Codegen's (`pull_request_url`,
    `head_branch`). `resume(run_id, prompt)` sends a follow-up to an earlier run and waits for it likewise.

    Failures (never exceptions): a failed run is `failed` (`timeout` for Codegen's own time-out); no final status
    by `job.timeout` is `timeout`; HTTP 402 is `refused`, naming the plan limit; other API errors (key, organisation,
    repository, validation) and an unreachable service are `infra`. A service outage while polling is waited out
    until the timeout. Cancel: Codegen offers no call that stops one run, so cancelling stops the polling only; the
    run is left to finish (its id was given to `on_started`).
    """

    def __init__(
        self,
        client: CodegenClient,
        *,
        repo_id: int | None = None,
        model: str | None = None,
        agent_type: AgentType | None = None,
        poll: PollPolicy | None = None,
    ) -> None:
        self.client = client
        self.repo_id = repo_id
        self.model = model
        self.agent_type = agent_type
        self.poll = poll or PollPolicy()
        self._repo_ids: dict[str, int | None] = {}

    @classmethod
    def from_settings(
        cls,
        settings: Settings,
        *,
        repo_id: int | None = None,
        model: str | None = None,
        agent_type: AgentType | None = None,
        poll: PollPolicy | None = None,
        retry: RetryPolicy | None = None,
    ) -> CodegenAgent:
        """The agent with `settings.codegen`'s key, organisation and URL; `AgentNotConfigured` names the missing
        setting. No network access happens here."""
        config = settings.codegen
        key = config.api_key.get_secret_value().strip() if config.api_key is not None else ""
        if not key:
            raise AgentNotConfigured("the codegen agent needs CODEGEN_API_KEY (a Codegen API token)")
        org = (config.org_id or "").strip()
        if not org:
            raise AgentNotConfigured("the codegen agent needs CODEGEN_ORG_ID (the Codegen organisation's id)")
        if not org.isdigit():
            raise AgentNotConfigured(f"CODEGEN_ORG_ID must be the organisation's integer id, not {org!r}")
        try:
            client = CodegenClient(api_key=key, org_id=int(org), api_url=config.api_url, retry=retry)
        except InvalidInput as exc:
            raise AgentNotConfigured(exc.detail) from None
        return cls(client, repo_id=repo_id, model=model, agent_type=agent_type, poll=poll)

    @property
    def kind(self) -> AgentKind:
        return "codegen"

    @property
    def label(self) -> str:
        return "codegen"

    async def run(self, job: CodingJob, *, on_started: StartedCallback | None = None) -> AgentResult:
        deadline = time.monotonic() + job.timeout
        run_id: int | None = None
        try:
            if job.resume_id is not None:
                run_id = _run_id(job.resume_id)
            else:
                repo_id = await self._repo_id(job.repository)
                created = await _within(deadline, self._create(job, repo_id))
                run_id = created.id
            if on_started is not None:
                await on_started(str(run_id))
            return await self._wait(run_id, deadline, settle_until=None)
        except TimeoutError:
            return _failure("timeout", f"Codegen gave no final status within {job.timeout:g} s", run_id)
        except CodegenPlanLimit as exc:
            return _failure("refused", exc.detail, run_id)
        except CodegenError as exc:
            return _failure("infra", exc.detail, run_id)
        except InvalidInput as exc:
            return _failure("infra", exc.detail, run_id)

    async def resume(self, run_id: str | int, prompt: str, *, timeout: float = 1800.0) -> AgentResult:  # noqa: ASYNC109
        """Send `prompt` as a follow-up to run `run_id` (recovery sends a failure to the run that made a pull
        request) and wait, as `run` does, for the run to end again."""
        deadline = time.monotonic() + timeout
        number: int | None = None
        try:
            number = _run_id(run_id)
            resumed = await _within(deadline, self.client.resume_run(number, prompt))
            settle = None if run_outcome(resumed.status) is None else time.monotonic() + self.poll.resume_settle
            return await self._wait(number, deadline, settle_until=settle)
        except TimeoutError:
            return _failure("timeout", f"Codegen gave no final status within {timeout:g} s", number)
        except CodegenPlanLimit as exc:
            return _failure("refused", exc.detail, number)
        except (CodegenError, InvalidInput) as exc:
            return _failure("infra", exc.detail, number)

    async def aclose(self) -> None:
        await self.client.aclose()

    async def _repo_id(self, repository: str | None) -> int | None:
        if self.repo_id is not None or not repository:
            return self.repo_id
        if repository not in self._repo_ids:
            self._repo_ids[repository] = await self.client.find_repo_id(repository)
        found = self._repo_ids[repository]
        if found is None:
            raise InvalidInput(
                f"repository {repository!r} is not connected to Codegen organisation {self.client.org_id}"
            )
        return found

    async def _create(self, job: CodingJob, repo_id: int | None) -> AgentRun:
        metadata: dict[str, Any] = {
            "taskmaster_project_id": str(job.project_id),
            "taskmaster_project": job.project_name,
            "taskmaster_branch": job.branch,
            "taskmaster_base_branch": job.base_branch,
        }
        if job.task_number is not None:
            metadata["taskmaster_task"] = job.task_number
        metadata.update(job.metadata)
        return await self.client.create_run(
            _prompt(job), repo_id=repo_id, model=self.model, agent_type=self.agent_type, metadata=metadata
        )

    async def _wait(self, run_id: int, deadline: float, *, settle_until: float | None) -> AgentResult:
        """Poll until a final status; a final status before `settle_until` is the one before a follow-up, not
        believed until the run has shown a live status or that moment has passed."""
        polls = 0
        while True:
            try:
                run = await _within(deadline, self.client.get_run(run_id))
            except CodegenUnavailable:
                # The run goes on at Codegen while its API is away: keep waiting until the job's own deadline.
                run = None
            if run is not None:
                outcome = run_outcome(run.status)
                if outcome is None:
                    settle_until = None
                elif settle_until is None or time.monotonic() >= settle_until:
                    return _result(run, outcome)
            pause = self.poll.wait(polls)
            polls += 1
            if time.monotonic() + pause >= deadline:
                remaining = deadline - time.monotonic()
                if remaining > 0:
                    await asyncio.sleep(remaining)
                raise TimeoutError
            await asyncio.sleep(pause)


async def _within(deadline: float, call: Awaitable[_T]) -> _T:
    # asyncio.timeout, not wait_for: on Python 3.11 wait_for can swallow a cancel that lands as the call completes.
    async with asyncio.timeout(max(0.0, deadline - time.monotonic())):
        return await call


def _run_id(value: str | int) -> int:
    text = str(value).strip()
    if not text.isdigit():
        raise InvalidInput(f"a Codegen agent run id is an integer, not {text!r}")
    return int(text)


def _prompt(job: CodingJob) -> str:
    """The rendered prompt, with where the work goes: Codegen pushes and opens the pull request itself."""
    lines = [job.prompt.rstrip(), "", "---"]
    if job.repository:
        lines.append(f"Repository: {job.repository}")
    lines.append(f"Open one pull request from a new branch named `{job.branch}` into `{job.base_branch}`.")
    return "\n".join(lines)


def _result(run: AgentRun, succeeded: bool) -> AgentResult:
    pulls = [pull for pull in run.github_pull_requests or [] if pull.url]
    # The newest pull request is the one this run's latest work is on (a follow-up may open another).
    pull = max(pulls, key=lambda item: (item.created_at or "", item.id)) if pulls else None
    text = run.summary or run.result or ""
    transcript = "\n\n".join(part for part in (run.result, run.web_url and f"Codegen run: {run.web_url}") if part)
    status = (run.status or "").strip()
    if succeeded:
        return AgentResult(
            ok=True,
            summary=text,
            transcript=transcript,
            external_id=str(run.id),
            pull_request_url=pull.url if pull else None,
            head_branch=pull.head_branch_name if pull else None,
        )
    failure: AgentFailure = "timeout" if status.lower() == "timeout" else "failed"
    first_line = text.strip().splitlines()[0] if text.strip() else ""
    return AgentResult(
        ok=False,
        summary=text,
        transcript=transcript,
        failure=failure,
        error=f"Codegen run {run.id} ended {status}" + (f": {first_line}" if first_line else ""),
        external_id=str(run.id),
        pull_request_url=pull.url if pull else None,
        head_branch=pull.head_branch_name if pull else None,
    )


def _failure(kind: AgentFailure, error: str, run_id: int | None) -> AgentResult:
    return AgentResult(ok=False, failure=kind, error=error, external_id=None if run_id is None else str(run_id))
