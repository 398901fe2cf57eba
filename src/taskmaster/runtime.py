"""`Runtime`: what one process builds once (database, credentials, mirror cache, sites, forge and LLM factories)
and the pipeline engine made from them; used by the app, the worker process and the CLI alike."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractAsyncContextManager

from taskmaster.agents.base import CodingAgent
from taskmaster.agents.llm.base import LlmProvider
from taskmaster.agents.llm.factory import planning_model
from taskmaster.config import Settings
from taskmaster.db.models import Project
from taskmaster.db.session import Database
from taskmaster.forges.base import Forge
from taskmaster.forges.local.forge import LocalForge
from taskmaster.pipelines.builtins import DEFAULT_BUILTINS, BuiltinRegistry
from taskmaster.pipelines.engine import OnChange, PipelineEngine
from taskmaster.pipelines.leases import Lease
from taskmaster.pipelines.recovery import RecoveryHook
from taskmaster.pipelines.sites import LocalSites, Sites, remote_sites
from taskmaster.projects.credentials import Credentials
from taskmaster.projects.forges import ForgeFactory
from taskmaster.secrets import SecretBox
from taskmaster.workflows.codegen.agents import AgentRegistry, coding_agents
from taskmaster.workflows.codegen.run import CodegenWorkflow
from taskmaster.workflows.recovery import RecoveryWorkflow
from taskmaster.workflows.recovery.base import Debugger, RecoveryServices
from taskmaster.workflows.recovery.debuggers import AgentDebugger, CodegenDebugger, default_debuggers
from taskmaster.workflows.recovery.service import DebugRecovery
from taskmaster.workflows.registry import WorkflowRegistry, default_workflows
from taskmaster.workflows.review import ReviewWorkflow
from taskmaster.workflows.review.service import ReviewServices
from taskmaster.workflows.review.step import AiReviewStep
from taskmaster.workspaces.git_cache import MirrorCache


class Runtime:
    """The parts a process shares, built once and handed down; nothing connects until first use.

    `db` defaults to a new `Database` for `settings`, which `aclose` then disposes (a database passed in stays its
    owner's). The sites (this machine's sandbox, or the configured SSH instances) are made when the first engine
    is, and closed by `aclose`. `box` replaces the key from the settings (tests).
    """

    def __init__(self, settings: Settings, db: Database | None = None, *, box: SecretBox | None = None) -> None:
        self.settings = settings
        self._owns_db = db is None
        self.db = db if db is not None else Database.from_settings(settings)
        self.credentials = Credentials(box) if box is not None else Credentials.from_settings(settings)
        self.mirror = MirrorCache.from_settings(settings)
        self.forges = ForgeFactory(settings, self.credentials, local=self._local_forge)
        self.agents: AgentRegistry = coding_agents(settings, self.credentials)
        """Coding agents by kind: `offline`, the project's AgentAPI agent and the Codegen API agent."""
        self._sites: Sites | None = None
        self.wake_webhooks: Callable[[], None] | None = None
        """Set by a worker running on this runtime: a local-forge event (a webhook delivery stored by this process)
        wakes its webhook loop instead of waiting for the next poll."""
        self.review = ReviewServices(
            self.db, settings, self.mirror, self.credentials, self.forges, make_agent=self.coding_agent
        )
        """What the AI review uses (its `make_agent` is the coding agent of the `agentapi` reviewer)."""

        self.debuggers = default_debuggers(self.llm).with_debuggers(
            agentapi=self._agentapi_debugger, codegen=self._codegen_debugger
        )
        """The recovery agents by `recovery.agent` name: the providers, the project's coding agent through
        AgentAPI (`agent.type`/`agent.command`, sandboxed, in a fresh checkout) and Codegen."""

    def _agentapi_debugger(self, project: Project) -> Debugger:
        from taskmaster.agents.agentapi.coding import AgentApiCodingAgent

        return AgentDebugger.checked(
            lambda: AgentApiCodingAgent.for_project(project, settings=self.settings, credentials=self.credentials)
        )

    def _codegen_debugger(self, project: Project) -> Debugger:
        from taskmaster.agents.codegen.agent import CodegenAgent

        return CodegenDebugger(CodegenAgent.from_settings(self.settings))

    def _local_forge(self, project: Project) -> Forge:
        return LocalForge(self.db, project.id, on_event=self._local_event)

    def coding_agent(self, project: Project) -> CodingAgent:
        """The project's AgentAPI coding agent (`agent.type`, `agent.command`, `agentapi_config`), sandboxed;
        AgentNotConfigured, before anything starts, when it cannot run here."""
        # Imported here: the terminal emulation behind it is needed only when an agent runs.
        from taskmaster.agents.agentapi.coding import AgentApiCodingAgent

        return AgentApiCodingAgent.for_project(project, settings=self.settings, credentials=self.credentials)

    def _local_event(self) -> None:
        if self.wake_webhooks is not None:
            self.wake_webhooks()

    @property
    def builtins(self) -> BuiltinRegistry:
        """The built-in steps, with the AI review in place of its not-configured stand-in."""
        return DEFAULT_BUILTINS.with_steps(AiReviewStep(self.review))

    @property
    def box(self) -> SecretBox:
        return self.credentials.box

    @property
    def sites(self) -> Sites:
        """Where pipelines run: the configured SSH instances, else this machine."""
        if self._sites is None:
            self._sites = remote_sites(self.settings) or LocalSites.of(self.settings, self.mirror)
        return self._sites

    def llm(self, provider: str, model: str | None = None) -> AbstractAsyncContextManager[LlmProvider | None]:
        """The configured LLM provider `provider` (None for "offline"), closed on exit."""
        return planning_model(self.settings, provider, model)

    def workflows(self) -> WorkflowRegistry:
        """The workflow kinds a worker of this process runs on this runtime's parts: `codegen`, and the review with
        this runtime's services (the worker adds `recovery`, which needs its own engine)."""
        codegen = CodegenWorkflow(
            self.settings, mirror=self.mirror, credentials=self.credentials, forges=self.forges, agents=self.agents
        )
        return default_workflows().with_kinds(codegen, ReviewWorkflow(self.review))

    def engine(
        self,
        *,
        worker_id: str,
        lease: Lease | None = None,
        on_change: OnChange | None = None,
        keep_workspace: bool = False,
        recovery: RecoveryHook | None = None,
    ) -> PipelineEngine:
        """A pipeline engine owning its pipelines as `worker_id`, on this runtime's database, mirrors and sites.

        `recovery`: what to do with a step that failed for its code (the worker requests a recovery run; without
        it such a step fails)."""
        return PipelineEngine(
            self.db,
            self.settings,
            self.mirror,
            worker_id=worker_id,
            lease=lease,
            on_change=on_change,
            keep_workspace=keep_workspace,
            sites=self.sites,
            credentials=self.credentials,
            recovery=recovery,
            builtins=self.builtins,
        )

    def recovery(self, *, worker_id: str, lease: Lease | None = None) -> RecoveryWorkflow:
        """The `recovery` workflow kind of this process: debug rounds with this runtime's debuggers, its trial
        pipelines run here by an engine owned by `worker_id` (no forge reports, no recovery of their own)."""
        trials = self.engine(worker_id=worker_id, lease=lease)
        services = RecoveryServices(
            settings=self.settings,
            mirror=self.mirror,
            credentials=self.credentials,
            forges=self.forges,
            debuggers=self.debuggers,
            run_trial=trials.run,
            trial_owner=worker_id,
            workspace_root=self.settings.workspace_root,
        )
        return RecoveryWorkflow(DebugRecovery(self.db, services))

    async def aclose(self) -> None:
        """Close the sites (SSH connections) and, when this runtime made it, the database."""
        sites, self._sites = self._sites, None
        if sites is not None:
            await sites.aclose()
        if self._owns_db:
            await self.db.dispose()
