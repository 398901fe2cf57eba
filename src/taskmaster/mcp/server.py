"""The MCP server: one tool per task-manager operation, each call one transaction on the configured database.

Tools mirror `/api/projects/{id}/tasks…` in operations and JSON field names. Reads answer with summaries unless
`details=true`; domain errors come back as tool errors whose text is the error's one-line detail.
"""

from __future__ import annotations

import asyncio
import importlib
import inspect
import json
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from datetime import timedelta
from typing import TYPE_CHECKING, Annotated, Any, Literal, TypeVar

from mcp.server.auth.settings import AuthSettings
from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ToolError, UnexpectedToolError
from mcp.types import CallToolResult, InputRequiredResult, TextContent, ToolAnnotations
from pydantic import Field, ValidationError

import taskmaster
from taskmaster.auth.schemas import Principal, Role
from taskmaster.config import Settings
from taskmaster.core.errors import InvalidInput, TaskmasterError
from taskmaster.mcp import auth
from taskmaster.mcp.handshake import INSTRUCTIONS, SERVER_NAME
from taskmaster.mcp.schemas import (
    PROJECT_SUMMARY_FIELDS,
    CodegenRunList,
    ComplexityReport,
    GraphReport,
    PrdParsed,
    ProjectList,
    TaskList,
    TaskPage,
    TaskPick,
    TaskView,
)
from taskmaster.tasks.schemas import TaskCreate, TaskStatus, TaskType, TaskUpdate
from taskmaster.workflows.codegen.schemas import CodegenRequest, CodegenRunDetail, CodegenStarted

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncSession

    from taskmaster.agents.llm import planning_model
    from taskmaster.db.models import Project, Task
    from taskmaster.db.session import Database
    from taskmaster.projects import service as projects
    from taskmaster.tasks import refine, service
    from taskmaster.tasks.prd import parse_into_project
    from taskmaster.workflows.codegen import service as codegen
    from taskmaster.workflows.codegen.agents import AgentRegistry
else:
    # `initialize` is answered before any of these is needed: the services (SQLAlchemy, the planners and their
    # LLM SDKs) load at the first tool call, so a client's start-up does not wait for them.

    class _LazyModule:
        def __init__(self, name: str) -> None:
            self._name = name

        def __getattr__(self, attribute: str) -> Any:
            return getattr(importlib.import_module(self._name), attribute)

    def _lazy_function(module: str, name: str) -> Any:
        def call(*args: Any, **kwargs: Any) -> Any:
            return getattr(importlib.import_module(module), name)(*args, **kwargs)

        return call

    projects = _LazyModule("taskmaster.projects.service")
    service = _LazyModule("taskmaster.tasks.service")
    refine = _LazyModule("taskmaster.tasks.refine")
    codegen = _LazyModule("taskmaster.workflows.codegen.service")
    planning_model = _lazy_function("taskmaster.agents.llm", "planning_model")
    parse_into_project = _lazy_function("taskmaster.tasks.prd", "parse_into_project")

T = TypeVar("T")

LOCAL_ACTOR = "mcp"
"""Who the audit log names for calls over stdio, where there is no credential."""

READ = ToolAnnotations(read_only_hint=True, open_world_hint=False)
ADD = ToolAnnotations(read_only_hint=False, destructive_hint=False, idempotent_hint=False, open_world_hint=False)
EDIT = ToolAnnotations(read_only_hint=False, destructive_hint=False, idempotent_hint=True, open_world_hint=False)
REMOVE = ToolAnnotations(read_only_hint=False, destructive_hint=True, idempotent_hint=False, open_world_hint=False)

