"""`taskmaster pipeline run | retry | list | show | logs | cancel | init`: run a repository's pipeline here, inspect
runs, and write the default pipeline out as `.taskmaster.yml`.

`run` and `retry` follow the pipeline live and exit 0 on success, 1 on failure (failed, timed out, canceled), 2 on
error.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import sys
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from taskmaster.cli import common

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncSession

    from taskmaster.config import Settings
    from taskmaster.db.models import Pipeline
    from taskmaster.db.session import Database
    from taskmaster.pipelines.engine import PipelineEngine
    from taskmaster.runtime import Runtime

command = typer.Typer(no_args_is_help=True)


def _pipeline_ref(text: str) -> str:
    """`text` when it can name a pipeline (a whole id or a prefix), else a usage error before anything opens."""
    from taskmaster.db.prefix import MIN_PREFIX, is_prefix

    try:
        uuid.UUID(text)
    except ValueError:
        if not is_prefix(text):
            common.fail(f"not a pipeline id: {text!r} (give the id or at least {MIN_PREFIX} of its first characters)")
    return text


async def _pipeline_id(session: AsyncSession, text: str) -> uuid.UUID:
    from taskmaster.db.models import Pipeline
    from taskmaster.db.prefix import resolve_id

    return await resolve_id(session, Pipeline.id, text, "pipeline")


async def _detail(session: AsyncSession, pipeline_id: uuid.UUID) -> dict[str, Any]:
    """The pipeline as `/api/pipelines/{id}` shows it (the domain read model), as JSON data."""
    from taskmaster.pipelines import queries
    from taskmaster.pipelines.schemas import PipelineOut

    return PipelineOut.of_detail(await queries.get_detail(session, pipeline_id)).model_dump(mode="json")


def _seconds(ms: int | None) -> str:
    return "" if ms is None else f"{ms / 1000:.1f}s"


def _exit_code(status: str) -> int:
    if status == "success":
        return 0
    return common.EXIT_ERROR if status == "error" else common.EXIT_FAILURE


def _print_detail(detail: dict[str, Any]) -> None:
    print(
        f"pipeline {detail['id']}: {detail['status']}"
        + (f" ({detail['failure_reason']})" if detail["failure_reason"] else "")
        + f" in {_seconds(detail['duration_ms']) or '-'} at {(detail['commit_sha'] or '')[:12]}"
        + (f" ({detail['branch_name']})" if detail["branch_name"] else "")
    )
    if detail["steps"]:
        common.print_table(
            ["step", "status", "tries", "exit", "reason", "time", "note"],
            [
                (
                    s["name"],
                    s["status"],
                    len(s["attempts"]),
                    s["exit_code"],
                    s["failure_reason"],
                    _seconds(s["duration_ms"]),
                    (s["error_message"] or "").splitlines()[0][:60] if s["error_message"] else "",
                )
                for s in detail["steps"]
            ],
        )
    if detail.get("recovery"):
        print("recovery:")
        common.print_table(
            ["step", "round", "agent", "template", "tokens", "cost", "result", "fix", "detail"],
            [
                (
                    r["step"],
                    r["round"],
                    r["agent"],
                    f"{r['template_name']}@{r['template_version']}" if r["template_name"] else "",
                    r["input_tokens"] + r["output_tokens"],
                    "" if r["cost_usd"] is None else f"${r['cost_usd']:.4f}",
                    r["result"],
                    (r["fix_sha"] or "")[:12],
                    (r["detail"] or "").splitlines()[0][:60] if r["detail"] else "",
                )
                for r in detail["recovery"]
            ],
        )
    if detail.get("review_issue_url"):
        print(f"issue for manual review: {detail['review_issue_url']}")
    if detail["error_message"]:
        print(detail["error_message"].rstrip())
    ai = detail.get("ai") or {}
    if ai.get("calls"):
        print(_ai_line(ai))


def _ai_line(ai: dict[str, Any]) -> str:
    """`AI: 3 calls, 12,400 tokens in, 1,900 out, $0.0658` (and how many calls had no price)."""
    unpriced = f" ({ai['unpriced_calls']} without a price)" if ai.get("unpriced_calls") else ""
    return (
        f"AI: {ai['calls']} call{'s' if ai['calls'] != 1 else ''}, {ai['input_tokens']:,} tokens in, "
        f"{ai['output_tokens']:,} out, ${ai['cost_usd']:.4f}{unpriced}"
    )


Create = Callable[["AsyncSession", "Runtime"], Awaitable["Pipeline"]]
"""Makes the pipeline to run (in the caller's transaction), given the runtime (mirror cache, credentials)."""


@command.command("run")
def run_command(
    project: Annotated[str, typer.Option("--project", "-p", help="The project (name or id).")],
    ref: Annotated[str | None, typer.Option("--ref", "-r", help="Branch, tag or commit to run.")] = None,
    pull_request: Annotated[
        int | None, typer.Option("--pr", help="A pull request's number: run its head's pipeline.", min=1, max=2**31 - 1)
    ] = None,
    pipeline_type: Annotated[str, typer.Option("--type", help="validation, push or codegen.")] = "validation",
    detach: Annotated[bool, typer.Option("--detach", help="Only create the run (pending) and print its id.")] = False,
    keep_workspace: Annotated[bool, typer.Option("--keep-workspace", help="Leave the checkouts on disk.")] = False,
    json_output: bool = common.JsonOption,
) -> None:
    """Run the project's pipeline for a ref (or a pull request's head, `--pr N`) in this process, following it live;
    exit 0 success, 1 failure, 2 error.

    Ctrl-C cancels the pipeline (its steps are stopped: TERM, grace, KILL) and exits 130.
    """
    from taskmaster.pipelines.states import PipelineType

    if pipeline_type not in {t.value for t in PipelineType}:
        common.fail(f"--type must be one of {', '.join(t.value for t in PipelineType)} (got {pipeline_type!r})")
    if (ref is None) == (pull_request is None):
        common.fail("give exactly one of --ref and --pr")
    settings = common.settings()

    async def create(session: AsyncSession, runtime: Runtime) -> Pipeline:
        from taskmaster.pipelines.service import create_pipeline
        from taskmaster.projects.service import get_project

        row = await get_project(session, project)
        pull = None
        if pull_request is not None:
            from taskmaster.forges.local.service import get_pull_request

            row, pull = await get_pull_request(session, row.id, pull_request)
        pipeline = await create_pipeline(
            session, row, ref=pull.head_sha if pull else str(ref), pipeline_type=pipeline_type, mirror=runtime.mirror,
            credentials=runtime.credentials, actor="cli", trigger_event="manual:pr" if pull else "manual",
        )  # fmt: skip
        if pull is not None:  # the pull request's pipeline: shown with it, reported on it
            pipeline.pull_request_id, pipeline.branch_name = pull.id, pull.head_ref
        return pipeline

    _run_here(settings, create, detach=detach, keep_workspace=keep_workspace, json_output=json_output)


@command.command("retry")
def retry_command(
    pipeline_id: Annotated[str, typer.Argument(help="A finished pipeline's id.")],
    detach: Annotated[bool, typer.Option("--detach", help="Only create the run (pending) and print its id.")] = False,
    keep_workspace: Annotated[bool, typer.Option("--keep-workspace", help="Leave the checkouts on disk.")] = False,
    step: Annotated[
        str | None,
        typer.Option(help="Run again only this step, the steps it needs and those that need it; keep the rest."),
    ] = None,
    json_output: bool = common.JsonOption,
) -> None:
    """Run a finished pipeline again: same project, commit and type, planned afresh from that commit; followed live
    in this process like `run` (exit 0 success, 1 failure, 2 error)."""
    ref = _pipeline_ref(pipeline_id)
    settings = common.settings()

    async def create(session: AsyncSession, runtime: Runtime) -> Pipeline:
        from taskmaster.pipelines.service import retry_pipeline

        return await retry_pipeline(
            session, await _pipeline_id(session, ref), mirror=runtime.mirror, credentials=runtime.credentials,
            actor="cli", step=step,
        )  # fmt: skip

    _run_here(settings, create, detach=detach, keep_workspace=keep_workspace, json_output=json_output)


def _run_here(settings: Settings, create: Create, *, detach: bool, keep_workspace: bool, json_output: bool) -> None:
    """Create a pipeline with `create`, then (unless `detach`) run it in this process as its owner, printing each
    step's changes, and exit by its outcome. Ctrl-C cancels it and exits 130."""
    interrupted: list[uuid.UUID] = []

    async def go(db: Database) -> dict[str, Any]:
        from taskmaster.pipelines.leases import Lease
        from taskmaster.runtime import Runtime
        from taskmaster.worker.heartbeat import Heartbeat, WorkerIdentity

        runtime = Runtime(settings, db)
        lease = Lease(settings.worker.stale_after_seconds / 2)
        # Its own name, never the configured worker id: that one belongs to the worker process.
        name = f"cli:{socket.gethostname()}:{os.getpid()}"
        from taskmaster.workflows.recovery import request_recovery

        # A step that fails for its code gets its recovery run here, in this process (there may be no worker).
        engine = runtime.engine(worker_id=name, lease=lease, keep_workspace=keep_workspace, recovery=request_recovery)
        # Beating before the pipeline exists under our name: a worker's reaper takes over pipelines whose owner has
        # no fresh heartbeat, and this one must not look abandoned for a moment.
        heartbeat = Heartbeat(
            db,
            WorkerIdentity(name=name, mode="cli"),
            interval_seconds=settings.worker.heartbeat_seconds,
            on_beat=lease.renewed,
            remove_on_stop=True,  # one row per run would pile up in `workers`
        )
        if not detach:
            await heartbeat.start()
        try:
            return await follow(db, engine, runtime)
        finally:
            await heartbeat.stop()
            await runtime.aclose()

    async def follow(db: Database, engine: PipelineEngine, runtime: Runtime) -> dict[str, Any]:
        async with db.transaction() as session:
            pipeline = await create(session, runtime)
            pipeline_id = pipeline.id
            if not detach:  # this process runs it: no worker may claim it, and one takes it over if we die
                pipeline.worker_id = engine.worker_id
        if detach or pipeline.status != "pending":
            async with db.session() as session:
                return await _detail(session, pipeline_id)
        if not json_output:
            where = f" ({pipeline.branch_name})" if pipeline.branch_name else ""
            print(f"pipeline {pipeline_id} at {(pipeline.commit_sha or '')[:12]}{where}", flush=True)
        seen: dict[str, tuple[str, int]] = {}

        async def progress(changed: uuid.UUID) -> None:
            if json_output:
                return
            async with db.session() as session:
                detail = await _detail(session, changed)
            for step in detail["steps"]:
                state = (step["status"], len(step["attempts"]))
                if seen.get(step["name"], ("pending", 0)) == state or step["status"] in {"pending", "waiting"}:
                    seen[step["name"]] = state
                    continue
                seen[step["name"]] = state
                extra = f" (attempt {state[1]})" if step["status"] == "running" else ""
                if step["status"] not in {"running", "success"} and step["error_message"]:
                    extra = f": {step['error_message'].splitlines()[0][:100]}"
                elif step["duration_ms"] is not None and step["status"] == "success":
                    extra = f" in {_seconds(step['duration_ms'])}"
                print(f"  {step['name']:<20} {step['status']}{extra}", flush=True)

        engine.on_change = progress
        recoveries = asyncio.create_task(_run_recoveries(db, runtime, engine, pipeline_id))
        try:
            await engine.run(pipeline_id)
        except asyncio.CancelledError:  # Ctrl-C: the engine has stopped the steps; end what it leaves unfinished
            interrupted.append(pipeline_id)
            await engine.abandon(pipeline_id, reason="interrupted: Ctrl-C in `taskmaster pipeline run`")
            raise
        finally:
            recoveries.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await recoveries
        async with db.session() as session:
            detail = await _detail(session, pipeline_id)
        fixed = await _follow_fix(db, runtime, engine, pipeline_id, json_output=json_output)
        return fixed if fixed is not None else detail

    try:
        detail = common.run_with_db(settings, go)
    except KeyboardInterrupt:
        which = f"pipeline {interrupted[0]}" if interrupted else "the run"
        common.fail(f"interrupted: {which} canceled", 130)
    if detach:
        if json_output:
            common.print_json(detail)
        else:
            print(detail["id"])
        return
    if json_output:
        common.print_json(detail)
    else:
        _print_detail(detail)
    code = _exit_code(detail["status"])
    if code:
        raise typer.Exit(code)


async def _run_recoveries(db: Database, runtime: Runtime, engine: PipelineEngine, pipeline_id: uuid.UUID) -> None:
    """Run the recovery runs `pipeline_id` requests, in this process, until cancelled (the pipeline ended)."""
    from taskmaster.db.models import Pipeline, Project
    from taskmaster.workflows import service
    from taskmaster.workflows.recovery import recovery_agent

    async with db.session() as session:
        pipeline = await session.get(Pipeline, pipeline_id)
        project = await session.get(Project, pipeline.project_id) if pipeline is not None else None
        if project is None or recovery_agent(project) == "off":
            return  # nothing will be requested: no claim transaction every poll
    workflow = runtime.recovery(worker_id=engine.worker_id, lease=engine.lease)
    while True:
        claimed = await service.claim_next(db, engine.worker_id, kinds=[workflow.name], pipeline_id=pipeline_id)
        if claimed is None:
            await asyncio.sleep(engine.poll_seconds)
            continue
        print(f"  recovery of step {claimed.step_name!r} started", file=sys.stderr, flush=True)
        outcome = await workflow.run(db, claimed)
        await service.finish(db, claimed.run_id, engine.worker_id, outcome)
        print(
            f"  recovery: {outcome.result.get('decision')}: {outcome.result.get('detail') or ''}".rstrip(),
            file=sys.stderr,
            flush=True,
        )


async def _follow_fix(
    db: Database, runtime: Runtime, engine: PipelineEngine, pipeline_id: uuid.UUID, *, json_output: bool
) -> dict[str, Any] | None:
    """When recovery pushed a fix for `pipeline_id`, the fix commit's own validation pipeline, run here when no
    forge event made one (it never starts a recovery), and its detail: the branch's head is what counts."""
    from taskmaster.db.models import Pipeline, Project
    from taskmaster.pipelines.engine import LeaseLost
    from taskmaster.pipelines.service import create_pipeline
    from taskmaster.workflows.recovery.service import fix_validation

    async with db.session() as session:
        fix = await fix_validation(session, pipeline_id)
    if fix is None:
        return None
    validating = fix.pipeline_id
    if validating is None:
        async with db.transaction() as session:
            origin = await session.get(Pipeline, pipeline_id)
            source = await session.get(Project, origin.project_id) if origin is not None else None
            assert source is not None
            created = await create_pipeline(
                session, source, ref=fix.fix_sha, trigger_event="recovery fix", mirror=runtime.mirror,
                credentials=runtime.credentials, actor="cli",
            )  # fmt: skip
            created.branch_name = fix.branch
            created.worker_id = engine.worker_id
            validating = created.id
    if not json_output:
        print(f"pipeline {validating} validates the fix {fix.fix_sha[:12]}", flush=True)
    try:
        await engine.run(validating)
    except LeaseLost:  # a worker runs it (the forge's webhook requested it): follow it to its end
        await _until_finished(db, validating, engine.poll_seconds)
    async with db.session() as session:
        return await _detail(session, validating)


async def _until_finished(db: Database, pipeline_id: uuid.UUID, poll_seconds: float) -> None:
    """Poll another process's pipeline until it has finished."""
    from taskmaster.pipelines import queries

    while True:
        async with db.session() as session:
            if (await queries.get_state(session, pipeline_id)).finished:
                return
        await asyncio.sleep(poll_seconds)


@command.command("list")
def list_command(
    project: Annotated[str | None, typer.Option("--project", "-p", help="Only this project (name or id).")] = None,
    limit: Annotated[int, typer.Option(min=1, max=500)] = 50,
    json_output: bool = common.JsonOption,
) -> None:
    """Pipelines, newest first."""

    async def go(session: AsyncSession) -> list[dict[str, Any]]:
        from taskmaster.pipelines import queries
        from taskmaster.pipelines.schemas import PipelineSummary
        from taskmaster.projects.service import get_project

        project_id = (await get_project(session, project)).id if project else None
        rows, _ = await queries.list_pipelines(session, project_id=project_id, limit=limit)
        return [PipelineSummary.of(row).model_dump(mode="json") for row in rows]

    rows = common.run_in_transaction(common.settings(), go)
    if json_output:
        common.print_json({"items": rows})
        return
    from taskmaster.db.prefix import short_ids

    common.print_table(
        ["id", "created", "type", "ref", "commit", "status", "time"],
        [
            (
                short,
                (r["created_at"] or "")[:19].replace("T", " "),
                r["pipeline_type"],
                r["branch_name"],
                (r["commit_sha"] or "")[:12],
                r["status"] + (f" ({r['failure_reason']})" if r["failure_reason"] else ""),
                _seconds(r["duration_ms"]),
            )
            for short, r in zip(short_ids([r["id"] for r in rows]), rows, strict=True)
        ],
        title=f"{len(rows)} pipelines",
    )


@command.command("show")
def show_command(
    pipeline: Annotated[str, typer.Argument(help="The pipeline's id (or a unique prefix of it).")],
    json_output: bool = common.JsonOption,
) -> None:
    """One pipeline: its steps with every attempt, statuses, timings and failure reasons."""
    ref = _pipeline_ref(pipeline)

    async def go(session: AsyncSession) -> dict[str, Any]:
        return await _detail(session, await _pipeline_id(session, ref))

    detail = common.run_in_transaction(common.settings(), go)
    if json_output:
        common.print_json(detail)
    else:
        _print_detail(detail)


@command.command("logs")
def logs_command(
    pipeline: Annotated[str, typer.Argument(help="The pipeline's id (or a unique prefix of it).")],
    step: Annotated[str | None, typer.Option("--step", "-s", help="Only this step.")] = None,
) -> None:
    """The stored output of a pipeline's steps (every attempt, in order)."""
    ref = _pipeline_ref(pipeline)

    async def go(session: AsyncSession) -> list[tuple[str, int, str]]:
        from taskmaster.core.errors import InvalidInput
        from taskmaster.pipelines.logs import read_logs

        pipeline_id = await _pipeline_id(session, ref)
        names = [s["name"] for s in (await _detail(session, pipeline_id))["steps"]]  # NotFound for no pipeline
        if step is not None and step not in names:
            raise InvalidInput(f"pipeline {pipeline_id} has no step {step!r}; its steps: {', '.join(names) or 'none'}")
        return [(c.step, c.attempt, c.content) for c in await read_logs(session, pipeline_id, step=step)]

    current: tuple[str, int] | None = None
    for name, attempt, content in common.run_in_transaction(common.settings(), go):
        if step is None and (name, attempt) != current:
            print(f"--- {name} (attempt {attempt}) ---", flush=True)
        current = (name, attempt)
        sys.stdout.write(content)
    sys.stdout.flush()


@command.command("cancel")
def cancel_command(
    pipeline: Annotated[str, typer.Argument(help="The pipeline's id (or a unique prefix of it).")],
    reason: Annotated[str, typer.Option(help="Recorded as the pipeline's error message.")] = "canceled by request",
) -> None:
    """Cancel a live pipeline; the engine running it stops its steps (TERM, grace, KILL) within a second."""
    ref = _pipeline_ref(pipeline)

    settings = common.settings()

    async def resolve(session: AsyncSession) -> uuid.UUID:
        return await _pipeline_id(session, ref)

    # The id is resolved in a transaction of its own: the cancel's transaction must start with the pipeline's lock.
    pipeline_id = common.run_in_transaction(settings, resolve)

    async def go(session: AsyncSession) -> str:
        from taskmaster.pipelines.service import cancel_pipeline

        return (await cancel_pipeline(session, pipeline_id, reason=reason, actor="cli")).status

    status = common.run_in_transaction(settings, go)
    print(f"pipeline {pipeline_id} {status}")


@command.command("init")
def init_command(
    project: Annotated[
        str | None, typer.Option("--project", "-p", help="Write into this project's local repository.")
    ] = None,
    path: Annotated[Path | None, typer.Option("--path", help="The repository's directory (default: here).")] = None,
    force: Annotated[bool, typer.Option("--force", help="Replace an existing .taskmaster.yml.")] = False,
) -> None:
    """Write the pipeline Taskmaster would run for this repository (detected from its files) as `.taskmaster.yml`,
    for you to edit and commit."""
    from taskmaster.pipelines.defaults import detect_directory
    from taskmaster.pipelines.definition import DEFAULT_SOURCE

    if project is not None and path is not None:
        common.fail("give --project or --path, not both")
    if project is not None:

        async def go(session: AsyncSession) -> str:
            from taskmaster.projects.service import get_project

            return (await get_project(session, project)).repository

        repository = common.run_in_transaction(common.settings(), go)
        path = Path(repository)
        if not path.is_dir():
            common.fail(f"project {project}'s repository is not a directory here ({repository}): use --path DIR")
    directory = path if path is not None else Path.cwd()
    if not directory.is_dir():
        common.fail(f"--path {directory}: no such directory")
    target = directory / DEFAULT_SOURCE
    if (target.exists() or target.is_symlink()) and not force:
        common.fail(f"{target} exists: edit it, or use --force to replace it", common.EXIT_FAILURE)
    detected = detect_directory(directory)
    target.unlink(missing_ok=True)  # never write through a symlink planted in the repository
    target.write_text(detected.to_yaml())
    what = ", ".join(detected.kinds) or "no known project files"
    print(f"wrote {target} (detected: {what}); edit it, then commit it")
