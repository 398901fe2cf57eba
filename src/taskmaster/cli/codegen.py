"""`taskmaster codegen run | list | show | cancel`: ready tasks become pull requests written by coding agents.

`run` follows its runs live and exits 0 when every run opened a pull request, 1 when any failed or was canceled,
2 on usage or configuration errors. Without `TASKMASTER_URL` it runs them in this process (own name and heartbeat,
as `pipeline run` does); with it, a running Taskmaster's worker runs them and this command follows over REST.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import time
import uuid
from collections.abc import Callable
from typing import TYPE_CHECKING, Annotated, Any, Protocol

import typer

from taskmaster.cli import common

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncSession

    from taskmaster.config import Settings
    from taskmaster.db.session import Database
    from taskmaster.runtime import Runtime
    from taskmaster.worker.attached import AttachedRuns
    from taskmaster.workflows.codegen.agents import AgentRegistry
    from taskmaster.workflows.codegen.schemas import CodegenRequest
    from taskmaster.workflows.registry import WorkflowRegistry

command = typer.Typer(no_args_is_help=True)

FINISHED = frozenset({"succeeded", "failed", "canceled"})
LIVE = ("pending", "running")
TRANSCRIPT_TAIL_LINES = 20
CANCEL_GRACE_SECONDS = 30.0
"""After Ctrl-C, how long `run` waits for its canceled runs to undo their branches and pull requests."""


class UsageError(Exception):
    """A request the doors refuse before anything runs (unknown project, task not ready, unknown agent): exit 2."""


class Doors(Protocol):
    """Where `codegen run` sends its request and reads its runs: this process's database, or a server's REST API."""

    async def get(self, run_id: str) -> dict[str, Any]: ...

    async def live_runs(self, project_id: str) -> list[dict[str, Any]]: ...

    async def cancel(self, run_id: str) -> dict[str, Any]: ...

    async def task_status(self, project_id: str, number: int) -> str: ...

    async def settle(self) -> None:
        """Return once the runs this process runs have stopped."""


def _request(
    tasks: list[int],
    next_: int | None,
    agent: str | None,
    agent_type: str | None,
    agent_command: str | None,
    loop: bool,
) -> CodegenRequest:
    """The request the options make, or a usage error naming the option (before anything is opened)."""
    from pydantic import ValidationError

    from taskmaster.workflows.codegen.schemas import CodegenRequest

    if tasks and next_ is not None:
        common.fail("give --task or --next, not both")
    options = {"tasks": "--task", "next": "--next", "agent": "--agent", "agent_type": "--agent-type"}
    options["agent_command"] = "--agent-command"
    try:
        return CodegenRequest(
            tasks=tasks, next=next_, agent=agent, agent_type=agent_type, agent_command=agent_command, loop=loop
        )
    except ValidationError as exc:
        problems = "; ".join(
            f"{options.get(str(error['loc'][0]), str(error['loc'][0]))}: {error['msg']}" for error in exc.errors()
        )
        common.fail(problems)


@command.command("run")
def run_command(
    project: Annotated[str, typer.Option("--project", "-p", help="The project (name or id).")],
    task: Annotated[list[int] | None, typer.Option("--task", "-t", help="A task number (repeatable).")] = None,
    next_: Annotated[int | None, typer.Option("--next", "-n", help="Take the next K ready tasks.")] = None,
    agent: Annotated[str | None, typer.Option(help="offline, agentapi or codegen; default: the project's.")] = None,
    agent_type: Annotated[
        str | None, typer.Option(help="For agentapi: claude, codex, gemini, aider, goose or custom.")
    ] = None,
    agent_command: Annotated[str | None, typer.Option(help="The agent's command line, for this run only.")] = None,
    loop: Annotated[
        bool, typer.Option("--loop", help="When a PR merges, go on with the tasks it made ready (Ctrl-C stops).")
    ] = False,
    detach: Annotated[bool, typer.Option("--detach", help="Only request the runs and print their ids.")] = False,
    json_output: bool = common.JsonOption,
) -> None:
    """Turn ready tasks into pull requests with a coding agent, following each run live: one line per task and
    stage, then a table. Exit 0 when every run opened a PR, 1 when any failed, 2 on usage or configuration errors.

    Ctrl-C cancels the runs (their half-made branches are removed) and exits 130.
    """
    request = _request(task or [], next_, agent, agent_type, agent_command, loop)
    settings = common.settings()
    interrupted: list[str] = []
    try:
        if settings.client.url:
            runs = asyncio.run(_remote(settings, project, request, detach=detach, json_output=json_output,
                                       interrupted=interrupted))  # fmt: skip
        else:
            runs = _here(settings, project, request, detach=detach, json_output=json_output, interrupted=interrupted)
    except UsageError as exc:
        common.fail(str(exc))
    except KeyboardInterrupt:
        which = ", ".join(interrupted) or "none"
        common.fail(f"interrupted: runs canceled ({which})", 130)
    if detach:
        if json_output:
            common.print_json({"runs": runs})
        else:
            for run in runs:
                print(run["id"])
        return
    if json_output:
        common.print_json({"runs": runs})
    else:
        _print_table(runs)
    if any(run["status"] != "succeeded" for run in runs):
        raise typer.Exit(common.EXIT_FAILURE)


def _here(
    settings: Settings,
    project: str,
    request: CodegenRequest,
    *,
    detach: bool,
    json_output: bool,
    interrupted: list[str],
) -> list[dict[str, Any]]:
    """Request the runs in this process's database and, unless `detach`, run them here as their owner."""

    async def go(db: Database) -> list[dict[str, Any]]:
        from taskmaster.db.leases import Lease
        from taskmaster.runtime import Runtime
        from taskmaster.worker.attached import AttachedRuns
        from taskmaster.worker.heartbeat import Heartbeat, WorkerIdentity

        runtime = Runtime(settings, db)
        # Its own name, never the configured worker id: that one belongs to the worker process.
        name = f"cli:{socket.gethostname()}:{os.getpid()}"
        lease = Lease(settings.worker.stale_after_seconds / 2)
        doors = LocalDoors(db, owner=None if detach else name, agents=runtime.agents)
        try:
            if detach:
                return await doors.start(project, request)
            # Beating before the runs are ours: a worker takes over runs whose owner has no fresh heartbeat.
            heartbeat = Heartbeat(
                db,
                WorkerIdentity(name=name, mode="cli"),
                interval_seconds=settings.worker.heartbeat_seconds,
                on_beat=lease.renewed,
                remove_on_stop=True,  # one row per command would pile up in `workers`
            )
            await heartbeat.start()
            try:
                runs = await doors.start(project, request)
                runner = AttachedRuns(
                    settings, db, worker_id=name, lease=lease, registry=_registry(runtime),
                    max_parallel=await doors.max_parallel(runs[0]["project_id"]) if runs else 1,
                )  # fmt: skip
                doors.runner = runner
                runner.start()
                try:
                    return await follow(doors, runs, loop=request.loop, json_output=json_output,
                                        interrupted=interrupted)  # fmt: skip
                finally:
                    await runner.stop()
            finally:
                await heartbeat.stop()
        finally:
            await runtime.aclose()

    return common.run_with_db(settings, go)