ProjectRef = Annotated[
    str | None, Field(description="Project name or id; may be left out when exactly one project exists.")
]
TaskRef = Annotated[int | str, Field(description="A task's number in the project (7, '7' or '#7') or its id.")]
Details = Annotated[
    bool, Field(description="Every field (description, details, test_strategy, timestamps…) instead of a summary.")
]
TypeFilter = Annotated[TaskType | None, Field(description="Only tasks of this type.")]
ReadyAssignee = Annotated[str | None, Field(description="Only unassigned tasks and tasks assigned to this name.")]
Limit = Annotated[int, Field(ge=1, le=1000, description="At most this many tasks.")]
Text = Annotated[str | None, Field(description="Pass an empty string to clear it.")]
Provider = Annotated[
    Literal["offline", "anthropic", "openai", "ollama"],
    Field(description="Who plans: the deterministic offline parser, or an LLM provider configured on the server."),
]
Model = Annotated[str | None, Field(description="The provider's model; its configured default when left out.")]
RunRef = Annotated[str, Field(description="A codegen run's id, or a unique prefix of it (at least 4 hex digits).")]


def build_server(
    db: Database | None,
    settings: Settings,
    *,
    http_url: str | None = None,
    prepare: Callable[[], Awaitable[Database | None]] | None = None,
    agents: AgentRegistry | None = None,
) -> MCPServer[Any]:
    """The MCP server over `db`. With `http_url` (the server's own URL), HTTP callers must present a Taskmaster
    API token or JWT, and each tool checks the caller's role (viewer to read, developer to change) and project.
    `prepare` runs once, before the first tool call touches the database: it may open it (when `db` is None) and
    migrate it, so that `initialize` is answered without loading SQLAlchemy or Alembic. `agents`: the coding agents
    `generate_code` may ask for (default: every agent a process can make, built at the first call)."""
    registry: list[AgentRegistry] = [agents] if agents is not None else []

    def coding_agents() -> AgentRegistry:
        if not registry:
            from taskmaster.projects.credentials import Credentials
            from taskmaster.workflows.codegen.agents import coding_agents as every_agent

            registry.append(every_agent(settings, Credentials.from_settings(settings)))
        return registry[0]

    if http_url is not None:
        server: MCPServer[Any] = _Server(
            SERVER_NAME,
            version=taskmaster.__version__,
            instructions=INSTRUCTIONS,
            # Taskmaster issues its own tokens; without a resource URL no OAuth discovery document is published.
            auth=AuthSettings(issuer_url=http_url, resource_server_url=None),
            token_verifier=auth.ApiTokenVerifier(_required(db), settings),
        )
    else:
        server = _Server(SERVER_NAME, version=taskmaster.__version__, instructions=INSTRUCTIONS)
    door = _Door(db, prepare)

    @server.tool(annotations=READ)
    async def list_projects(details: Details = False) -> Annotated[CallToolResult, ProjectList]:
        """List projects by name (summaries: id, name, repository, forge, default_branch, description)."""

        async def go(session: AsyncSession, caller: Principal | None) -> dict[str, Any]:
            found = await projects.list_projects(session)
            if caller is not None and caller.project_id is not None:
                found = [p for p in found if p.id == caller.project_id]
            rendered = [projects.to_out(p).model_dump(mode="json") for p in found]
            if not details:
                rendered = [{key: item[key] for key in PROJECT_SUMMARY_FIELDS} for item in rendered]
            return {"items": rendered}

        return _result(await door.session(Role.viewer, go))

    @server.tool(annotations=READ)
    async def list_tasks(
        project: ProjectRef = None,
        status: Annotated[TaskStatus | None, Field(description="Only tasks with this status.")] = None,
        type: TypeFilter = None,
        assignee: Annotated[str | None, Field(description="Only tasks assigned to this name.")] = None,
        top_level: Annotated[bool, Field(description="Only tasks that are not subtasks.")] = False,
        details: Details = False,
        limit: Limit = 50,
        offset: Annotated[int, Field(ge=0, description="Skip this many (for the next page).")] = 0,
    ) -> Annotated[CallToolResult, TaskPage]:
        """List a project's tasks in number order, one page at a time; `total` counts every match."""

        async def go(session: AsyncSession, found: Project, _: str) -> dict[str, Any]:
            where = service.TaskFilter(status=status, type=type, assignee=assignee, top_level=top_level)
            tasks, total = await service.list_tasks(session, found.id, where=where, limit=limit, offset=offset)
            return {"items": _tasks(tasks, details), "total": total, "limit": limit, "offset": offset}

        return _result(await door.in_project(project, Role.viewer, go))

    @server.tool(annotations=READ)
    async def get_task(
        task: TaskRef, project: ProjectRef = None, details: Details = False
    ) -> Annotated[CallToolResult, TaskView]:
        """Show one task: its summary, or with details=true every field."""

        async def go(session: AsyncSession, found: Project, _: str) -> dict[str, Any]:
            return _task(await service.get_task(session, found.id, _ref(task)), details)

        return _result(await door.in_project(project, Role.viewer, go))

    @server.tool(annotations=READ)
    async def next_task(
        project: ProjectRef = None, type: TypeFilter = None, assignee: ReadyAssignee = None, details: Details = False
    ) -> Annotated[CallToolResult, TaskPick]:
        """The task to work on next without taking it: the best ready task by priority, then how much work it
        unblocks, then complexity, then age. `task` is null when nothing is ready."""

        async def go(session: AsyncSession, found: Project, _: str) -> dict[str, Any]:
            chosen = await service.next_task(session, found, where=service.TaskFilter(type=type, assignee=assignee))
            return _pick(chosen, details)

        return _result(await door.in_project(project, Role.viewer, go))

    @server.tool(annotations=READ)
    async def ready_tasks(
        project: ProjectRef = None,
        type: TypeFilter = None,
        assignee: ReadyAssignee = None,
        details: Details = False,
        limit: Limit = 50,
    ) -> Annotated[CallToolResult, TaskList]:
        """Every task that could start now (pending, dependencies done, parent not blocked), best first: for
        agents working in parallel."""

        async def go(session: AsyncSession, found: Project, _: str) -> dict[str, Any]:
            where = service.TaskFilter(type=type, assignee=assignee)
            return {"items": _tasks(await service.ready_tasks(session, found, where=where, limit=limit), details)}

        return _result(await door.in_project(project, Role.viewer, go))

    @server.tool(annotations=ADD)
    async def claim_task(
        assignee: Annotated[str, Field(min_length=1, max_length=200, description="Who takes it (agent or person).")],
        project: ProjectRef = None,
        lease_seconds: Annotated[
            int, Field(ge=10, le=7 * 24 * 3600, description="Back to pending unless finished by then.")
        ] = 1800,
        type: TypeFilter = None,
        details: Details = False,
    ) -> Annotated[CallToolResult, TaskPick]:
        """Atomically take the next ready task: it becomes in_progress, assigned, with a lease. Agents claiming at
        the same time get different tasks. `task` is null when nothing is ready."""
        async with _tool_errors():
            caller = auth.require(Role.developer)
            ref = await door.project_ref(project, caller)
            async with door.db.transaction() as session:
                claimed = await service.claim_task(
                    session,
                    ref,
                    assignee=assignee,
                    lease=timedelta(seconds=lease_seconds),
                    where=service.TaskFilter(type=type),
                )
                return _result(_pick(claimed, details))

    @server.tool(annotations=ADD)
    async def add_task(
        title: Annotated[str, Field(min_length=1, max_length=500)],
        project: ProjectRef = None,
        description: Annotated[str | None, Field(description="A sentence or two.")] = None,
        details: Annotated[str | None, Field(description="How to do it.")] = None,
        test_strategy: Annotated[str | None, Field(description="How to verify it.")] = None,
        type: Annotated[TaskType, Field(description="feature, bug, chore, test or docs.")] = "feature",
        status: TaskStatus = "pending",
        priority: Annotated[int, Field(ge=1, le=5, description="1 (highest) … 5.")] = 3,
        complexity: Annotated[int | None, Field(ge=1, le=10, description="1 … 10.")] = None,
        dependencies: Annotated[
            list[int | str] | None, Field(description="Tasks (numbers or ids) that must be done first.")
        ] = None,
        parent_task_id: Annotated[int | str | None, Field(description="Make it a subtask of this task.")] = None,
        assignee: Annotated[str | None, Field(max_length=200)] = None,
    ) -> Annotated[CallToolResult, TaskView]:
        """Add a task; returns its summary (with its new number and id). Cycle-forming dependencies are refused."""

        async def go(session: AsyncSession, found: Project, actor: str) -> dict[str, Any]:
            parent = await service.get_task(session, found.id, _ref(parent_task_id)) if parent_task_id else None
            needs = [(await service.get_task(session, found.id, _ref(ref))).id for ref in dependencies or []]
            spec = TaskCreate(
                title=title, description=description, details=details, test_strategy=test_strategy, type=type,
                status=status, priority=priority, complexity=complexity, dependencies=needs,
                parent_task_id=parent.id if parent else None, assignee=assignee,
            )  # fmt: skip
            return _task(await service.create_task(session, project=found, spec=spec, actor=actor), False)

        return _result(await door.in_project(project, Role.developer, go, lock=True))

    @server.tool(annotations=EDIT)
    async def update_task(
        task: TaskRef,
        project: ProjectRef = None,
        title: Annotated[str | None, Field(min_length=1, max_length=500)] = None,
        description: Text = None,
        details: Text = None,
        test_strategy: Text = None,
        type: TypeFilter = None,
        priority: Annotated[int | None, Field(ge=1, le=5, description="1 (highest) … 5.")] = None,
        complexity: Annotated[int | None, Field(ge=1, le=10)] = None,
        assignee: Text = None,
    ) -> Annotated[CallToolResult, TaskView]:
        """Change the fields given (others stay as they are); returns the task's summary. Status changes go
        through set_task_status, dependencies through add_dependency / remove_dependency."""
        given: dict[str, Any] = {
            "title": title, "description": description, "details": details, "test_strategy": test_strategy,
            "type": type, "priority": priority, "complexity": complexity, "assignee": assignee,
        }  # fmt: skip
        # An empty string is how a caller clears a text field: a null cannot be told from an absent argument.
        changes = {key: (None if value == "" else value) for key, value in given.items() if value is not None}

        async def go(session: AsyncSession, found: Project, actor: str) -> dict[str, Any]:
            if not changes:
                raise InvalidInput("nothing to change: pass at least one field")
            target = await service.get_task(session, found.id, _ref(task))
            await service.update_task(session, target, TaskUpdate.model_validate(changes), actor=actor)
            return _task(target, False)

        return _result(await door.in_project(project, Role.developer, go, lock=True))

    @server.tool(annotations=EDIT)
    async def set_task_status(
        task: TaskRef,
        status: TaskStatus,
        project: ProjectRef = None,
        cascade: Annotated[bool, Field(description="With done: mark open subtasks (any depth) done too.")] = False,
    ) -> Annotated[CallToolResult, TaskList]:
        """Change a task's status; returns every task that changed. A parent cannot be done while a subtask is
        open unless cascade=true; done records completed_at; back to pending releases the claim."""

        async def go(session: AsyncSession, found: Project, actor: str) -> dict[str, Any]:
            target = await service.get_task(session, found.id, _ref(task))
            changed = await service.set_status(session, target, status, cascade=cascade, actor=actor)
            return {"items": _tasks(changed, False)}

        return _result(await door.in_project(project, Role.developer, go, lock=True))

    @server.tool(annotations=ADD)
    async def add_dependency(
        task: TaskRef,
        depends_on: Annotated[int | str, Field(description="The task (number or id) that must be done first.")],
        project: ProjectRef = None,
    ) -> Annotated[CallToolResult, TaskView]:
        """Make `task` depend on `depends_on`. Self, duplicate and cycle-forming edges are refused (the error names
        the cycle). Returns the task's summary."""

        async def go(session: AsyncSession, found: Project, actor: str) -> dict[str, Any]:
            target = await service.get_task(session, found.id, _ref(task))
            needed = await service.get_task(session, found.id, _ref(depends_on))
            await service.add_dependency(session, target, needed, actor=actor)
            return _task(target, False)

        return _result(await door.in_project(project, Role.developer, go, lock=True))

    @server.tool(annotations=REMOVE)
    async def remove_dependency(
        task: TaskRef,
        depends_on: Annotated[int | str, Field(description="The task (number or id) it should no longer wait for.")],
        project: ProjectRef = None,
    ) -> Annotated[CallToolResult, TaskView]:
        """Drop the edge `task` depends on `depends_on`; returns the task's summary."""

        async def go(session: AsyncSession, found: Project, actor: str) -> dict[str, Any]:
            target = await service.get_task(session, found.id, _ref(task))
            other = await service.get_task(session, found.id, _ref(depends_on))
            await service.remove_dependency(session, target, other, actor=actor)
            return _task(target, False)

        return _result(await door.in_project(project, Role.developer, go, lock=True))

    @server.tool(annotations=READ)
    async def validate_dependencies(project: ProjectRef = None) -> Annotated[CallToolResult, GraphReport]:
        """Find self, missing, duplicate and circular dependencies at every level; `ok` is false if any is found."""

        async def go(session: AsyncSession, found: Project, _: str) -> dict[str, Any]:
            return _report(await service.validate_graph(session, found))

        return _result(await door.in_project(project, Role.viewer, go))

    @server.tool(annotations=REMOVE)
    async def fix_dependencies(project: ProjectRef = None) -> Annotated[CallToolResult, GraphReport]:
        """Repair what validate_dependencies finds, removing the fewest edges that break each cycle; `findings`
        lists every edge removed."""

        async def go(session: AsyncSession, found: Project, actor: str) -> dict[str, Any]:
            return _report(await service.fix_graph(session, found, actor=actor))

        return _result(await door.in_project(project, Role.developer, go, lock=True))

    @server.tool(annotations=REMOVE)
    async def delete_task(
        task: TaskRef,
        project: ProjectRef = None,
        force: Annotated[bool, Field(description="Remove it even though other tasks depend on it.")] = False,
    ) -> Annotated[CallToolResult, TaskView]:
        """Remove a task and its subtasks; refused while other tasks depend on it unless force=true. Returns the
        removed task's summary."""

        async def go(session: AsyncSession, found: Project, actor: str) -> dict[str, Any]:
            target = await service.get_task(session, found.id, _ref(task))
            removed = _task(target, False)
            await service.delete_task(session, target, force=force, actor=actor)
            return removed

        return _result(await door.in_project(project, Role.developer, go, lock=True))

    @server.tool(annotations=ADD)
    async def parse_prd(
        text: Annotated[str, Field(min_length=1, description="The PRD itself: Markdown or plain text.")],
        project: ProjectRef = None,
        provider: Provider = "offline",
        model: Model = None,
        num_tasks: Annotated[int | None, Field(ge=1, le=500, description="Aim for about this many tasks.")] = None,
        replace: Annotated[bool, Field(description="Delete the project's tasks first instead of appending.")] = False,
        append: Annotated[
            bool, Field(description="Add the tasks even if the project already holds this PRD (same source or text).")
        ] = False,
        source: Annotated[str | None, Field(description="The document's name, recorded with each task.")] = None,
    ) -> Annotated[CallToolResult, PrdParsed]:
        """Turn a product requirements document into tasks with dependencies and priorities, stored in the
        project (offline parser by default, or an LLM provider); returns the new tasks as summaries."""
        async with _tool_errors():
            caller = auth.require(Role.developer)
            ref = await door.project_ref(project, caller)
            async with planning_model(settings, provider, model) as llm:
                result = await parse_into_project(
                    door.db, ref, text, model=llm, num_tasks=num_tasks, replace=replace, append=append, source=source,
                    actor=caller.subject if caller else LOCAL_ACTOR, prices=settings.costs.prices,
                )  # fmt: skip
            first, last = result.imported.numbers
            async with door.db.autocommit_session() as session:
                tasks, _ = await service.list_tasks(
                    session, result.project_id, limit=result.imported.created, offset=first - 1
                )
        return _result(
            {
                "created": result.imported.created,
                "first_number": first,
                "last_number": last,
                "replaced": result.imported.replaced,
                "notes": [issue.message for issue in result.issues],
                "items": _tasks(tasks, False),
            }
        )

    @server.tool(annotations=ADD)
    async def expand_task(
        task: TaskRef,
        project: ProjectRef = None,
        num: Annotated[int, Field(ge=1, le=20, description="At most this many subtasks.")] = 5,
        provider: Provider = "offline",
        model: Model = None,
    ) -> Annotated[CallToolResult, TaskList]:
        """Break a task into subtasks (from its details offline, or by an LLM); returns the new subtasks."""
        async with _tool_errors():
            caller = auth.require(Role.developer)
            ref = await door.project_ref(project, caller)
            async with planning_model(settings, provider, model) as llm:
                created = await refine.expand_task(
                    door.db,
                    ref,
                    str(_ref(task)),
                    model=llm,
                    num=num,
                    actor=caller.subject if caller else LOCAL_ACTOR,
                    prices=settings.costs.prices,
                )
        return _result({"items": _tasks(created, False)})

    @server.tool(annotations=EDIT)
    async def analyze_complexity(
        project: ProjectRef = None, provider: Provider = "offline", model: Model = None
    ) -> Annotated[CallToolResult, ComplexityReport]:
        """Score every open task's complexity 1-10 and store each score with its reasoning."""
        async with _tool_errors():
            caller = auth.require(Role.developer)
            ref = await door.project_ref(project, caller)
            async with planning_model(settings, provider, model) as llm:
                scores = await refine.analyze_complexity(
                    door.db, ref, model=llm, actor=caller.subject if caller else LOCAL_ACTOR
                )
        return _result({"items": [vars(score) for score in scores]})

    @server.tool(annotations=ADD)
    async def generate_code(
        project: ProjectRef = None,
        tasks: Annotated[
            list[int] | None, Field(max_length=100, description="Task numbers to implement (each must be ready).")
        ] = None,
        next: Annotated[
            int | None, Field(ge=1, le=100, description="Take this many of the next ready tasks instead.")
        ] = None,
        agent: Annotated[
            Literal["offline", "agentapi", "codegen"] | None,
            Field(description="The coding agent; default: the project's (setting agent.type / agent.command)."),
        ] = None,
        agent_type: Annotated[
            Literal["claude", "codex", "gemini", "aider", "goose", "custom"] | None,
            Field(description="For agentapi: which agent CLI; default: the project's."),
        ] = None,
        loop: Annotated[bool, Field(description="When a PR merges, go on with the tasks it made ready.")] = False,
    ) -> Annotated[CallToolResult, CodegenStarted]:
        """Start code generation: one run per task (the named ready tasks, or the next ready one(s)), each making a
        branch and a pull request with a coding agent. Returns the runs at once (a task's live run is returned,
        not doubled); a worker (`taskmaster serve` or `taskmaster worker`) runs them: follow them with
        get_codegen_run. A task that is not ready or an agent that cannot run here is an error naming it."""
        if tasks and next is not None:
            raise ToolError("give tasks or next, not both")
        request = CodegenRequest(tasks=tasks or [], next=next, agent=agent, agent_type=agent_type, loop=loop)

        async def go(session: AsyncSession, found: Project, actor: str) -> dict[str, Any]:
            started = await codegen.start(session, found.id, request, actor=actor, agents=coding_agents())
            return started.model_dump(mode="json")

        return _result(await door.in_project(project, Role.developer, go))

    @server.tool(annotations=READ)
    async def list_codegen_runs(
        project: Annotated[str | None, Field(description="Only this project (name or id); default: all.")] = None,
        status: Annotated[
            Literal["pending", "running", "succeeded", "failed", "canceled"] | None, Field(description="Only these.")
        ] = None,
        limit: Annotated[int, Field(ge=1, le=500, description="At most this many runs.")] = 50,
    ) -> Annotated[CallToolResult, CodegenRunList]:
        """Codegen runs, newest first: task, status, stage, agent, branch and pull request of each."""

        async def go(session: AsyncSession, caller: Principal | None) -> dict[str, Any]:
            project_id = caller.project_id if caller is not None else None
            if project is not None:
                found = await projects.get_project(session, project)
                auth.check_project(caller, found.id)
                project_id = found.id
            runs = await codegen.list_runs(session, project_id=project_id, status=status, limit=limit)
            return {"items": [run.model_dump(mode="json") for run in runs]}

        return _result(await door.session(Role.viewer, go))

    @server.tool(annotations=READ)
    async def get_codegen_run(run: RunRef) -> Annotated[CallToolResult, CodegenRunDetail]:
        """One codegen run: its stages with times, agent, branch, pull request, template version, tokens, cost,
        the agent's summary and transcript."""

        async def go(session: AsyncSession, caller: Principal | None) -> dict[str, Any]:
            from taskmaster.core.errors import NotFound
            from taskmaster.db.models import WorkflowRun
            from taskmaster.db.prefix import resolve_id

            limited = caller.project_id if caller is not None else None
            where = WorkflowRun.kind == "codegen"
            if limited is not None:  # another project's run: as if there were none
                where = where & (WorkflowRun.project_id == limited)
            try:
                run_id = await resolve_id(session, WorkflowRun.id, run, "codegen run", where=where)
            except NotFound:
                raise NotFound(f"codegen run {run} does not exist") from None
            await _visible_run(session, run_id, limited, run)
            return (await codegen.get_run(session, run_id)).model_dump(mode="json")

        return _result(await door.session(Role.viewer, go))

    return server


