"""Fixtures for the engine tests: a local repository with a `.taskmaster.yml`, its project, and an engine whose
workspaces and mirrors live where the sandbox user can reach them (pytest's tmp_path is private to root)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from taskmaster.config import Settings
from taskmaster.config.settings import WorkspaceSettings
from taskmaster.db.models import Pipeline, PipelineStep, Project, StepAttempt
from taskmaster.db.session import Database
from taskmaster.pipelines.engine import Backoff, PipelineEngine
from taskmaster.pipelines.runs import create_run
from taskmaster.workspaces.git_cache import MirrorCache
from tests.support import processes_with
from tests.workspaces.conftest import commit, git

FAST = Backoff(base=0.05, factor=2.0, cap=0.2)


def make_pipeline_repo(path: Path, definition: str | None) -> str:
    """A repository on main whose last commit holds `definition` as `.taskmaster.yml` (none when None)."""
    path.mkdir(parents=True)
    git(path, "init", "-q", "-b", "main")
    sha = commit(path, "README.md", "hello\n")
    if definition is not None:
        sha = commit(path, ".taskmaster.yml", definition)
    return sha


@dataclass
class Harness:
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


@pytest.fixture
def harness_factory(db: Database, settings: Settings, reachable_dir: Path, tmp_path: Path) -> Callable[..., Any]:
    counter = 0

    async def make(definition: str | None, **project: Any) -> Harness:
        nonlocal counter
        counter += 1
        repo = tmp_path / f"repo{counter}"
        make_pipeline_repo(repo, definition)
        on_disk = settings.model_copy(update={"workspace": WorkspaceSettings(root=reachable_dir / "workspaces")})
        async with db.transaction() as session:
            row = Project(name=f"app{counter}", repository=str(repo), forge="local", **project)
            session.add(row)
        return Harness(db, on_disk, MirrorCache(reachable_dir / "mirrors", max_bytes=1 << 30), row, repo)

    return make


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


async def wait_for(predicate: Any, timeout: float = 10.0) -> None:
    """Poll `predicate` (an async callable) until it is true; fail the test after `timeout` seconds."""
    loop = asyncio.get_running_loop()
    end = loop.time() + timeout
    while not await predicate():
        assert loop.time() < end, "condition not reached in time"
        await asyncio.sleep(0.05)


async def wait_for_process(marker: str, timeout: float = 10.0) -> None:
    """Wait until a process whose command line holds `marker` runs (a step has started)."""

    async def running() -> bool:
        return bool(processes_with(marker))

    await wait_for(running, timeout)