def _registry(runtime: Runtime) -> WorkflowRegistry:
    """The workflow kinds this process runs (the runtime's: `codegen` on its mirrors, forges and agents)."""
    from taskmaster.workflows.codegen.run import KIND

    registry = runtime.workflows()
    registry.require(KIND)
    return registry


async def _remote(
    settings: Settings,
    project: str,
    request: CodegenRequest,
    *,
    detach: bool,
    json_output: bool,
    interrupted: list[str],
) -> list[dict[str, Any]]:
    from taskmaster.cli.remote import RemoteCodegen

    client = RemoteCodegen(settings)
    try:
        runs = await client.start(project, request.model_dump(mode="json", exclude_defaults=True))
        if detach:
            return runs
        return await follow(client, runs, loop=request.loop, json_output=json_output, interrupted=interrupted,
                            poll_seconds=0.5)  # fmt: skip
    finally:
        await client.aclose()


async def follow(
    doors: Doors,
    runs: list[dict[str, Any]],
    *,
    loop: bool,
    json_output: bool,
    interrupted: list[str],
    poll_seconds: float = 0.2,
) -> list[dict[str, Any]]:
    """Poll the runs until every one has finished, printing a line whenever one changes status or stage; with
    `loop`, also follow the project's new runs (those a merged PR started) until none is live and no task of these
    runs still waits for its PR to merge. Cancelled (Ctrl-C): cancel the live runs, then re-raise."""
    printer = _Progress(enabled=not json_output)
    followed: dict[str, dict[str, Any]] = {run["id"]: run for run in runs}
    for run in runs:
        printer.show(run)
    project_id = runs[0]["project_id"] if runs else None
    try:
        while True:
            for run_id, run in list(followed.items()):
                if run["status"] not in FINISHED:
                    followed[run_id] = current = await doors.get(run_id)
                    printer.show(current)
            if any(run["status"] not in FINISHED for run in followed.values()):
                await asyncio.sleep(poll_seconds)
                continue
            if not loop or project_id is None:
                break
            # Which tasks still wait for their merge, read before the new runs: a merge marks its task done and
            # requests the next runs in one transaction, so a task seen done here has its runs seen below.
            waiting = [
                run for run in followed.values()
                if run["status"] == "succeeded"
                and await doors.task_status(project_id, run["task_number"]) == "review"
            ]  # fmt: skip
            fresh = [run for run in await doors.live_runs(project_id) if run["id"] not in followed]
            for run in fresh:
                followed[run["id"]] = run
                printer.show(run)
            if fresh:
                continue
            if not waiting:
                break
            await asyncio.sleep(max(poll_seconds, 1.0))
    except asyncio.CancelledError:
        for run_id, run in followed.items():
            if run["status"] not in FINISHED:
                interrupted.append(run_id)
                await doors.cancel(run_id)
        if interrupted and not json_output:
            print("canceling: the runs remove what they made (Ctrl-C again to leave now)", flush=True)
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(CANCEL_GRACE_SECONDS):
                await doors.settle()
        raise
    return sorted(followed.values(), key=lambda run: str(run["created_at"]))