class _Server(MCPServer[Any]):
    """The SDK's server, with arguments that fail the input schema reported in one line, like domain errors;
    advertising only the capabilities it has (tools), and tool descriptions without the docstrings' indentation."""

    # The SDK answers these (with empty lists) and so advertises them; a client then offers its model resource tools
    # for nothing. Without the handlers the capabilities say tools only, and such a request is "method not found".
    _NOT_PROVIDED = ("resources/list", "resources/read", "resources/templates/list", "prompts/list", "prompts/get")

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, subscriptions=False, **kwargs)
        for method in self._NOT_PROVIDED:
            self._lowlevel_server._request_handlers.pop(method, None)

    def tool(  # type: ignore[override]
        self, name: str | None = None, *, annotations: ToolAnnotations | None = None
    ) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
        def register(fn: Callable[..., Any]) -> Callable[..., Any]:
            description = inspect.cleandoc(fn.__doc__ or "")
            return super(_Server, self).tool(name, description=description, annotations=annotations)(fn)

        return register

    async def call_tool(
        self, name: str, arguments: dict[str, Any], context: Context[Any, Any] | None = None
    ) -> CallToolResult | InputRequiredResult:
        try:
            return await super().call_tool(name, arguments, context)
        except ToolError as exc:
            cause = exc.__cause__
            if isinstance(exc, UnexpectedToolError) or not isinstance(cause, ValidationError):
                raise
            # Chained to the validation error, so that the SDK still logs it as rejected arguments.
            raise ToolError(f"Error executing tool {name}: invalid arguments: {_one_line(cause)}") from cause


