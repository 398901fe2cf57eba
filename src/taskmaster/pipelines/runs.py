"""Creating a run: resolve a ref to a commit, read its `.taskmaster.yml`, compile the plan and store the rows.

An invalid `.taskmaster.yml` is the repository's own fault, so it never raises: the pipeline is stored as `error`
with `failure_reason` "code" (a fix to the file fixes it; retrying would not) and the line-precise problems as its
`error_message`, and no steps.
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

from sqlalchemy.ext.asyncio import AsyncSession

from taskmaster.core.errors import Conflict, InvalidInput, NotFound
from taskmaster.db.models import Pipeline, PipelineStep, Project
from taskmaster.pipelines import defaults, transitions
from taskmaster.pipelines.definition import DEFAULT_SOURCE, DefinitionError, PipelineDefinition, load_definition
from taskmaster.pipelines.plan import Plan, compile_plan
from taskmaster.pipelines.states import FailureReason, PipelineStatus, PipelineType, StepStatus
from taskmaster.workspaces.git_cache import MirrorCache

_GIT_TIMEOUT = 60.0


async def create_run(
    session: AsyncSession,
    project: Project,
    *,
    ref: str,
    mirror: MirrorCache,
    pipeline_type: str = PipelineType.VALIDATION.value,
    trigger_event: str = "manual",
    token: str | None = None,
) -> Pipeline:
    """A new pipeline for `ref` (a branch, tag or sha) of the project's repository, planned and `pending`.

    Fetches the repository into the mirror cache (with `token`, the project's decrypted forge token, for private
    remotes). Raises `NotFound` when the ref is not in the repository; an invalid `.taskmaster.yml` gives an
    `error` pipeline instead (see the module docstring). The caller owns the transaction.
    """
    PipelineType(pipeline_type)  # an unknown type is a usage error, before any git work
    sha = await resolve_ref(mirror, project.repository, ref, token=token)
    pipeline = Pipeline(
        project_id=project.id,
        pipeline_type=pipeline_type,
        status=PipelineStatus.PENDING.value,
        trigger_event=trigger_event,
        branch_name=None if _is_sha_of(ref, sha) else ref,
        commit_sha=sha,
        # No trigger key: manual runs are never deduplicated against each other or webhook requests.
        trigger_key=None,
        definition={},
    )
    session.add(pipeline)
    await session.flush()
    await plan_commit(session, pipeline, project.repository, mirror)
    return pipeline


async def plan_pipeline(
    session: AsyncSession, pipeline: Pipeline, *, mirror: MirrorCache, token: str | None = None, fetch: bool = True
) -> Pipeline:
    """Fill in the plan and step rows of an existing `pending` pipeline (one requested by a webhook).

    A pipeline that has steps already is left as it is. Raises `Conflict` unless the pipeline is `pending`.
    `fetch=False`: the caller brought the mirror up to date before its transaction (no network I/O inside it).
    """
    if pipeline.status != PipelineStatus.PENDING.value:
        raise Conflict(f"pipeline {pipeline.id} is {pipeline.status}: only a pending pipeline can be planned")
    if pipeline.definition:
        return pipeline
    project = await session.get(Project, pipeline.project_id)
    if project is None:
        raise NotFound(f"project {pipeline.project_id} does not exist")
    if not pipeline.commit_sha:
        transitions.apply(pipeline, transitions.ERROR, reason="the pipeline has no commit", failure_reason=None)
        return pipeline
    if fetch:
        await mirror.ensure(project.repository, token=token)
    await plan_commit(session, pipeline, project.repository, mirror)
    return pipeline


async def plan_commit(session: AsyncSession, pipeline: Pipeline, repository: str, mirror: MirrorCache) -> None:
    """Plan `pipeline` from its commit in the mirror (fetched already): its `.taskmaster.yml`, else the detected
    default; an invalid definition makes it `error` (see the module docstring)."""
    assert pipeline.commit_sha is not None
    try:
        text = await read_file_at(mirror, repository, pipeline.commit_sha, DEFAULT_SOURCE)
        if text is not None:
            definition = load_definition(text)
        else:
            definition = await detect_at(mirror, repository, pipeline.commit_sha)
        plan = compile_plan(definition, pipeline_type=pipeline.pipeline_type)
    except DefinitionError as exc:
        transitions.apply(pipeline, transitions.ERROR, reason=str(exc), failure_reason=FailureReason.CODE)
        return
    except InvalidInput as exc:  # e.g. the file has no steps for this pipeline type
        transitions.apply(pipeline, transitions.ERROR, reason=exc.detail, failure_reason=FailureReason.CODE)
        return
    store_plan(session, pipeline, plan)


def store_plan(session: AsyncSession, pipeline: Pipeline, plan: Plan) -> list[PipelineStep]:
    """Write `plan` into the pipeline's `definition` and add one step row per planned step."""
    pipeline.definition = plan.to_json()
    steps = [
        PipelineStep(
            pipeline_id=pipeline.id,
            step_name=step.name,
            step_type=step.uses or step.kind.value,
            position=step.position,
            needs=list(step.needs),
            config=step.to_json(),
            status=(StepStatus.WAITING if step.needs else StepStatus.PENDING).value,
            retry_count=0,
            max_retries=step.max_retries,
        )
        for step in plan.steps
    ]
    session.add_all(steps)
    return steps