class _Progress:
    """One line per run whenever its status or stage changes."""

    def __init__(self, *, enabled: bool) -> None:
        self.enabled = enabled
        self.seen: dict[str, tuple[str, str]] = {}
        self.started = time.monotonic()

    def show(self, run: dict[str, Any]) -> None:
        state = (run["status"], run["stage"])
        if self.seen.get(run["id"]) == state:
            return
        self.seen[run["id"]] = state
        if not self.enabled:
            return
        title = run["task_title"] if len(run["task_title"]) <= 40 else run["task_title"][:39] + "…"
        line = f"  #{run['task_number']:<4} {title:<40} {run['stage']:<12} {run['status']}"
        if run["status"] == "succeeded" and run["pull_request_number"] is not None:
            line += f": PR #{run['pull_request_number']}" + (
                f" {run['pull_request_url']}" if run["pull_request_url"] else ""
            )
        elif run["status"] in {"failed", "canceled"} and run["error"]:
            line += f": {run['error'].splitlines()[0][:100]}"
        print(f"{time.monotonic() - self.started:6.1f}s{line}", flush=True)


def _print_table(runs: list[dict[str, Any]]) -> None:
    from taskmaster.db.prefix import short_ids

    common.print_table(
        ["id", "task", "title", "status", "stage", "agent", "PR", "time", "error"],  # the branch: `codegen show`
        [
            (
                short,
                f"#{r['task_number']}",
                r["task_title"],
                r["status"],
                r["stage"],
                r["agent"],
                f"#{r['pull_request_number']}" if r["pull_request_number"] is not None else None,
                _duration(r),
                (r["error"] or "").splitlines()[0][:60] if r["error"] else None,
            )
            for short, r in zip(short_ids([r["id"] for r in runs]), runs, strict=True)
        ],
        title=f"{len(runs)} codegen runs",
    )


def _duration(run: dict[str, Any]) -> str:
    from datetime import datetime

    if not run["started_at"] or not run["finished_at"]:
        return ""
    started, finished = (datetime.fromisoformat(str(run[k])) for k in ("started_at", "finished_at"))
    return f"{(finished - started).total_seconds():.1f}s"


