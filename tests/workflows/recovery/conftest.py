"""A repository whose test step fails (`add` subtracts), a project over it on the fake GitHub or on the local forge,
a `Runtime` whose OpenAI provider is the fake model server, and the patches a debugger may answer with."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr

from taskmaster.config import Settings
from taskmaster.config.settings import LlmSettings, ModelPrice, WorkspaceSettings
from taskmaster.db.models import Pipeline, Project, PullRequest, WorkflowRun
from taskmaster.db.session import Database
from taskmaster.pipelines.runs import create_run
from taskmaster.pipelines.states import PipelineStatus
from taskmaster.runtime import Runtime
from taskmaster.secrets import SecretBox
from taskmaster.workflows import service
from taskmaster.workflows.recovery import RecoveryWorkflow, request_recovery
from tests.agents.llm.fakes import OPENAI_KEY, FakeLlm, serve
from tests.forges.fakes.github import PERSONAL_TOKEN, FakeGitHub, serve_github
from tests.support.factories import make_project
from tests.support.git import commit, git

DEFINITION = """\
steps:
  build: {run: "echo built"}
  test: {run: "sh tests/test_add.sh", needs: [build], retries: 1}
  package: {run: "echo packaged", needs: [test]}
  notify: {run: "echo the pipeline failed", when: on_failure}