async def resolve_ref(mirror: MirrorCache, repository: str, ref: str, *, token: str | None = None) -> str:
    """The commit sha `ref` names in `repository`, after bringing the mirror up to date. `NotFound` if none."""
    if not ref or ref.startswith("-") or any(ch.isspace() or ord(ch) < 32 for ch in ref):
        raise InvalidInput(f"not a branch, tag or commit: {ref[:200]!r}")
    path = await mirror.ensure(repository, token=token)
    code, out, _ = await _git(path, "rev-parse", "--verify", "--quiet", "--end-of-options", f"{ref}^{{commit}}")
    if code != 0:
        raise NotFound(f"{ref!r} is not a branch, tag or commit of {repository}")
    return out.decode().strip()


async def read_file_at(mirror: MirrorCache, repository: str, sha: str, name: str) -> str | None:
    """The text of `name` at commit `sha` in the mirror, or None when the commit has no such file."""
    path = mirror.mirror_path(repository)
    code, out, err = await _git(path, "ls-tree", "--name-only", sha, "--", name)
    if code != 0:
        raise NotFound(f"commit {sha} is not in the mirror of {repository}: {err.decode(errors='replace').strip()}")
    if not out.strip():
        return None
    code, out, err = await _git(path, "cat-file", "blob", f"{sha}:{name}")
    if code != 0:  # a directory or a submodule by that name
        raise InvalidInput(f"{name} at {sha} is not a file")
    return out.decode(errors="replace")


async def detect_at(mirror: MirrorCache, repository: str, sha: str) -> PipelineDefinition:
    """The default pipeline for the commit `sha`, detected from its top-level files (`pipelines/defaults.py`)."""
    path = mirror.mirror_path(repository)
    code, out, err = await _git(path, "ls-tree", "-l", "-z", sha)
    if code != 0:
        raise NotFound(f"commit {sha} is not in the mirror of {repository}: {err.decode(errors='replace').strip()}")
    sizes: dict[str, int | None] = {}
    for entry in out.decode(errors="replace").split("\0"):
        info, _, name = entry.partition("\t")
        if name:
            field = info.split()[-1]  # "-" for a directory
            sizes[name] = int(field) if field.isdigit() else None
    texts: dict[str, str] = {}
    for name in defaults.files_to_read(sizes):
        size = sizes[name]
        # The repository may be hostile: only files small enough to be what they claim are read.
        if size is not None and size <= defaults.MAX_READ:
            text = await read_file_at(mirror, repository, sha, name)
            if text is not None:
                texts[name] = text
    return defaults.detect(sizes, texts).definition()


def _is_sha_of(ref: str, sha: str) -> bool:
    return len(ref) >= 7 and sha.lower().startswith(ref.lower())


async def _git(repo: Path, *args: str) -> tuple[int, bytes, bytes]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GIT_")}
    proc = await asyncio.create_subprocess_exec(
        "git",
        "-c",
        "safe.directory=*",
        "-C",
        str(repo),
        *args,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=env,
    )
    try:
        out, err = await asyncio.wait_for(proc.communicate(), _GIT_TIMEOUT)
    except BaseException:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
        raise
    assert proc.returncode is not None
    return proc.returncode, out, err
