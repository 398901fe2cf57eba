"""Pipelines under test: a harness over a real repository (git, the sandbox) and one over the fake executor (no git,
no processes), with the loader that reads a pipeline back from the database."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import select

from taskmaster.config import Settings
from taskmaster.config.settings import WorkspaceSettings
from taskmaster.db.models import Pipeline, PipelineStep, Project, StepAttempt
from taskmaster.db.session import Database
from taskmaster.pipelines.definition import load_definition
from taskmaster.pipelines.engine import Backoff, PipelineEngine
from taskmaster.pipelines.plan import compile_plan
from taskmaster.pipelines.runs import create_run, store_plan
from taskmaster.pipelines.states import PipelineStatus
from taskmaster.workspaces.git_cache import MirrorCache
from tests.support.factories import make_project
from tests.support.fakes import FakeExecutor, FakeSites
from tests.support.git import commit, make_pipeline_repo

FAST = Backoff(base=0.05, factor=2.0, cap=0.2)


@dataclass
class Harness:
    """A project over a real repository; engines check out from its mirror and run steps in the sandbox."""

    db: Database
    settings: Settings
    mirror: MirrorCache
    project: Project
    repo: Path

    def engine(self, **options: Any) -> PipelineEngine:
        options.setdefault("backoff", FAST)
        options.setdefault("poll_seconds", 0.1)
        options.setdefault("grace", 1.0)
        return PipelineEngine(self.db, self.settings, self.mirror, **options)

    async def create(self, ref: str = "main", **options: Any) -> Pipeline:
        async with self.db.transaction() as session:
            project = await session.get(Project, self.project.id)
            assert project is not None
            return await create_run(session, project, ref=ref, mirror=self.mirror, **options)

    def write(self, definition: str) -> str:
        return commit(self.repo, ".taskmaster.yml", definition)


async def make_harness(
    db: Database, settings: Settings, root: Path, repo: Path, definition: str | None, **project: Any
) -> Harness:
    """A harness whose repository is made at `repo`; workspaces and mirrors under `root`, which the sandbox user
    must reach (pytest's tmp_path is private to root)."""
    make_pipeline_repo(repo, definition)
    on_disk = settings.model_copy(update={"workspace": WorkspaceSettings(root=root / "workspaces")})
    row = await make_project(db, repository=str(repo), **project)
    return Harness(db, on_disk, MirrorCache(root / "mirrors", max_bytes=1 << 30), row, repo)


@dataclass
class FakeHarness:
    """A project whose pipelines are planned from a definition given as text and run on a `FakeExecutor`: the
    engine's rules without git or processes. `sites.fake.script(step, Scripted(...), ...)` says what steps do."""

    db: Database
    settings: Settings
    project: Project
    sites: FakeSites = field(default_factory=FakeSites)

    @property
    def executor(self) -> FakeExecutor:
        return self.sites.fake

    def engine(self, **options: Any) -> PipelineEngine:
        options.setdefault("backoff", FAST)
        options.setdefault("poll_seconds", 0.05)
        options.setdefault("grace", 0.2)
        options.setdefault("sites", self.sites)
        return PipelineEngine(
            self.db, self.settings, MirrorCache(self.settings.state_dir / "unused", max_bytes=0), **options
        )

    async def create(self, definition: str, *, sha: str = "f" * 40) -> Pipeline:
        """A `pending` pipeline of the project at `sha`, planned from `definition` (`.taskmaster.yml` text)."""
        plan = compile_plan(load_definition(definition))
        async with self.db.transaction() as session:
            pipeline = Pipeline(
                project_id=self.project.id,
                pipeline_type="validation",
                status=PipelineStatus.PENDING.value,
                trigger_event="manual",
                branch_name="main",
                commit_sha=sha,
                definition={},
            )
            session.add(pipeline)
            await session.flush()
            store_plan(session, pipeline, plan)
        return pipeline


async def make_fake_harness(db: Database, settings: Settings, **project: Any) -> FakeHarness:
    return FakeHarness(db, settings, await make_project(db, **project))


async def load(
    db: Database, pipeline_id: uuid.UUID
) -> tuple[Pipeline, dict[str, PipelineStep], dict[str, list[StepAttempt]]]:
    """The pipeline, its steps by name, and each step's attempts in order."""
    async with db.session() as session:
        pipeline = await session.get(Pipeline, pipeline_id)
        assert pipeline is not None
        steps = {
            s.step_name: s
            for s in await session.scalars(select(PipelineStep).where(PipelineStep.pipeline_id == pipeline_id))
        }
        attempts: dict[str, list[StepAttempt]] = {name: [] for name in steps}
        rows = await session.execute(
            select(PipelineStep.step_name, StepAttempt)
            .join(StepAttempt, StepAttempt.step_id == PipelineStep.id)
            .where(PipelineStep.pipeline_id == pipeline_id)
            .order_by(StepAttempt.attempt)
        )
        for name, attempt in rows.all():
            attempts[name].append(attempt)
        return pipeline, steps, attempts