"""
BROKEN = "add() { echo $(($1 - $2)); }\n"
FIXED = "add() { echo $(($1 + $2)); }\n"
WRONG = "add() { echo $(($1 * $2)); }\n"
TEST = (
    ". ./app.sh\nresult=$(add 1 2)\n"
    '[ "$result" = 3 ] || { echo "FAILED: add 1 2 gave $result, expected 3"; exit 1; }\necho ok\n'
)
BRANCH = "feature"
PR = 7
MODEL = "gpt-5.4-mini"


@pytest.fixture(scope="module")
def _openai() -> Iterator[tuple[str, FakeLlm]]:
    with serve("openai") as server:
        yield server


@pytest.fixture
def model(_openai: tuple[str, FakeLlm]) -> tuple[str, FakeLlm]:
    _openai[1].reset(lambda body: {"fixed": False, "patch": "", "explanation": "no brain"}, api_key=OPENAI_KEY)
    return _openai


@pytest.fixture(scope="module")
def _github() -> Iterator[tuple[str, FakeGitHub]]:
    with serve_github() as server:
        yield server


@pytest.fixture
def github(_github: tuple[str, FakeGitHub]) -> tuple[str, FakeGitHub]:
    _github[1].reset()
    return _github


@dataclass
class Rig:
    """A project over `repo` (main, and the pull request's branch `feature` with the bug), its runtime."""

    db: Database
    settings: Settings
    runtime: Runtime
    project: Project
    repo: Path
    base_sha: str
    head_sha: str

    async def pipeline(self, *, ref: str = BRANCH, pull_request: bool = True) -> Pipeline:
        """A planned pipeline of `ref`, the pull request's when `pull_request`."""
        async with self.db.transaction() as session:
            project = await session.get(Project, self.project.id)
            assert project is not None
            pipeline = await create_run(session, project, ref=ref, mirror=self.runtime.mirror)
            if pull_request:
                pull = await _pull_request(session, project.id, self.head_sha, self.base_sha)
                pipeline.pull_request_id = pull.id
            return pipeline

    async def run(self, pipeline_id: uuid.UUID, workflow: RecoveryWorkflow | None = None) -> PipelineStatus:
        """Run the pipeline with the recovery hook, and its recovery runs beside it, as `pipeline run` does."""
        engine = self.runtime.engine(worker_id="w1", recovery=request_recovery)
        engine.poll_seconds = 0.1
        recovery = workflow or self.runtime.recovery(worker_id="w1")

        async def recoveries() -> None:
            while True:
                claimed = await service.claim_next(self.db, "w1", kinds=["recovery"], pipeline_id=pipeline_id)
                if claimed is None:
                    await asyncio.sleep(0.1)
                    continue
                outcome = await recovery.run(self.db, claimed)
                await service.finish(self.db, claimed.run_id, "w1", outcome)

        beside = asyncio.create_task(recoveries())
        try:
            return await asyncio.wait_for(engine.run(pipeline_id), 240)
        finally:
            beside.cancel()

    async def runs(self) -> list[WorkflowRun]:
        from sqlalchemy import select

        async with self.db.session() as session:
            return list(await session.scalars(select(WorkflowRun).order_by(WorkflowRun.created_at)))

    def patch(self, change: Callable[[Path], None]) -> str:
        """The unified diff (git's format) that `change` makes to a clean copy of the pull request's branch."""
        scratch = self.repo.parent / f"scratch-{uuid.uuid4().hex[:6]}"
        git(self.repo.parent, "clone", "-q", "-b", BRANCH, str(self.repo), str(scratch))
        change(scratch)
        git(scratch, "add", "-A")
        return git(scratch, "diff", "--cached") + "\n"


async def _pull_request(session: Any, project_id: uuid.UUID, head: str, base: str) -> PullRequest:
    from sqlalchemy import select

    found = await session.scalar(select(PullRequest).where(PullRequest.project_id == project_id))
    if found is not None:
        return found  # type: ignore[no-any-return]
    pull = PullRequest(project_id=project_id, number=PR, head_ref=BRANCH, head_sha=head, base_ref="main", base_sha=base)
    session.add(pull)
    await session.flush()
    return pull


@pytest.fixture
async def rig_factory(
    db: Database, settings: Settings, reachable_dir: Path, model: tuple[str, FakeLlm]
) -> AsyncIterator[Callable[..., Any]]:
    """`await rig_factory(recovery={...}, github=url_or_None)`: a `Rig` with those recovery settings."""
    runtimes: list[Runtime] = []
    url, _ = model

    async def make(
        *,
        recovery: dict[str, Any],
        github: str | None = None,
        price: float | None = None,
        llm: LlmSettings | None = None,
    ) -> Rig:
        repo = reachable_dir / f"repo-{uuid.uuid4().hex[:6]}"
        repo.mkdir()
        git(repo, "init", "-q", "-b", "main")
        commit(repo, ".taskmaster.yml", DEFINITION)
        commit(repo, "tests/test_add.sh", TEST)
        base = commit(repo, "app.sh", FIXED, "add works")
        git(repo, "checkout", "-q", "-b", BRANCH)
        head = commit(repo, "app.sh", BROKEN, "refactor add (it now subtracts)")
        git(repo, "checkout", "-q", "main")  # the branch is not checked out: a push to it is accepted
        prices = dict(settings.costs.prices)
        if price is not None:
            prices[f"openai:{MODEL}"] = ModelPrice(input_per_mtok=price, output_per_mtok=price)
        on_disk = settings.model_copy(
            update={
                "workspace": WorkspaceSettings(
                    root=reachable_dir / "workspaces", mirror_root=reachable_dir / "mirrors"
                ),
                "llm": llm or LlmSettings(openai_api_key=SecretStr(OPENAI_KEY), openai_base_url=url),
                "costs": settings.costs.model_copy(update={"prices": prices}),
            }
        )
        box = SecretBox.from_settings(on_disk)
        fields: dict[str, Any] = {"repository": str(repo), "settings": {"recovery": recovery}}
        if github is not None:
            fields.update(
                forge="github", owner="octo", repo_name="app", forge_token=box.encrypt(PERSONAL_TOKEN),
                settings={"recovery": recovery, "forge_api_url": github},
            )  # fmt: skip
        project = await make_project(db, **fields)
        runtime = Runtime(on_disk, db, box=box)
        runtimes.append(runtime)
        return Rig(db, on_disk, runtime, project, repo, base, head)

    yield make
    for runtime in runtimes:
        await runtime.aclose()
