"""Dashboard speed, each figure beside a baseline measured in the same run, against `taskmaster serve` on the
embedded SQLite database (a subprocess, so the client's work is not the server's).

  big log    the page of a pipeline whose step logged 200,000 lines: server time to first byte, and first
             contentful paint in chromium; baselines: GET /health and the sign-in page.
             Goal: under 300 ms; the page shows the last lines and loads earlier ones on demand.
  live       a line written into the step's log (as the engine writes it) until it is in the page's DOM, p95 over
             100 lines; baseline: a fetch of /health from the same page. Goal: p95 under 250 ms.
  list       a page of /pipelines (first, and one 50,000 rows deep by its key) with 1,000, 10,000 and 100,000
             pipelines stored; baseline: GET /health. Goal: under 100 ms server time, flat as the table grows.
Prints figures, asserts nothing.

Run: ./dev python bench/dashboard.py [--lines 200000] [--pipelines 100000] [--skip-browser]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import timedelta
from pathlib import Path
from typing import TypeVar

import httpx
from sqlalchemy import insert

from taskmaster.config import load_settings
from taskmaster.core.clock import utcnow
from taskmaster.core.ids import new_id
from taskmaster.db import migrate
from taskmaster.db.models import Pipeline, PipelineStep, Project, StepLog
from taskmaster.db.session import Database

CHUNK_BYTES = 64 * 1024
CHROMIUM = "/usr/bin/chromium"
T = TypeVar("T")


def with_db(work: Callable[[Database], Awaitable[T]]) -> T:
    """Run `work` in its own event loop with its own engine (an engine's connections belong to one loop)."""

    async def run() -> T:
        db = Database.from_settings(load_settings())
        try:
            return await work(db)
        finally:
            await db.dispose()

    return asyncio.run(run())


def serve(home: Path, port: int) -> subprocess.Popen[bytes]:
    env = {**os.environ, "TASKMASTER_HOME": str(home), "TASKMASTER_LOG_LEVEL": "warning"}
    taskmaster = str(Path(sys.executable).parent / "taskmaster")
    process = subprocess.Popen(
        [taskmaster, "serve", "--port", str(port), "--no-worker"], env=env, stdout=subprocess.DEVNULL
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health", timeout=1).status_code == 200:
                return process
        except httpx.TransportError:
            time.sleep(0.1)
    process.kill()
    raise SystemExit("taskmaster serve did not start")


def ttfb(client: httpx.Client, path: str, runs: int = 15) -> float:
    """Median milliseconds from sending a GET to its first body byte."""
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        with client.stream("GET", path) as answer:
            for index, _ in enumerate(answer.iter_raw(16384)):
                if index == 0:
                    times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times)


async def seed_log(db: Database, project_id: uuid.UUID, lines: int) -> tuple[uuid.UUID, uuid.UUID]:
    """A running pipeline with one step whose log holds `lines` lines, in the engine's 64 KiB chunks."""
    now = utcnow()
    pipeline_id, step_id = new_id(), new_id()
    async with db.transaction() as session:
        session.add(Pipeline(id=pipeline_id, project_id=project_id, status="running", started_at=now))
        await session.flush()
        session.add(PipelineStep(id=step_id, pipeline_id=pipeline_id, step_name="test", status="running"))
        await session.flush()
        text = "".join(
            f"\x1b[32mok\x1b[0m tests/test_module.py::test_case_{n} PASSED [{n % 100:3d}%]\n" for n in range(lines)
        )
        data = text.encode()
        rows, offset, seq = [], 0, 0
        while offset < len(data):
            piece = data[offset : offset + CHUNK_BYTES].decode(errors="ignore")
            size = len(piece.encode())
            rows.append(
                {"id": new_id(), "step_id": step_id, "attempt": 1, "seq": seq, "offset": offset, "content": piece}
            )
            offset += size
            seq += 1
        await session.execute(insert(StepLog), rows)
    return pipeline_id, step_id


async def seed_pipelines(db: Database, project_id: uuid.UUID, count: int) -> None:
    start = utcnow() - timedelta(days=30)
    batch = []
    for n in range(count):
        created = start + timedelta(seconds=n)
        batch.append(
            {"id": new_id(), "project_id": project_id, "status": ("success", "failed")[n % 7 == 0],
             "pipeline_type": "validation",
             "branch_name": f"b{n % 50}", "created_at": created, "updated_at": created, "definition": {}}
        )  # fmt: skip
        if len(batch) == 5000:
            async with db.transaction() as session:
                await session.execute(insert(Pipeline), batch)
            batch = []
    if batch:
        async with db.transaction() as session:
            await session.execute(insert(Pipeline), batch)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lines", type=int, default=200_000)
    parser.add_argument("--pipelines", type=int, default=100_000)
    parser.add_argument("--skip-browser", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="taskmaster-bench-") as tmp:
        home = Path(tmp) / "state"
        os.environ["TASKMASTER_HOME"] = str(home)
        with_db(migrate.upgrade)

        async def project(db: Database) -> uuid.UUID:
            async with db.transaction() as session:
                row = Project(name="bench", repository="/srv/bench", forge="local")
                session.add(row)
                await session.flush()
                return row.id

        project_id = with_db(project)
        pipeline_id, step_id = with_db(lambda db: seed_log(db, project_id, args.lines))
        port = 20000 + os.getpid() % 20000
        process = serve(home, port)
        try:
            token = (home / "admin-token").read_text().strip()
            client = httpx.Client(
                base_url=f"http://127.0.0.1:{port}", headers={"Authorization": f"Bearer {token}"}, timeout=30
            )
            health = ttfb(client, "/health")
            page = ttfb(client, f"/pipelines/{pipeline_id}")
            size = len(client.get(f"/pipelines/{pipeline_id}").content)
            print(f"big log ({args.lines:,} lines): page TTFB {page:.1f} ms (page {size // 1024} KiB) "
                  f"vs /health {health:.1f} ms "
                  f"= {page / health:.1f}x; goal < 300 ms: {'met' if page < 300 else 'NOT met'}")  # fmt: skip
            if not args.skip_browser:
                browser_figures(f"http://127.0.0.1:{port}", token, pipeline_id, step_id)
            listing(client, project_id, args.pipelines)
        finally:
            process.terminate()
            process.wait(timeout=30)


def browser_figures(url: str, token: str, pipeline_id: uuid.UUID, step_id: uuid.UUID) -> None:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu", "--disable-background-networking"]
        )
        context = browser.new_context(extra_http_headers={"Authorization": f"Bearer {token}"})
        page = context.new_page()

        def paint(path: str) -> float:
            values = []
            for _ in range(5):
                page.goto(url + path)
                values.append(page.evaluate(
                    "() => new Promise(done => { const e = performance.getEntriesByName('first-contentful-paint');"
                    " if (e.length) return done(e[0].startTime);"
                    " new PerformanceObserver(l => done(l.getEntries()[0].startTime))"
                    ".observe({type: 'paint', buffered: true}); })"
                ))  # fmt: skip
            return statistics.median(values)

        baseline = paint("/login")
        big = paint(f"/pipelines/{pipeline_id}")
        print(f"big log: first contentful paint {big:.0f} ms vs the sign-in page {baseline:.0f} ms "
              f"= {big / baseline:.1f}x; "
              f"goal < 300 ms: {'met' if big < 300 else 'NOT met'}")  # fmt: skip

        page.goto(f"{url}/pipelines/{pipeline_id}")
        page.evaluate(
            "() => { window.arrivals = {}; const pre = document.querySelector('pre.log');"
            " new MutationObserver(() => { for (const m of pre.textContent.matchAll(/mark-(\\d+)-(\\d+)/g))"
            " if (!(m[1] in window.arrivals)) window.arrivals[m[1]] = performance.timeOrigin + performance.now(); })"
            ".observe(pre, {childList: true, subtree: true, characterData: true}); }"
        )
        page.wait_for_timeout(1000)
        sent: dict[str, float] = {}

        async def write_lines(db: Database) -> None:
            async with db.transaction() as session:
                from sqlalchemy import func, select

                last = (await session.execute(
                    select(func.max(StepLog.offset + func.length(StepLog.content)), func.max(StepLog.seq))
                    .where(StepLog.step_id == step_id)
                )).one()  # fmt: skip
            offset, seq = int(last[0] or 0), int(last[1] or 0)
            for n in range(100):
                line = f"mark-{n}-{int(time.time() * 1000)}\n"
                seq += 1
                async with db.transaction() as session:
                    session.add(StepLog(step_id=step_id, attempt=1, seq=seq, offset=offset, content=line))
                sent[str(n)] = time.time() * 1000
                offset += len(line.encode())
                await asyncio.sleep(0.05)

        writer = threading.Thread(target=with_db, args=(write_lines,))
        writer.start()
        while writer.is_alive():
            page.wait_for_timeout(100)
        page.wait_for_timeout(1500)
        arrivals: dict[str, float] = page.evaluate("() => window.arrivals")
        latencies = sorted(arrivals[k] - sent[k] for k in sent if k in arrivals)
        fetches = []
        for _ in range(20):
            fetches.append(
                page.evaluate(
                    "async () => { const t = performance.now(); await fetch('/health'); return performance.now() - t; }"
                )
            )
        base = sorted(fetches)[int(len(fetches) * 0.95) - 1]
        p95 = latencies[int(len(latencies) * 0.95) - 1] if latencies else float("nan")
        print(f"live: {len(latencies)}/100 lines arrived; write-to-DOM p50 {statistics.median(latencies):.0f} ms, "
              f"p95 {p95:.0f} ms vs a /health fetch p95 {base:.1f} ms = {p95 / base:.0f}x; "
              f"goal p95 < 250 ms: {'met' if p95 < 250 else 'NOT met'}")  # fmt: skip
        browser.close()