class _Door:
    """What every tool shares: roles, the project a call is about, and one transaction per call."""

    def __init__(self, db: Database | None, prepare: Callable[[], Awaitable[Database | None]] | None = None) -> None:
        self._db = db
        self._prepare = prepare
        self._prepared = asyncio.Lock()

    @property
    def db(self) -> Database:
        return _required(self._db)

    async def ready(self) -> None:
        """Run `prepare` once (callers arriving meanwhile wait for it); a failure is tried again next call."""
        if self._prepare is None:
            return
        async with self._prepared:
            if self._prepare is not None:
                self._db = await self._prepare() or self._db
                self._prepare = None

    async def session(self, role: Role, action: Callable[[AsyncSession, Principal | None], Awaitable[T]]) -> T:
        """Run `action` in one transaction, for a caller holding `role`."""
        async with _tool_errors():
            caller = auth.require(role)
            await self.ready()
            async with self.db.transaction() as session:
                return await action(session, caller)

    async def in_project(
        self,
        project: str | None,
        role: Role,
        action: Callable[[AsyncSession, Project, str], Awaitable[T]],
        *,
        lock: bool = False,
    ) -> T:
        """Run `action(session, project, actor)` in one transaction; with `lock`, taking the project's write lock as
        the transaction's first statement (see `tasks.service`: a write must not follow a read on SQLite)."""
        async with _tool_errors():
            caller = auth.require(role)
            await self.ready()
            ref = await self.project_ref(project, caller)
            async with self.db.transaction() as session:
                found = await (service.lock_project(session, ref) if lock else service.get_project(session, ref))
                return await action(session, found, caller.subject if caller else LOCAL_ACTOR)

    async def project_ref(self, project: str | None, caller: Principal | None) -> str | uuid.UUID:
        """The project a call is about, checked against the caller's credential.

        Looked up before the call's transaction, on its own connection, when the name is left out or the
        credential is limited to one project: a project's id never changes, and the transaction then still
        starts with the project's lock.
        """
        await self.ready()
        limited = caller.project_id if caller is not None else None
        if project is not None and limited is None:
            return project
        if project is None and limited is not None:
            return limited
        async with self.db.autocommit_session() as session:
            if project is None:
                return await _only_project(session)
            found = await service.get_project(session, project)
        auth.check_project(caller, found.id)
        return found.id


