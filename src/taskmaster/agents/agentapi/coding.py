"""`AgentApiCodingAgent`: a terminal coding agent run as an AgentAPI session in the job's checkout, inside the
sandbox with an egress proxy to its model API; it sends the prompt, waits until the screen is stable, answers
permission questions by the project's policy (refuses them), keeps the transcript and stops the session."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import httpx
import structlog

from taskmaster.agents.agentapi.client import AgentApiClient, AgentApiError
from taskmaster.agents.agentapi.conversation import SessionConfig
from taskmaster.agents.agentapi.launch import AGENT_PATH, LaunchPlan, plan
from taskmaster.agents.agentapi.sessions import SessionManager
from taskmaster.agents.base import (
    AgentKind,
    AgentNotConfigured,
    AgentResult,
    CodingAgent,
    CodingJob,
    StartedCallback,
)
from taskmaster.core.errors import TaskmasterError
from taskmaster.workspaces import interactive
from taskmaster.workspaces.errors import SandboxUnavailable
from taskmaster.workspaces.proxy import EgressProxy
from taskmaster.workspaces.sandbox import SANDBOX_GID, SANDBOX_UID, Limits

if TYPE_CHECKING:
    from taskmaster.config import Settings
    from taskmaster.db.models import Project
    from taskmaster.projects.credentials import Credentials

log = structlog.stdlib.get_logger("taskmaster.agents.agentapi.coding")

POLL_SECONDS = 0.1
STOP_SECONDS = 10.0


@dataclass(frozen=True, slots=True)
class _State:
    stable: bool
    alive: bool
    exit_code: int | None
    waiting_for: dict[str, Any] | None


class _Session(Protocol):
    """One running agent, in this process or on an external server."""

    id: str

    async def state(self) -> _State: ...

    async def messages(self) -> list[tuple[str, str]]: ...

    async def send(self, text: str) -> None: ...

    async def close(self) -> None: ...


class _LocalSession:
    def __init__(self, manager: SessionManager, session_id: str) -> None:
        self.manager = manager
        self.id = session_id

    async def state(self) -> _State:
        conversation = self.manager.get(self.id)
        waiting = conversation.waiting_for.as_json() if conversation.waiting_for else None
        return _State(conversation.status == "stable", conversation.alive, conversation.exit_code, waiting)

    async def messages(self) -> list[tuple[str, str]]:
        return [(m.role, m.content) for m in self.manager.get(self.id).messages]

    async def send(self, text: str) -> None:
        await self.manager.get(self.id).send_user(text)

    async def close(self) -> None:
        with contextlib.suppress(TaskmasterError):
            await self.manager.delete(self.id)


class _RemoteSession:
    def __init__(self, client: AgentApiClient, session_id: str) -> None:
        self.client = client
        self.id = session_id
        self.conversation = client.session(session_id)

    async def state(self) -> _State:
        data = await self.client.describe_session(self.id)
        waiting = data.get("waiting_for")
        code = data.get("exit_code")
        return _State(
            data.get("status") == "stable",
            bool(data.get("alive", True)),
            int(code) if isinstance(code, int) else None,
            waiting if isinstance(waiting, dict) else None,
        )

    async def messages(self) -> list[tuple[str, str]]:
        return [(m.role, m.content) for m in await self.conversation.messages()]

    async def send(self, text: str) -> None:
        await self.conversation.send(text)

    async def close(self) -> None:
        with contextlib.suppress(AgentApiError, httpx.TransportError):
            await self.client.delete_session(self.id)


class _Stop(Exception):
    def __init__(self, result: AgentResult) -> None:
        super().__init__(result.error)
        self.result = result


class AgentApiCodingAgent:
    """A `CodingAgent` (see `agents.base`) over AgentAPI: kind "agentapi", label `agentapi:<type>`.

    Made by `for_project` (AgentNotConfigured before anything starts: unknown type, command not installed, sandbox
    tools missing); `run` once; `aclose` closes what it owns (its own SessionManager, its client). Sessions run in
    `sessions` (a SessionManager of this process; a private one by default) or, with `client`, on an external
    multi-session server. With `sandboxed`, the agent runs under bubblewrap: its checkout writable at /workspace,
    a private home, nothing else of the host but the toolchain, no network but an `EgressProxy` that reaches the
    plan's endpoints only.
    """

    def __init__(
        self,
        launch: LaunchPlan,
        *,
        sandboxed: bool = True,
        limits: Limits | None = None,
        sessions: SessionManager | None = None,
        client: AgentApiClient | None = None,
        columns: int = 120,
        lines: int = 1000,
    ) -> None:
        self.launch = launch
        self.sandboxed = sandboxed
        self.limits = limits or interactive.DEFAULT_LIMITS
        self._own_sessions = sessions is None and client is None
        self._sessions = sessions
        self._client = client
        self.columns = columns
        self.lines = lines
        self.refused_egress: list[str] = []
        if sandboxed:
            try:
                interactive.check()
            except SandboxUnavailable as exc:
                raise AgentNotConfigured(f"the coding agent runs in the sandbox: {exc.detail}") from None

    @classmethod
    def for_project(
        cls,
        project: Project,
        *,
        settings: Settings,
        credentials: Credentials,
        agent_type: str | None = None,
        command: str | None = None,
        sessions: SessionManager | None = None,
    ) -> AgentApiCodingAgent:
        """The project's agent (`agent_type`/`command` override its settings for one run)."""
        launch = plan(project, secrets=credentials.agent_env(project), agent_type=agent_type, command=command)
        configured = settings.executor.limits
        limits = Limits(
            memory_bytes=configured.memory_bytes,
            max_processes=configured.max_processes,
            disk_bytes=configured.disk_bytes,
            tmp_bytes=configured.tmp_bytes or None,
            max_output_bytes=None,
        )
        client = AgentApiClient(settings=settings) if settings.agentapi.sessions == "external" else None
        return cls(
            launch,
            sandboxed=settings.executor.sandbox == "required",
            limits=limits,
            sessions=sessions,
            client=client,
        )

    @property
    def kind(self) -> AgentKind:
        return "agentapi"

    @property
    def label(self) -> str:
        return f"agentapi:{self.launch.agent_type}"

    async def aclose(self) -> None:
        if self._own_sessions and self._sessions is not None:
            sessions, self._sessions = self._sessions, None
            await sessions.close()
        if self._client is not None:
            client, self._client = self._client, None
            await client.aclose()

    async def run(self, job: CodingJob, *, on_started: StartedCallback | None = None) -> AgentResult:
        checkout = job.checkout.absolute()
        if not checkout.is_dir():
            return AgentResult(ok=False, failure="infra", error=f"the checkout {checkout} is not a directory")
        owner = checkout.stat()
        home = Path(tempfile.mkdtemp(prefix="taskmaster-agent-home-"))
        proxy: EgressProxy | None = None
        session: _Session | None = None
        transcript: list[tuple[str, str]] = []
        try:
            try:
                proxy, argv, env, cwd = await self._prepare(checkout, home)
            except (TaskmasterError, OSError) as exc:
                detail = getattr(exc, "detail", None) or str(exc)
                return AgentResult(ok=False, failure="infra", error=f"the agent's sandbox could not be made: {detail}")
            try:
                async with asyncio.timeout(job.timeout):
                    try:
                        session = await self._start(argv, env, cwd)
                    except (TaskmasterError, httpx.TransportError, OSError) as exc:
                        detail = getattr(exc, "detail", None) or str(exc)
                        return AgentResult(ok=False, failure="infra", error=f"the agent could not start: {detail}")
                    if on_started is not None:
                        await on_started(session.id)
                    result = await self._converse(session, job.prompt, transcript)
            except TimeoutError:
                result = AgentResult(
                    ok=False, failure="timeout", error=f"the agent did not finish within {job.timeout:g} s"
                )
            except _Stop as stop:
                result = stop.result
            except (TaskmasterError, httpx.TransportError) as exc:
                detail = getattr(exc, "detail", None) or str(exc)
                result = AgentResult(ok=False, failure="infra", error=f"the agent's session failed: {detail}")
            if session is not None:
                with contextlib.suppress(TaskmasterError, httpx.TransportError):
                    transcript[:] = await session.messages()
            return _with_transcript(result, transcript, proxy, session.id if session else None, self.launch.secrets)
        finally:
            # Shielded: a cancelled run still ends the agent's processes before CancelledError propagates.
            cleanup = asyncio.ensure_future(self._cleanup(session, proxy, checkout, owner, home))
            await asyncio.shield(cleanup)

    async def _prepare(self, checkout: Path, home: Path) -> tuple[EgressProxy | None, list[str], dict[str, str], str]:
        """The proxy (started), command line, environment and working directory of the agent's session."""
        inside = interactive.WORKSPACE if self.sandboxed else str(checkout)
        await asyncio.to_thread(_write_home, home, self.launch.home_files, inside)
        env = {"PATH": AGENT_PATH, "LANG": "C.UTF-8", **self.launch.env}
        if not self.sandboxed:
            env["HOME"] = str(home)
            return None, list(self.launch.argv), env, str(checkout)
        proxy = EgressProxy(self.launch.allow, owner=(SANDBOX_UID, SANDBOX_GID) if os.geteuid() == 0 else None)
        await proxy.start()
        try:
            await asyncio.to_thread(interactive.hand_over, checkout, home)
            env["HOME"] = interactive.HOME
            spec = interactive.InteractiveSpec(
                workspace=checkout,
                home=home,
                proxy_dir=proxy.directory,
                routes=tuple(sorted(e for e in self.launch.allow if e.loopback)),
                read_only=(*self.launch.read_only, *await asyncio.to_thread(_alternates, checkout)),
                limits=self.limits,
            )
            return proxy, interactive.wrap(spec, self.launch.argv, keep_env=env), env, "/"
        except BaseException:
            await proxy.close()
            raise

    async def _start(self, argv: list[str], env: dict[str, str], cwd: str) -> _Session:
        if self._client is not None:
            session_id = await self._client.create_session(
                argv,
                agent_type=self.launch.agent_type,
                cwd=cwd,
                env=env,
                term_width=self.columns,
                term_height=self.lines,
                prompt_regex=self.launch.prompt_regex,
            )
            return _RemoteSession(self._client, session_id)
        if self._sessions is None:
            # Only what the launch plan names reaches the agent: not this server's environment.
            self._sessions = SessionManager(base_env={})
        config = SessionConfig(
            argv=argv,
            agent_type=self.launch.agent_type,
            cwd=cwd,
            env=env,
            columns=self.columns,
            lines=self.lines,
            prompt_regex=self.launch.prompt_regex,
            stability_window=self.launch.stability_window,
        )
        return _LocalSession(self._sessions, await self._sessions.create(config))

    async def _converse(self, session: _Session, prompt: str, transcript: list[tuple[str, str]]) -> AgentResult:
        await self._settle(session, "before it was ready")
        await session.send(prompt)
        await self._settle(session, "before it finished")
        transcript[:] = await session.messages()
        return AgentResult(ok=True, summary=_last_reply(transcript))

    async def _settle(self, session: _Session, when: str) -> None:
        """Wait until the agent is stable; a question or an exit ends the run (`_Stop`)."""
        while True:
            state = await session.state()
            if not state.alive:
                raise _Stop(
                    AgentResult(ok=False, failure="failed", error=f"the agent exited (code {state.exit_code}) {when}")
                )
            if state.stable and state.waiting_for is not None:
                question = str(state.waiting_for.get("question") or "a permission question")
                raise _Stop(
                    AgentResult(
                        ok=False,
                        failure="refused",
                        error=f"the agent asked {question!r}, which the project's permission policy "
                        f"({self.launch.permissions}) does not allow; the agent was stopped",
                    )
                )
            if state.stable:
                return
            await asyncio.sleep(POLL_SECONDS)

    async def _cleanup(
        self, session: _Session | None, proxy: EgressProxy | None, checkout: Path, owner: os.stat_result, home: Path
    ) -> None:
        if session is not None:
            try:
                await asyncio.wait_for(session.close(), STOP_SECONDS)
            except Exception:
                log.exception("could not stop an agent session", session_id=session.id)
        if proxy is not None:
            self.refused_egress += proxy.refused
            await proxy.close()
        if self.sandboxed:
            with contextlib.suppress(OSError):
                await asyncio.to_thread(interactive.take_back, checkout, owner.st_uid, owner.st_gid)
        await asyncio.to_thread(shutil.rmtree, home, True)