async def key_at(db: Database, depth: int) -> str:
    """The `before=` key that starts a page `depth` rows into the table, newest first."""
    from urllib.parse import quote

    from sqlalchemy import select

    async with db.transaction() as session:
        row = (
            await session.execute(
                select(Pipeline.created_at, Pipeline.id)
                .order_by(Pipeline.created_at.desc(), Pipeline.id.desc())
                .offset(depth)
                .limit(1)
            )
        ).one()
    return "/pipelines?before=" + quote(f"{row.created_at.isoformat()}|{row.id}")


def listing(client: httpx.Client, project_id: uuid.UUID, total: int) -> None:
    stored = 0
    for target in (1_000, 10_000, total):
        if target <= stored:
            continue
        with_db(lambda db, count=target - stored: seed_pipelines(db, project_id, count))
        stored = target
        health = ttfb(client, "/health", runs=9)
        first = ttfb(client, "/pipelines", runs=9)
        deep_key = with_db(lambda db, depth=min(stored // 2, 50_000): key_at(db, depth))
        deep = ttfb(client, deep_key, runs=9)
        worst = max(first, deep)
        print(f"list with {stored:>7,} pipelines: first page {first:.1f} ms, a page {min(stored // 2, 50_000):,} rows "
              f"deep {deep:.1f} ms vs /health {health:.1f} ms = {worst / health:.1f}x; "
              f"goal < 100 ms: {'met' if worst < 100 else 'NOT met'}")  # fmt: skip


if __name__ == "__main__":
    main()