async def _visible_run(session: AsyncSession, run_id: uuid.UUID, limited: uuid.UUID | None, ref: str) -> None:
    """A whole id of no codegen run, or (for a credential `limited` to a project) of another project's run, is
    refused as one that does not exist."""
    from sqlalchemy import select

    from taskmaster.core.errors import NotFound
    from taskmaster.db.models import WorkflowRun

    query = select(WorkflowRun.project_id).where(WorkflowRun.id == run_id, WorkflowRun.kind == "codegen")
    owner = await session.scalar(query)
    if owner is None or (limited is not None and owner != limited):
        raise NotFound(f"codegen run {ref} does not exist")


def _required(db: Database | None) -> Database:
    if db is None:
        raise RuntimeError("the database is opened by `prepare`, before the first tool call")
    return db


async def _only_project(session: AsyncSession) -> uuid.UUID:
    return await projects.only_project(session, how_to_choose="pass `project` (a name or an id)")


@asynccontextmanager
async def _tool_errors() -> AsyncIterator[None]:
    """Domain errors, invalid input and an unreachable database become tool errors of one line each.

    Anything else is left to the SDK, which logs the traceback here and tells the caller only that the tool
    failed.
    """
    from sqlalchemy.exc import InterfaceError, OperationalError

    try:
        yield
    except TaskmasterError as exc:
        # In the words of the tool's arguments: an error the caller may override names `force=true`, not a flag.
        override = exc.extra.get("override")
        raise ToolError(f"{exc.detail} with {override}=true" if override else exc.detail) from None
    except ValidationError as exc:
        raise ToolError(_one_line(exc)) from None
    except (OperationalError, InterfaceError, OSError) as exc:
        text = str(getattr(exc, "orig", None) or exc).strip() or type(exc).__name__
        raise ToolError(f"cannot reach the database: {text.splitlines()[0]}") from None


