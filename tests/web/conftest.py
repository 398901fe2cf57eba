"""Dashboard fixtures: a live server on loopback, tokens of each role, and pipelines written straight into the
database (a page test needs their rows, not a run)."""

from __future__ import annotations

import re
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta

import httpx
import pytest

from taskmaster.app import create_app
from taskmaster.auth import service as auth_service
from taskmaster.auth.schemas import Role, TokenSpec
from taskmaster.config import Settings
from taskmaster.core.clock import utcnow
from taskmaster.db import migrate
from taskmaster.db.models import Pipeline, PipelineStep, Project, StepAttempt, StepLog
from taskmaster.db.session import Database
from tests.support import live_server


@dataclass
class Dashboard:
    url: str
    settings: Settings
    tokens: dict[Role, str]

    def client(self, role: Role | None = None) -> httpx.Client:
        headers = {"Authorization": f"Bearer {self.tokens[role]}"} if role else {}
        return httpx.Client(base_url=self.url, headers=headers, timeout=10, follow_redirects=False)

    @contextmanager
    def signed_in(self, role: Role) -> Iterator[httpx.Client]:
        """A browser-like client holding a session cookie, as the sign-in form leaves it."""
        with httpx.Client(base_url=self.url, timeout=10, follow_redirects=False) as client:
            form = client.get("/login")
            csrf = re.search(r'name="csrf_token" value="([^"]+)"', form.text)
            assert csrf is not None
            answer = client.post("/login", data={"csrf_token": csrf.group(1), "token": self.tokens[role], "next": "/"})
            assert answer.status_code == 303, answer.text
            yield client


@pytest.fixture
async def tokens(settings: Settings) -> AsyncIterator[dict[Role, str]]:
    db = Database.from_settings(settings)
    try:
        await migrate.upgrade(db)
        made = {}
        async with db.transaction() as session:
            for role in Role:
                made[role] = (
                    await auth_service.create_token(session, spec=TokenSpec(name=role.value, role=role))
                ).token
        yield made
    finally:
        await db.dispose()


@pytest.fixture
def dashboard(settings: Settings, tokens: dict[Role, str]) -> Iterator[Dashboard]:
    app = create_app(settings, run_worker=False)
    with live_server(app) as url:
        yield Dashboard(url, settings, tokens)


async def add_project(settings: Settings, name: str = "demo") -> uuid.UUID:
    db = Database.from_settings(settings)
    try:
        async with db.transaction() as session:
            project = Project(name=name, repository=f"/srv/{name}", forge="local", default_branch="main")
            session.add(project)
            await session.flush()
            return project.id
    finally:
        await db.dispose()


async def add_pipeline(
    settings: Settings,
    project_id: uuid.UUID,
    *,
    status: str = "failed",
    steps: dict[str, tuple[str, list[str], str]] | None = None,
    branch: str = "main",
) -> uuid.UUID:
    """A finished pipeline with `steps`: name -> (status, needs, log text)."""
    steps = steps or {"install": ("success", [], "installed\n"), "test": ("failed", ["install"], "1 failed\n")}
    now = utcnow()
    db = Database.from_settings(settings)
    try:
        async with db.transaction() as session:
            pipeline = Pipeline(
                project_id=project_id, status=status, branch_name=branch, commit_sha="a" * 40,
                trigger_event="api", started_at=now - timedelta(seconds=30), finished_at=now, duration_ms=30000,
            )  # fmt: skip
            session.add(pipeline)
            await session.flush()
            for position, (name, (step_status, needs, text)) in enumerate(steps.items()):
                step = PipelineStep(
                    pipeline_id=pipeline.id, step_name=name, position=position, needs=needs, status=step_status,
                    started_at=now - timedelta(seconds=20), finished_at=now, duration_ms=20000,
                )  # fmt: skip
                session.add(step)
                await session.flush()
                session.add(
                    StepAttempt(
                        step_id=step.id,
                        attempt=1,
                        status=step_status,
                        started_at=now - timedelta(seconds=20),
                        finished_at=now,
                        duration_ms=20000,
                        exit_code=0 if step_status == "success" else 1,
                    )
                )
                session.add(StepLog(step_id=step.id, attempt=1, seq=0, offset=0, content=text))
            return pipeline.id
    finally:
        await db.dispose()