def _alternates(checkout: Path) -> list[Path]:
    """The object directories the checkout borrows (a mirror's, through `objects/info/alternates`): git in the
    sandbox reads them, so they are shown read-only."""
    try:
        lines = (checkout / ".git" / "objects" / "info" / "alternates").read_text().splitlines()
    except (OSError, UnicodeDecodeError):
        return []
    return [Path(line) for line in lines if line.startswith("/") and Path(line).is_dir()]


def _write_home(home: Path, files: dict[str, str] | Any, workspace: str) -> None:
    for relative, content in dict(files).items():
        target = home / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(str(content).replace("{workspace}", workspace))


def _with_transcript(
    result: AgentResult,
    messages: list[tuple[str, str]],
    proxy: EgressProxy | None,
    session_id: str | None,
    secrets: frozenset[str],
) -> AgentResult:
    lines = [f"{role}: {content.strip()}" for role, content in messages if content.strip()]
    if proxy is not None and proxy.refused:
        lines.append(f"taskmaster: network access refused to {', '.join(sorted(set(proxy.refused)))}")
    summary = result.summary or _last_reply(messages)
    return AgentResult(
        ok=result.ok,
        summary=_mask(summary, secrets),
        transcript=_mask("\n\n".join(lines), secrets),
        failure=result.failure,
        error=_mask(result.error, secrets) if result.error is not None else None,
        external_id=session_id,
    )


def _last_reply(messages: list[tuple[str, str]]) -> str:
    """The agent's last words after the prompt (not its start-up screen when it said nothing)."""
    users = [index for index, (role, _) in enumerate(messages) if role == "user"]
    after = messages[users[-1] + 1 :] if users else []
    replies = [content.strip() for role, content in after if role == "agent" and content.strip()]
    return replies[-1] if replies else ""


def _mask(text: str, secrets: frozenset[str]) -> str:
    """`text` with every secret value the agent was given replaced: an agent may print its own key."""
    for secret in sorted(secrets, key=len, reverse=True):
        text = text.replace(secret, "***")
    return text


def _conforms(agent: AgentApiCodingAgent) -> CodingAgent:
    return agent  # mypy checks that the agent satisfies the protocol