def _one_line(exc: ValidationError) -> str:
    return "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())


def _ref(ref: int | str) -> int | str:
    """A task reference as agents write it: 7, "7", "#7" (as validate reports it) or an id."""
    return ref.strip().removeprefix("#") if isinstance(ref, str) else ref


def _task(task: Task, details: bool) -> dict[str, Any]:
    return (service.to_out(task) if details else service.to_summary(task)).model_dump(mode="json")


def _tasks(tasks: list[Task], details: bool) -> list[dict[str, Any]]:
    return [_task(task, details) for task in tasks]


def _pick(task: Task | None, details: bool) -> dict[str, Any]:
    if task is None:
        return {"task": None, "message": "no task is ready"}
    return {"task": _task(task, details), "message": None}


def _report(report: service.GraphReport) -> dict[str, Any]:
    return {
        "ok": not report.findings,
        "tasks": report.tasks,
        "dependencies": report.dependencies,
        "findings": [vars(finding) for finding in report.findings],
    }


def _result(data: dict[str, Any]) -> CallToolResult:
    """The same JSON twice, as the protocol asks: structured for programs, compact text for the model."""
    text = json.dumps(data, separators=(",", ":"), ensure_ascii=False)
    return CallToolResult(content=[TextContent(type="text", text=text)], structured_content=data)
