"""The debuggers: a language model that answers with a diff (`ProviderDebugger`), a coding agent that edits its own
checkout (`AgentDebugger`, whose checkout's diff is the patch), and Codegen, to which the failure is handed off
(`CodegenDebugger`, continuing the run that made the pull request when there is one)."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from pathlib import Path
from typing import TYPE_CHECKING

from taskmaster.agents.base import AgentNotConfigured, CodingAgent, CodingJob
from taskmaster.agents.llm.base import LlmProvider, Usage
from taskmaster.core.errors import Unavailable
from taskmaster.workflows.recovery.base import DebugAnswer, DebuggerFactory, DebuggerRegistry, DebugInput
from taskmaster.workflows.recovery.checks import MAX_PATCH_BYTES
from taskmaster.workflows.recovery.gitops import checkout_diff
from taskmaster.workflows.recovery.schemas import DebugVerdict

if TYPE_CHECKING:
    from taskmaster.agents.codegen.agent import CodegenAgent

SYSTEM = (
    "You are the debugger of a CI system. A pipeline step failed for its code. Find the cause in the code under "
    "test and answer with a minimal unified diff that fixes it. Never delete, skip or weaken tests, and never "
    "change CI, lint or test configuration: such patches are refused. Answer fixed=false when you have no fix."
)

LlmFactory = Callable[[str], AbstractAsyncContextManager[LlmProvider | None]]


class ProviderDebugger:
    """A model of `provider` (through `llm`, e.g. `Runtime.llm`) answers each round with a `DebugVerdict`."""

    needs_checkout = False

    def __init__(self, provider: str, llm: LlmFactory) -> None:
        self.provider = provider
        self._llm = llm

    @property
    def label(self) -> str:
        return self.provider

    async def debug(self, request: DebugInput, workspace: Path | None) -> DebugAnswer:
        usage = Usage()
        model: str | None = None
        async with self._llm(self.provider) as llm:
            if llm is None:
                raise AgentNotConfigured(f"recovery agent {self.provider!r} is not a language model provider")
            model = llm.model
            try:
                verdict = await llm.structured(system=SYSTEM, prompt=request.prompt, schema=DebugVerdict, usage=usage)
            except Unavailable as exc:
                # The tokens of failed requests were still spent: the round records them with the error.
                raise _Spent(exc.detail, usage, model) from exc
        patch = verdict.patch if verdict.fixed and verdict.patch.strip() else None
        return DebugAnswer(
            patch=patch, explanation=verdict.explanation, agent=self.provider, model=model,
            input_tokens=usage.input_tokens, output_tokens=usage.output_tokens, requests=usage.requests,
        )  # fmt: skip

    async def aclose(self) -> None:
        return None


class _Spent(Unavailable):
    """A provider failed after spending tokens (kept so the round records them)."""

    def __init__(self, detail: str, usage: Usage, model: str | None) -> None:
        super().__init__(detail)
        self.usage = usage
        self.model = model


AgentFactory = Callable[[], CodingAgent]


class AgentDebugger:
    """A coding agent (`CodingAgent`) edits a fresh checkout of the commit; the checkout's diff is the patch.

    `handoff` (Codegen): the agent pushes its own fix to the pull request, continuing the run that made it when
    known (found through the PR's task: `workflows/codegen/service.agent_run_of_pull_request`); the round records
    the hand-off and there is no patch to try here."""

    needs_checkout = True

    def __init__(self, make_agent: AgentFactory, *, handoff: bool = False, timeout: float = 1800.0) -> None:
        self._make_agent = make_agent
        self.handoff = handoff
        self.timeout = timeout
        self._label = "agent"
        self._spare: CodingAgent | None = None

    @classmethod
    def checked(cls, make_agent: AgentFactory, *, timeout: float = 1800.0) -> AgentDebugger:
        """A debugger whose first agent is made now, so that `AgentNotConfigured` (no command, no sandbox) is
        raised when recovery starts rather than in every round; that agent serves the first round."""
        debugger = cls(make_agent, timeout=timeout)
        debugger._spare = make_agent()
        debugger._label = debugger._spare.label
        return debugger

    @property
    def label(self) -> str:
        return self._label

    async def debug(self, request: DebugInput, workspace: Path | None) -> DebugAnswer:
        assert workspace is not None, "an agent debugger gets a checkout"
        agent, self._spare = (self._spare or self._make_agent()), None
        self._label = agent.label
        try:
            job = CodingJob(
                project_id=request.project_id, project_name=request.project_name, task_number=None,
                title=f"Fix the failing step '{request.step_name}' (round {request.round})", prompt=request.prompt,
                checkout=workspace, branch=request.branch or "", base_branch=request.branch or "",
                timeout=self.timeout, repository=request.repository, resume_id=request.resume_id,
                metadata={"pipeline_id": str(request.pipeline_id), "step": request.step_name},
            )  # fmt: skip
            result = await agent.run(job)
        finally:
            await agent.aclose()
        if not result.ok:
            raise Unavailable(f"the recovery agent {agent.label} did not finish: {result.failure}: {result.error}")
        patch = None if self.handoff else (await checkout_diff(workspace, limit=MAX_PATCH_BYTES) or None)
        return DebugAnswer(
            patch=patch,
            explanation=result.summary,
            agent=agent.label,
            input_tokens=result.input_tokens or 0,
            output_tokens=result.output_tokens or 0,
            cost_usd=result.cost_usd,
            handed_off=self.handoff,
        )

    async def aclose(self) -> None:
        spare, self._spare = self._spare, None
        if spare is not None:
            await spare.aclose()


class CodegenDebugger:
    """Hands the failure to Codegen, which pushes its own fix: a follow-up to the Codegen run that made the pull
    request when the pipeline records one (`DebugInput.resume_id`, a run id), else a new run asked to open a pull
    request into the failing branch. No checkout here: Codegen works on its own clone."""

    needs_checkout = False
    label = "codegen"

    def __init__(self, agent: CodegenAgent, *, timeout: float = 1800.0) -> None:
        self.agent = agent
        self.timeout = timeout

    async def debug(self, request: DebugInput, workspace: Path | None) -> DebugAnswer:
        resume = (request.resume_id or "").strip()
        if resume.isdigit():
            result = await self.agent.resume(resume, request.prompt, timeout=self.timeout)
        else:
            job = CodingJob(
                project_id=request.project_id, project_name=request.project_name, task_number=None,
                title=f"Fix the failing step '{request.step_name}'", prompt=request.prompt,
                checkout=workspace or Path("."), branch=f"taskmaster/fix-{str(request.pipeline_id)[:8]}",
                base_branch=request.branch or "", timeout=self.timeout, repository=request.repository,
                metadata={"pipeline_id": str(request.pipeline_id), "step": request.step_name},
            )  # fmt: skip
            result = await self.agent.run(job)
        if not result.ok:
            raise Unavailable(
                f"the Codegen run {result.external_id or ''} did not finish: {result.failure}: {result.error}"
            )
        where = f" (run {result.external_id})" if result.external_id else ""
        return DebugAnswer(
            patch=None, explanation=(result.summary or "handed to Codegen") + where, agent=self.label,
            input_tokens=result.input_tokens or 0, output_tokens=result.output_tokens or 0,
            cost_usd=result.cost_usd, handed_off=True,
        )  # fmt: skip

    async def aclose(self) -> None:
        await self.agent.aclose()


PROVIDERS = ("anthropic", "openai", "ollama")


def default_debuggers(llm: LlmFactory) -> DebuggerRegistry:
    """The provider debuggers (`anthropic`, `openai`, `ollama`) over `llm` (the runtime's LLM factory)."""

    def provider(name: str) -> DebuggerFactory:
        return lambda project: ProviderDebugger(name, llm)

    return DebuggerRegistry({name: provider(name) for name in PROVIDERS})
