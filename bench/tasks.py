"""Task-graph speed at 1k, 10k and 100k tasks, each figure beside a baseline measured in the same run.

  API  GET .../tasks/next and POST .../tasks/claim, p50   vs  the same ready query sent raw through the driver
  CLI  taskmaster task next / task list, wall time       vs  a bare `python -c pass`
       (task next twice: on the database, and as a client of the running server with TASKMASTER_URL)
  validate (whole project, in process)                   vs  reading the same rows raw through the driver

Goals (issue 3): API next p50 < 5 ms at 100k on PostgreSQL; CLI `task next` < 0.5 s at 10k; validate < 2 s at 100k.
Run: ./dev python bench/tasks.py [--sizes 1000,10000,100000] [--databases sqlite,postgresql]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
from startup import free_port, median_run_seconds, wait_until_up
from taskmaster.auth import service as auth
from taskmaster.auth.schemas import Role, TokenSpec
from taskmaster.config import Settings, load_settings
from taskmaster.db import migrate
from taskmaster.db.session import Database
from taskmaster.projects import service as projects
from taskmaster.projects.schemas import ProjectCreate
from taskmaster.secrets.box import SecretBox, new_key
from taskmaster.tasks import service
from taskmaster.tasks.schemas import PlannedTask

BIN = Path(sys.executable).parent
PG_ADMIN = os.environ.get("TASKMASTER_TEST_PG", "postgresql://postgres@127.0.0.1:5432/postgres")


def plan(size: int) -> list[PlannedTask]:
    """Feature trees: groups of 50 tasks, each depending on one or two earlier tasks of its group."""
    tasks = []
    for n in range(size):
        group, index = divmod(n, 50)
        deps = [f"{group}.{index // 2}"] if index else []
        if index > 3 and index % 3 == 0:
            deps.append(f"{group}.{index - 3}")
        tasks.append(
            PlannedTask(key=f"{group}.{index}", title=f"task {n}", priority=1 + n % 5, dependencies=sorted(set(deps)))
        )
    return tasks


async def build(settings: Settings, size: int) -> str:
    """Migrate, make the project and its tasks; returns an admin token."""
    db = Database.from_settings(settings)
    try:
        await migrate.upgrade(db)
        async with db.transaction() as session:
            project = await projects.create_project(
                session, spec=ProjectCreate(name="bench", repository="/r"), box=SecretBox([new_key()])
            )
            await service.lock_project(session, project.id)
            await service.import_planned(session, project, plan(size))
            token = await auth.create_token(session, spec=TokenSpec(name="bench", role=Role.admin))
        return token.token
    finally:
        await db.dispose()


async def p50_ms(action: Callable[[], Awaitable[Any]], runs: int) -> float:
    for _ in range(5):
        await action()
    samples = []
    for _ in range(runs):
        started = time.perf_counter()
        await action()
        samples.append((time.perf_counter() - started) * 1000)
    return statistics.median(samples)


async def raw_ready_query_ms(settings: Settings, runs: int) -> float:
    """The ready query `next` sends, compiled once and executed through the bare driver."""
    db = Database.from_settings(settings)
    try:
        async with db.session() as session:
            project = await service.get_project(session, "bench")
            query, params = service._ready_query(project, limit=1)
            compiled = query.params(params).compile(dialect=db.engine.dialect, compile_kwargs={"literal_binds": True})
        sql = str(compiled)
    finally:
        await db.dispose()
    if settings.embedded:
        import sqlite3

        path = settings.database_url.split("///", 1)[1]
        conn = sqlite3.connect(path)

        async def run_sqlite() -> None:
            conn.execute(sql).fetchall()

        try:
            return await p50_ms(run_sqlite, runs)
        finally:
            conn.close()
    import asyncpg

    conn = await asyncpg.connect(settings.database_url.replace("postgresql+asyncpg", "postgresql"))
    try:
        return await p50_ms(lambda: conn.fetch(sql), runs)
    finally:
        await conn.close()


async def raw_rows_seconds(settings: Settings) -> float:
    db = Database.from_settings(settings)
    try:
        async with db.session() as session:
            project = await service.get_project(session, "bench")
            started = time.perf_counter()
            from sqlalchemy import text

            await session.execute(
                text("SELECT id, number, dependencies FROM tasks WHERE project_id = :p"),
                {"p": project.id.hex if settings.embedded else project.id},
            )
            return time.perf_counter() - started
    finally:
        await db.dispose()


async def validate_seconds(settings: Settings) -> float:
    db = Database.from_settings(settings)
    try:
        async with db.session() as session:
            project = await service.get_project(session, "bench")
            started = time.perf_counter()
            report = await service.validate_graph(session, project)
            elapsed = time.perf_counter() - started
            assert not report.findings
            return elapsed
    finally:
        await db.dispose()


def env_for(settings: Settings, home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DB_", "DATABASE_URL", "TASKMASTER_"))}
    env["TASKMASTER_HOME"] = str(home)
    env["TASKMASTER_LOG_FORMAT"] = "json"
    if not settings.embedded:
        env["DATABASE_URL"] = settings.database_url.replace("postgresql+asyncpg", "postgresql")
    return env


async def measure(database: str, size: int, work: Path) -> None:
    home = work / f"{database}-{size}"
    home.mkdir()
    pg_name = None
    environ = {"TASKMASTER_HOME": str(home)}
    if database == "postgresql":
        import psycopg

        pg_name = f"tm_bench_{uuid.uuid4().hex[:10]}"
        with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{pg_name}"')  # type: ignore[arg-type]
        environ["DATABASE_URL"] = f"{PG_ADMIN.rsplit('/', 1)[0]}/{pg_name}"
    settings = load_settings(environ)
    try:
        started = time.perf_counter()
        token = await build(settings, size)
        built = time.perf_counter() - started
        env = env_for(settings, home)
        port = free_port()
        with (home / "serve.log").open("wb") as log:
            server = subprocess.Popen(
                [str(BIN / "taskmaster"), "serve", "--no-worker", "--port", str(port)],
                cwd=home, env=env, stdout=log, stderr=subprocess.STDOUT,
            )  # fmt: skip
        try:
            base = f"http://127.0.0.1:{port}"
            try:
                wait_until_up(f"{base}/health")
            except TimeoutError:
                raise RuntimeError((home / "serve.log").read_text()[-2000:]) from None
            async with httpx.AsyncClient(base_url=base, headers={"Authorization": f"Bearer {token}"}) as http:
                next_ms = await p50_ms(lambda: http.get("/api/projects/bench/tasks/next"), 200)
                claims = iter(range(10**9))
                claim_ms = await p50_ms(
                    lambda: http.post("/api/projects/bench/tasks/claim", json={"assignee": f"a{next(claims)}"}), 100
                )
            client_env = {**env, "TASKMASTER_URL": base, "TASKMASTER_TOKEN": token}
            cli_client_next = median_run_seconds(
                [str(BIN / "taskmaster"), "task", "next", "-p", "bench"], 5, env=client_env
            )
        finally:
            server.terminate()
            server.wait(timeout=30)
        raw_ms = await raw_ready_query_ms(settings, 200)
        cli_next = median_run_seconds([str(BIN / "taskmaster"), "task", "next", "-p", "bench"], 5, env=env)
        cli_list = median_run_seconds([str(BIN / "taskmaster"), "task", "list", "-p", "bench", "--json"], 3, env=env)
        bare = median_run_seconds([sys.executable, "-c", "pass"], 5)
        validate_s = await validate_seconds(settings)
        rows_s = await raw_rows_seconds(settings)
        label = f"{database:<10} {size:>7,} tasks"
        print(f"{label}  built in {built:6.1f} s")
        print(f"{label}  API next  p50 {next_ms:7.2f} ms  = {next_ms / raw_ms:5.1f}x raw query ({raw_ms:.2f} ms)")
        print(f"{label}  API claim p50 {claim_ms:7.2f} ms  = {claim_ms / raw_ms:5.1f}x raw query")
        print(
            f"{label}  CLI task next {cli_next:7.2f} s   = {cli_next / bare:5.1f}x bare python ({bare * 1000:.0f} ms)"
        )
        print(
            f"{label}  CLI task next {cli_client_next:7.2f} s   = {cli_client_next / bare:5.1f}x bare python"
            "  (client of the running server: TASKMASTER_URL)"
        )
        print(f"{label}  CLI task list {cli_list:7.2f} s   = {cli_list / bare:5.1f}x bare python")
        print(f"{label}  validate      {validate_s:7.2f} s   = {validate_s / rows_s:5.1f}x reading the rows raw")
    finally:
        if pg_name is not None:
            import psycopg

            with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
                conn.execute(f'DROP DATABASE IF EXISTS "{pg_name}" WITH (FORCE)')  # type: ignore[arg-type]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="1000,10000,100000")
    parser.add_argument("--databases", default="sqlite,postgresql")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="tm-bench-tasks-"))
    try:
        for database in args.databases.split(","):
            for size in (int(s) for s in args.sizes.split(",")):
                asyncio.run(measure(database, size, work))
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
