"""The coding agent a run uses: a registry of makers by kind, fed with the project's settings (`codegen.agent`,
`agent.type`, `agent.command`) and the request's overrides. `offline` is built in; the runtime adds the others."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, get_args

from taskmaster.agents.base import AgentKind, AgentNotConfigured, CodingAgent
from taskmaster.agents.offline import OfflineCodingAgent
from taskmaster.config import Settings
from taskmaster.db.models import Project
from taskmaster.projects import settings as project_settings
from taskmaster.projects.credentials import Credentials
from taskmaster.projects.settings import AgentType

KINDS: tuple[str, ...] = get_args(AgentKind)


@dataclass(frozen=True, slots=True)
class AgentChoice:
    """Which agent a run uses, decided when the run is requested and kept in its parameters."""

    kind: AgentKind
    type: AgentType
    command: str | None

    def as_params(self) -> dict[str, Any]:
        return {"agent": self.kind, "agent_type": self.type, "agent_command": self.command}

    @classmethod
    def from_params(cls, params: Mapping[str, Any]) -> AgentChoice:
        kind = str(params.get("agent") or "offline")
        if kind not in KINDS:
            raise AgentNotConfigured(f"unknown coding agent {kind!r}; known: {', '.join(KINDS)}")
        return cls(kind, params.get("agent_type") or "claude", params.get("agent_command"))  # type: ignore[arg-type]


AgentMaker = Callable[[Project, AgentChoice], CodingAgent]
"""Makes an agent for one run of a project, without starting anything; `AgentNotConfigured` when it cannot work."""


def choose(
    project: Project, *, agent: str | None = None, agent_type: str | None = None, agent_command: str | None = None
) -> AgentChoice:
    """The request's overrides over the project's settings; `AgentNotConfigured` naming an unknown kind."""
    settings = project_settings.load(project.settings)
    kind = agent or settings.codegen.agent
    if kind not in KINDS:
        raise AgentNotConfigured(f"unknown coding agent {kind!r}; known: {', '.join(KINDS)}")
    chosen_type = agent_type or settings.agent.type
    if chosen_type not in get_args(AgentType):
        raise AgentNotConfigured(f"unknown agent type {chosen_type!r}; known: {', '.join(get_args(AgentType))}")
    return AgentChoice(kind, chosen_type, agent_command or settings.agent.command)  # type: ignore[arg-type]


class AgentRegistry:
    """Agent makers by kind. `make` raises `AgentNotConfigured` naming a kind nobody registered here."""

    def __init__(self, makers: Mapping[str, AgentMaker] | None = None) -> None:
        self._makers: dict[str, AgentMaker] = dict(makers or {})

    def register(self, kind: AgentKind, maker: AgentMaker) -> None:
        self._makers[kind] = maker

    def kinds(self) -> list[str]:
        return sorted(self._makers)

    def check(self, project: Project, choice: AgentChoice) -> None:
        """Raise `AgentNotConfigured` when `choice` cannot be made here (made and closed at once, nothing started)."""
        if choice.kind not in self._makers:
            raise AgentNotConfigured(
                f"the {choice.kind!r} coding agent is not available in this Taskmaster "
                f"(available: {', '.join(self.kinds()) or 'none'})"
            )
        # Making an agent starts nothing and holds nothing that needs closing, but it checks what the agent needs
        # (its command installed, its key or sandbox present), so a run is refused before it is requested.
        self._makers[choice.kind](project, choice)

    def make(self, project: Project, choice: AgentChoice) -> CodingAgent:
        self.check(project, choice)
        return self._makers[choice.kind](project, choice)


def default_agents() -> AgentRegistry:
    """The agent that needs nothing: `offline` (tests add their own to it)."""
    return AgentRegistry({"offline": lambda project, choice: OfflineCodingAgent()})


def coding_agents(settings: Settings, credentials: Credentials) -> AgentRegistry:
    """Every coding agent a process can make: `offline`, the project's AgentAPI agent (sandboxed, its secrets from
    `credentials`) and the Codegen API agent (`settings.codegen`). Their modules load on first use."""
    registry = default_agents()

    def agentapi(project: Project, choice: AgentChoice) -> CodingAgent:
        from taskmaster.agents.agentapi.coding import AgentApiCodingAgent

        return AgentApiCodingAgent.for_project(
            project, settings=settings, credentials=credentials, agent_type=choice.type, command=choice.command
        )

    def codegen(project: Project, choice: AgentChoice) -> CodingAgent:
        from taskmaster.agents.codegen.agent import CodegenAgent

        return CodegenAgent.from_settings(settings)

    registry.register("agentapi", agentapi)
    registry.register("codegen", codegen)
    return registry
