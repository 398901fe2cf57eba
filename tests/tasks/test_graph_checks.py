"""Bulk import, then validate and fix on the seed's `dependencies` column, up to 100,000 tasks."""

from __future__ import annotations

import json
import subprocess
import uuid
from pathlib import Path

import pytest
from sqlalchemy import select, update

from taskmaster.db import migrate
from taskmaster.db.models import Project, Task
from taskmaster.db.session import Database
from taskmaster.projects import service as projects
from taskmaster.projects.schemas import ProjectCreate
from taskmaster.secrets.box import SecretBox, new_key
from taskmaster.tasks import service
from taskmaster.tasks.schemas import PlannedTask
from tests.cli.conftest import TASKMASTER, clean_env
from tests.conftest import make_settings


def chains(count: int, length: int) -> list[PlannedTask]:
    """`count` independent chains of `length` tasks: each task depends on the one before it."""
    return [
        PlannedTask(
            key=f"{c}.{i}",
            title=f"chain {c} step {i}",
            priority=1 + (c + i) % 5,
            dependencies=[f"{c}.{i - 1}"] if i else [],
        )
        for c in range(count)
        for i in range(length)
    ]


async def _project_with(db: Database, plan: list[PlannedTask]) -> Project:
    async with db.transaction() as session:
        project = await projects.create_project(
            session, spec=ProjectCreate(name="big", repository="/r"), box=SecretBox([new_key()])
        )
        await service.lock_project(session, project.id)
        result = await service.import_planned(session, project, plan)
    assert result.created == len(plan)
    return project


async def _inject_faults(db: Database, project: Project) -> dict[str, set[int]]:
    """Write faults straight into the seed's column, as another tool might: returns task numbers per kind."""
    async with db.transaction() as session:
        rows = {n: (i, d) for i, n, d in (await session.execute(select(Task.id, Task.number, Task.dependencies))).all()}

        async def set_deps(number: int, deps: list[str]) -> None:
            await session.execute(update(Task).where(Task.number == number).values(dependencies=deps))

        await set_deps(11, [*rows[11][1], str(rows[11][0])])  # self
        await set_deps(21, [*rows[21][1], str(uuid.uuid4())])  # missing
        await set_deps(32, [*rows[32][1], *rows[32][1]])  # duplicate
        await set_deps(41, [str(rows[50][0])])  # cycle of 10: 41 <- 42 <- ... <- 50 <- 41
        await set_deps(61, [str(rows[62][0])])  # cycle of 2: 61 <-> 62
    return {"self": {11}, "missing": {21}, "duplicate": {32}, "cycle": {41, 61}}


async def test_import_validate_fix_round_trip(db: Database) -> None:
    project = await _project_with(db, chains(10, 10))
    async with db.session() as session:
        clean = await service.validate_graph(session, project)
        first = await service.get_task(session, project.id, 1)
    assert (clean.tasks, clean.dependencies, clean.findings) == (100, 90, [])
    assert first.dependents_count == 9
    expected = await _inject_faults(db, project)
    async with db.session() as session:
        report = await service.validate_graph(session, project)
    found: dict[str, set[int]] = {}
    for finding in report.findings:
        found.setdefault(finding.kind, set()).add(finding.task)  # type: ignore[arg-type]
    assert {kind: len(tasks) for kind, tasks in found.items()} == {"self": 1, "missing": 1, "duplicate": 1, "cycle": 2}
    assert found["self"] == expected["self"] and found["missing"] == expected["missing"]
    assert found["duplicate"] == expected["duplicate"]
    assert any("#41" in f.message and "#50" in f.message for f in report.findings if f.kind == "cycle")
    async with db.transaction() as session:
        await service.lock_project(session, project.id)
        fixed = await service.fix_graph(session, project)
    assert sorted(f.kind for f in fixed.findings) == ["cycle", "cycle", "duplicate", "missing", "self"]
    async with db.session() as session:
        assert (await service.validate_graph(session, project)).findings == []
        ready = await service.ready_tasks(session, project, limit=1000)
    assert {t.title for t in ready} >= {f"chain {c} step 0" for c in range(10) if c not in (4, 6)}


@pytest.mark.slow
async def test_cli_validate_finds_every_fault_in_100k_tasks(state_dir: Path) -> None:
    """Through the real command on the embedded database; PostgreSQL runs the same service code above."""
    settings = make_settings(state_dir)
    db = Database.from_settings(settings)
    try:
        await migrate.upgrade(db)
        project = await _project_with(db, chains(1000, 100))
        expected = await _inject_faults(db, project)
    finally:
        await db.dispose()
    result = subprocess.run(
        [TASKMASTER, "task", "validate", "--project", "big", "--json"],
        env=clean_env(TASKMASTER_HOME=str(state_dir)),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 1, result.stderr
    report = json.loads(result.stdout)
    assert report["ok"] is False
    assert report["tasks"] == 100_000
    found: dict[str, set[int]] = {}
    for finding in report["findings"]:
        found.setdefault(finding["kind"], set()).add(finding["task"])
    assert found == expected
