"""`Runtime`: what one process builds once (database, credentials, mirror cache, sites, forge and LLM factories)
and the pipeline engine made from them; used by the app, the worker process and the CLI alike."""

from __future__ import annotations

from contextlib import AbstractAsyncContextManager

from taskmaster.agents.llm.base import LlmProvider
from taskmaster.agents.llm.factory import planning_model
from taskmaster.config import Settings
from taskmaster.db.session import Database
from taskmaster.pipelines.engine import OnChange, PipelineEngine
from taskmaster.pipelines.leases import Lease
from taskmaster.pipelines.recovery import RecoveryHook
from taskmaster.pipelines.sites import LocalSites, Sites, remote_sites
from taskmaster.projects.credentials import Credentials
from taskmaster.projects.forges import ForgeFactory
from taskmaster.secrets import SecretBox
from taskmaster.workflows.codegen.agents import AgentRegistry, default_agents
from taskmaster.workflows.codegen.run import CodegenWorkflow
from taskmaster.workflows.registry import WorkflowRegistry, default_workflows
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
        self.forges = ForgeFactory(settings, self.credentials)
        self.agents: AgentRegistry = default_agents()
        """Coding agents by kind (`offline` built in; the AgentAPI and Codegen agents are registered here)."""
        self._sites: Sites | None = None

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
        """The workflow kinds a worker of this process runs: the defaults and `codegen` on this runtime's parts."""
        codegen = CodegenWorkflow(
            self.settings, mirror=self.mirror, credentials=self.credentials, forges=self.forges, agents=self.agents
        )
        return default_workflows().with_kinds(codegen)

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
        )

    async def aclose(self) -> None:
        """Close the sites (SSH connections) and, when this runtime made it, the database."""
        sites, self._sites = self._sites, None
        if sites is not None:
            await sites.aclose()
        if self._owns_db:
            await self.db.dispose()