class LocalDoors:
    """The service functions on this process's database. With `owner`, the runs `start` requests are adopted by
    that name (run here by `runner`) unless a worker already holds them."""

    def __init__(self, db: Database, *, owner: str | None, agents: AgentRegistry) -> None:
        self.db = db
        self.owner = owner
        self.agents = agents
        self.runner: AttachedRuns | None = None

    async def start(self, project: str, request: CodegenRequest) -> list[dict[str, Any]]:
        from taskmaster.core.errors import InvalidInput, NotFound
        from taskmaster.projects.service import get_project
        from taskmaster.worker.attached import adopt
        from taskmaster.workflows.codegen import service

        try:
            async with self.db.transaction() as session:
                found = await get_project(session, project)
                started = await service.start(session, found.id, request, actor="cli", agents=self.agents)
                if self.owner is not None:
                    await adopt(session, [run.id for run in started.runs], owner=self.owner)
        except (NotFound, InvalidInput) as exc:
            raise UsageError(common.detail(exc)) from None
        return [run.model_dump(mode="json") for run in started.runs]

    async def get(self, run_id: str) -> dict[str, Any]:
        from taskmaster.workflows.codegen import service

        async with self.db.session() as session:
            return (await service.get_run(session, uuid.UUID(run_id))).model_dump(mode="json")

    async def live_runs(self, project_id: str) -> list[dict[str, Any]]:
        from taskmaster.worker.attached import adopt
        from taskmaster.workflows.codegen import service

        runs: list[dict[str, Any]] = []
        async with self.db.transaction() as session:
            for status in LIVE:
                found = await service.list_runs(session, project_id=uuid.UUID(project_id), status=status, limit=100)
                runs.extend(run.model_dump(mode="json") for run in found)
            if self.owner is not None:  # new runs nobody runs yet (a merge's `--loop` follow-ups): ours to run
                await adopt(session, [uuid.UUID(run["id"]) for run in runs], owner=self.owner)
        if self.runner is not None:
            self.runner.wake()
        return runs

    async def cancel(self, run_id: str) -> dict[str, Any]:
        from taskmaster.workflows.codegen import service

        async with self.db.transaction() as session:
            return (await service.cancel(session, uuid.UUID(run_id), actor="cli")).model_dump(mode="json")

    async def task_status(self, project_id: str, number: int) -> str:
        from taskmaster.tasks.service import get_task

        async with self.db.session() as session:
            return (await get_task(session, uuid.UUID(project_id), number)).status

    async def settle(self) -> None:
        if self.runner is not None:
            await self.runner.settle()

    async def max_parallel(self, project_id: str) -> int:
        """The project's `codegen.max_parallel`: how many of its runs this process works on at once."""
        from taskmaster.projects import settings as project_settings
        from taskmaster.projects.service import get_project

        async with self.db.session() as session:
            return project_settings.load((await get_project(session, project_id)).settings).codegen.max_parallel


# --- list, show, cancel ---------------------------------------------------------------------------------------------


def _run_ref(text: str) -> str:
    """`text` when it can name a run (a whole id or a prefix), else a usage error before anything opens."""
    from taskmaster.db.prefix import MIN_PREFIX, is_prefix

    try:
        uuid.UUID(text)
    except ValueError:
        if not is_prefix(text):
            common.fail(
                f"not a codegen run id: {text!r} (give the id or at least {MIN_PREFIX} of its first characters)"
            )
    return text


async def _run_id(session: AsyncSession, text: str) -> uuid.UUID:
    from taskmaster.db.models import WorkflowRun
    from taskmaster.db.prefix import resolve_id
    from taskmaster.workflows.codegen.run import KIND

    return await resolve_id(session, WorkflowRun.id, text, "codegen run", where=WorkflowRun.kind == KIND)


async def _remote_id(client: Any, text: str) -> str:
    """A whole id as it is; a prefix matched against the server's runs (newest 500)."""
    try:
        return str(uuid.UUID(text))
    except ValueError:
        pass
    digits = text.lower().replace("-", "")
    found = [r["id"] for r in await client.list_runs(project=None, status=None, limit=500)
             if r["id"].replace("-", "").startswith(digits)]  # fmt: skip
    if len(found) != 1:
        common.fail(f"{len(found)} codegen runs' ids start with {text!r}: give more characters", common.EXIT_FAILURE)
    return str(found[0])


def _remote_call(settings: Settings, action: Callable[[Any], Any]) -> Any:
    from taskmaster.cli.remote import RemoteCodegen

    async def go() -> Any:
        client = RemoteCodegen(settings)
        try:
            return await action(client)
        finally:
            await client.aclose()

    return asyncio.run(go())


