"""Pipeline engine overhead, fan-out scheduling and checkout cost, each against its baseline measured in the same run.

  overhead   a 50-step chain of `true` through the engine on the embedded SQLite database, against the same 50
             commands in a plain shell loop; also 50 bare sandbox runs, to split the overhead into the sandbox
             (bubblewrap start-up) and the engine's own bookkeeping (database rows, logs, scheduling).
             Goal: under 20 ms per step over the shell.
  fan-out    16 independent `sleep 1` steps with concurrency 8, against the ideal 2 s. Goal: within 15%.
  checkout   bench/checkout.py's measurement (warm checkout from the mirror cache vs a fresh clone), with a smaller
             repository by default.
Prints figures, asserts nothing.

Run: ./dev python bench/pipelines.py [--steps 50] [--runs 3] [--skip-checkout]
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from taskmaster.config import Settings, load_settings
from taskmaster.db.base import Base
from taskmaster.db.models import Project
from taskmaster.db.session import Database
from taskmaster.pipelines.engine import PipelineEngine
from taskmaster.pipelines.runs import create_run
from taskmaster.pipelines.states import PipelineStatus
from taskmaster.workspaces import sandbox
from taskmaster.workspaces.git_cache import MirrorCache

GIT = ["git", "-c", "user.name=Bench", "-c", "user.email=bench@example.com"]


def make_repo(path: Path, definition: str) -> None:
    path.mkdir(parents=True)
    subprocess.run([*GIT, "init", "-q", "-b", "main"], cwd=path, check=True)
    (path / ".taskmaster.yml").write_text(definition)
    subprocess.run([*GIT, "add", "."], cwd=path, check=True)
    subprocess.run([*GIT, "commit", "-qm", "pipeline"], cwd=path, check=True)


def chain(steps: int) -> str:
    lines = ["concurrency: 1", "steps:"]
    for number in range(steps):
        needs = f", needs: [s{number - 1}]" if number else ""
        lines.append(f"  s{number}: {{run: 'true'{needs}}}")
    return "\n".join(lines) + "\n"


def fan_out(steps: int, concurrency: int) -> str:
    lines = [f"concurrency: {concurrency}", "steps:"]
    lines += [f"  sleep{number}: {{run: 'sleep 1'}}" for number in range(steps)]
    return "\n".join(lines) + "\n"


async def run_pipeline(db: Database, settings: Settings, mirror: MirrorCache, name: str, repo: Path) -> float:
    async with db.transaction() as session:
        project = Project(name=name, repository=str(repo), forge="local")
        session.add(project)
        await session.flush()
        pipeline = await create_run(session, project, ref="main", mirror=mirror)
    engine = PipelineEngine(db, settings, mirror)
    started = time.perf_counter()
    status = await engine.run(pipeline.id)
    took = time.perf_counter() - started
    assert status is PipelineStatus.SUCCESS, status
    return took


def shell_loop(steps: int, workdir: Path) -> float:
    started = time.perf_counter()
    subprocess.run(["/bin/sh", "-c", f"for i in $(seq {steps}); do /bin/sh -c true; done"], cwd=workdir, check=True)
    return time.perf_counter() - started


async def bare_sandbox(steps: int, workdir: Path) -> float:
    started = time.perf_counter()
    for _ in range(steps):
        result = await sandbox.run(sandbox.SandboxSpec(command="true", workspace=workdir))
        assert result.ok, result
    return time.perf_counter() - started


async def bench_engine(root: Path, steps: int, runs: int) -> None:
    settings = load_settings(
        {"TASKMASTER_HOME": str(root / "state"), "WSL2_INSTANCE_PATH": str(root / "workspaces")}, config_file=None
    )
    db = Database.from_settings(settings)
    async with db.engine.begin() as conn:
        await conn.run_sync(Base.metadata.create_all)
    mirror = MirrorCache(root / "mirrors", max_bytes=1 << 32)
    workdir = root / "plain"
    workdir.mkdir()
    try:
        engine_times, shell_times, sandbox_times = [], [], []
        for number in range(runs):  # interleaved, so that a busy moment on the machine hits all three
            repo = root / f"chain{number}"
            make_repo(repo, chain(steps))
            engine_times.append(await run_pipeline(db, settings, mirror, f"chain{number}", repo))
            shell_times.append(shell_loop(steps, workdir))
            sandbox_times.append(await bare_sandbox(steps, workdir))
        engine_s, shell_s, box_s = (statistics.median(t) for t in (engine_times, shell_times, sandbox_times))
        per_step = (engine_s - shell_s) / steps * 1000
        print(f"overhead: {steps}-step chain of `true`, median of {runs} (SQLite, {db.dialect})")
        print(f"  plain shell loop           {shell_s * 1000:8.1f} ms  ({shell_s / steps * 1000:6.2f} ms/step)")
        print(f"  bare sandbox runs          {box_s * 1000:8.1f} ms  ({box_s / steps * 1000:6.2f} ms/step)")
        print(f"  engine (whole pipeline)    {engine_s * 1000:8.1f} ms  ({engine_s / steps * 1000:6.2f} ms/step)")
        box_ms, own_ms = (box_s - shell_s) / steps * 1000, (engine_s - box_s) / steps * 1000
        print(f"  engine over shell: {per_step:.1f} ms/step (goal < 20 ms), of which sandbox {box_ms:.1f} ms")
        print(f"  and engine bookkeeping (database rows, logs, scheduling) {own_ms:.1f} ms")

        repo = root / "fan"
        make_repo(repo, fan_out(16, 8))
        took = await run_pipeline(db, settings, mirror, "fan", repo)
        print("fan-out: 16 x `sleep 1`, concurrency 8")
        print(f"  engine {took:.2f} s against the ideal 2.00 s: {(took / 2 - 1) * 100:+.1f}% (goal within 15%)")
    finally:
        await db.dispose()


def bench_checkout(commits: int, files: int, runs: int) -> None:
    path = Path(__file__).with_name("checkout.py")
    spec = importlib.util.spec_from_file_location("bench_checkout", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    print("checkout (bench/checkout.py):")
    argv = sys.argv
    sys.argv = [str(path), "--commits", str(commits), "--files", str(files), "--runs", str(runs)]
    try:
        module.main()
    finally:
        sys.argv = argv


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--checkout-commits", type=int, default=1000)
    parser.add_argument("--checkout-files", type=int, default=500)
    parser.add_argument("--skip-checkout", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="taskmaster-bench-", dir="/tmp") as tmp:
        root = Path(tmp)
        root.chmod(0o755)  # the sandbox user must reach the workspaces under it
        asyncio.run(bench_engine(root, args.steps, args.runs))
    if not args.skip_checkout:
        bench_checkout(args.checkout_commits, args.checkout_files, args.runs)


if __name__ == "__main__":
    main()