@command.command("list")
def list_command(
    project: Annotated[str | None, typer.Option("--project", "-p", help="Only this project (name or id).")] = None,
    status: Annotated[
        str | None, typer.Option(help="Only runs in this status: pending, running, succeeded, failed, canceled.")
    ] = None,
    limit: Annotated[int, typer.Option(min=1, max=500)] = 50,
    json_output: bool = common.JsonOption,
) -> None:
    """Codegen runs, newest first."""
    if status is not None and status not in {*LIVE, *FINISHED}:
        common.fail(f"--status must be one of pending, running, succeeded, failed, canceled (got {status!r})")
    settings = common.settings()
    if settings.client.url:
        rows: list[dict[str, Any]] = _remote_call(
            settings, lambda client: client.list_runs(project=project, status=status, limit=limit)
        )
    else:

        async def go(session: AsyncSession) -> list[dict[str, Any]]:
            from taskmaster.projects.service import get_project
            from taskmaster.workflows.codegen import service

            project_id = (await get_project(session, project)).id if project else None
            found = await service.list_runs(session, project_id=project_id, status=status, limit=limit)
            return [run.model_dump(mode="json") for run in found]

        rows = common.run_in_transaction(settings, go)
    if json_output:
        common.print_json({"items": rows})
    else:
        _print_table(rows)


@command.command("show")
def show_command(
    run: Annotated[str, typer.Argument(help="The run's id (or a unique prefix of it).")],
    json_output: bool = common.JsonOption,
) -> None:
    """One run: its stages with times, agent, branch, PR, template version, tokens, cost and the transcript's tail."""
    ref = _run_ref(run)
    settings = common.settings()
    if settings.client.url:

        async def remote(client: Any) -> dict[str, Any]:
            found: dict[str, Any] = await client.get(await _remote_id(client, ref))
            return found

        detail: dict[str, Any] = _remote_call(settings, remote)
    else:

        async def go(session: AsyncSession) -> dict[str, Any]:
            from taskmaster.workflows.codegen import service

            return (await service.get_run(session, await _run_id(session, ref))).model_dump(mode="json")

        detail = common.run_in_transaction(settings, go)
    if json_output:
        common.print_json(detail)
    else:
        _print_detail(detail)


def _print_detail(d: dict[str, Any]) -> None:
    print(f"codegen run {d['id']}: {d['status']} at stage {d['stage']}" + (f" ({d['error']})" if d["error"] else ""))
    pull_request = f"#{d['pull_request_number']}" if d["pull_request_number"] is not None else "-"
    if d["pull_request_url"]:
        pull_request += f" {d['pull_request_url']}"
    cost = f"${d['cost_usd']:.4f}" if d["cost_usd"] is not None else "-"
    tokens = "-" if d["input_tokens"] is None else f"{d['input_tokens']} in, {d['output_tokens'] or 0} out"
    for label, value in (
        ("task", f"#{d['task_number']} {d['task_title']}"),
        ("agent", d["agent"]),
        ("template", d["template"] or "-"),
        ("branch", d["branch"] or "-"),
        ("pull request", pull_request),
        ("tokens", tokens),
        ("cost", cost),
        ("attempts", d["attempts"]),
        ("created", d["created_at"]),
        ("time", _duration(d) or "-"),
    ):
        print(f"{label:>13}: {value}")
    if d["stages"]:
        common.print_table(
            ["stage", "started", "finished", "time"],
            [
                (
                    s["stage"],
                    str(s["started_at"])[11:23],
                    str(s["finished_at"] or "")[11:23],
                    "" if s["duration_ms"] is None else f"{s['duration_ms'] / 1000:.2f}s",
                )
                for s in d["stages"]
            ],
        )
    if d["summary"]:
        print(f"summary: {d['summary'].strip()}")
    if d["transcript"]:
        lines = d["transcript"].rstrip().splitlines()
        shown = lines[-TRANSCRIPT_TAIL_LINES:]
        print(f"transcript (last {len(shown)} of {len(lines)} lines):")
        for line in shown:
            print(f"  {line}")


@command.command("cancel")
def cancel_command(run: Annotated[str, typer.Argument(help="The run's id (or a unique prefix of it).")]) -> None:
    """Cancel a live run: its worker stops the agent and removes what is half made. A finished run stays as it is."""
    ref = _run_ref(run)
    settings = common.settings()
    if settings.client.url:

        async def remote(client: Any) -> dict[str, Any]:
            found: dict[str, Any] = await client.cancel(await _remote_id(client, ref))
            return found

        result: dict[str, Any] = _remote_call(settings, remote)
    else:

        async def resolve(session: AsyncSession) -> uuid.UUID:
            return await _run_id(session, ref)

        run_id = common.run_in_transaction(settings, resolve)

        async def go(session: AsyncSession) -> dict[str, Any]:
            from taskmaster.workflows.codegen import service

            return (await service.cancel(session, run_id, actor="cli")).model_dump(mode="json")

        result = common.run_in_transaction(settings, go)
    print(f"codegen run {result['id']} {result['status']}")
