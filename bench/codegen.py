"""Code generation: orchestration overhead of a task -> pull request cycle, and parallel agents, each against its
baseline measured in the same run.

  overhead   one task at a time through the real `codegen` workflow run (claim, fresh checkout from the mirror
             cache, prompt from the templates table, check, commit, push to a bare repository, pull request, link),
             run by the worker's workflow loop on the embedded SQLite database, with an instant fake agent (writes
             one file) and an instant in-process fake forge. Beside it: the summed latency of the fakes, and the
             same git work (clone, commit, push) done by a plain shell script. Goal: under 1 s per task over the
             fakes.
  parallel   16 tasks, 4 agents at a time (codegen.max_parallel = worker.codegen_concurrency = 4; the worker runs 8
             runs at once, so runs prepare and finish beside the agents), with agents that each take 1 s, against
             the ideal 4 s. Goal: within 15%.
Prints figures, asserts nothing.

Run: ./dev python bench/codegen.py [--tasks 5] [--parallel-tasks 16] [--agent-seconds 1]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import subprocess
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from sqlalchemy import func, select

from taskmaster.agents.base import AgentKind, AgentResult, CodingJob, StartedCallback
from taskmaster.config import Settings, load_settings
from taskmaster.core.clock import utcnow
from taskmaster.core.logging import configure_logging
from taskmaster.db.base import Base
from taskmaster.db.models import Project, WorkflowRun, WorkflowStep
from taskmaster.db.session import Database
from taskmaster.forges.base import PullRequestRef
from taskmaster.projects.credentials import Credentials
from taskmaster.projects.forges import ForgeFactory
from taskmaster.tasks import service as tasks
from taskmaster.tasks.schemas import TaskCreate
from taskmaster.worker.workflows import WorkflowLoop
from taskmaster.workflows.codegen import service as codegen
from taskmaster.workflows.codegen.agents import default_agents
from taskmaster.workflows.codegen.run import CodegenWorkflow
from taskmaster.workflows.codegen.schemas import CodegenRequest
from taskmaster.workflows.registry import default_workflows
from taskmaster.workspaces.git_cache import MirrorCache

GIT = ["git", "-c", "user.name=Bench", "-c", "user.email=bench@example.com"]


class Latency:
    """Wall time spent inside the fakes (what a real agent and forge would add), summed."""

    def __init__(self) -> None:
        self.seconds = 0.0

    def add(self, started: float) -> None:
        self.seconds += time.perf_counter() - started


class FakeAgent:
    """Writes one file in its checkout after `delay` seconds."""

    def __init__(self, delay: float, latency: Latency) -> None:
        self.delay = delay
        self.latency = latency

    @property
    def kind(self) -> AgentKind:
        return "agentapi"

    @property
    def label(self) -> str:
        return "agentapi:bench"

    async def run(self, job: CodingJob, *, on_started: StartedCallback | None = None) -> AgentResult:
        started = time.perf_counter()
        if self.delay:
            await asyncio.sleep(self.delay)
        (job.checkout / f"task-{job.task_number}.txt").write_text(f"{job.title}\n")
        self.latency.add(started)
        return AgentResult(ok=True, summary="wrote one file")

    async def aclose(self) -> None:
        return None


class FakeForge:
    """Pull requests as a list in memory: what the codegen run asks of a forge."""

    def __init__(self, pulls: list[dict[str, Any]], latency: Latency) -> None:
        self.pulls = pulls
        self.latency = latency

    async def find_pull_request(self, repo: str, *, head: str, base: str | None = None) -> PullRequestRef | None:
        started = time.perf_counter()
        found = next((p for p in self.pulls if p["head"] == head), None)
        self.latency.add(started)
        return PullRequestRef(found["number"], found["url"]) if found else None

    async def create_pull_request(
        self, repo: str, *, head: str, base: str, title: str, body: str, draft: bool = False
    ) -> PullRequestRef:
        started = time.perf_counter()
        number = len(self.pulls) + 1
        self.pulls.append({"number": number, "head": head, "url": f"https://forge.invalid/{repo}/pull/{number}"})
        self.latency.add(started)
        return PullRequestRef(number, self.pulls[-1]["url"])

    async def close_pull_request(self, repo: str, number: int) -> None:
        return None

    async def aclose(self) -> None:
        return None


class FakeForges(ForgeFactory):
    def __init__(self, settings: Settings, credentials: Credentials, forge: FakeForge) -> None:
        super().__init__(settings, credentials)
        self.forge = forge

    def for_project(self, project: Project) -> Any:
        return self.forge


def make_remote(root: Path, name: str) -> Path:
    source = root / f"{name}-source"
    source.mkdir(parents=True)
    subprocess.run([*GIT, "init", "-q", "-b", "main"], cwd=source, check=True)
    (source / "README.md").write_text("# bench\n")
    subprocess.run([*GIT, "add", "."], cwd=source, check=True)
    subprocess.run([*GIT, "commit", "-qm", "start"], cwd=source, check=True)
    remote = root / f"{name}.git"
    subprocess.run(["git", "clone", "-q", "--bare", str(source), str(remote)], check=True)
    return remote


def plain_git(remote: Path, workdir: Path, number: int) -> float:
    """The git work of one task done by hand: clone, branch, one file, commit, push."""
    started = time.perf_counter()
    script = (
        f"git clone -q {remote} c{number} && cd c{number} && git checkout -q -b plain/{number} && "
        f"echo task > task-{number}.txt && git add -A && "
        f"git -c user.name=Bench -c user.email=bench@example.com commit -qm 'task {number}' && "
        f"git push -q origin plain/{number}"
    )
    subprocess.run(["/bin/sh", "-c", script], cwd=workdir, check=True)
    return time.perf_counter() - started


class World:
    """A project on a bare repository, the codegen kind with fake agent and forge, and a workflow loop."""

    def __init__(self, root: Path, name: str, *, agent_seconds: float, parallel: int) -> None:
        base = load_settings(
            {"TASKMASTER_HOME": str(root / "state"), "WSL2_INSTANCE_PATH": str(root / "workspaces")}, config_file=None
        )
        # `parallel` agents at once (the project's and this worker's agent slots); twice as many runs in flight, so
        # that runs check out, commit, push and open PRs beside the agents (as a worker's default 4 runs do its 2).
        worker = base.worker.model_copy(update={"concurrency": 2 * parallel, "codegen_concurrency": parallel})
        self.settings = base.model_copy(update={"worker": worker})
        self.db = Database.from_settings(self.settings)
        self.name = name
        self.remote = make_remote(root, name)
        self.latency = Latency()
        self.pulls: list[dict[str, Any]] = []
        credentials = Credentials.from_settings(self.settings)
        agents = default_agents()
        agents.register("agentapi", lambda project, choice: FakeAgent(agent_seconds, self.latency))
        self.agents = agents
        workflow = CodegenWorkflow(
            self.settings, mirror=MirrorCache(root / "mirrors", max_bytes=1 << 32), credentials=credentials,
            forges=FakeForges(self.settings, credentials, FakeForge(self.pulls, self.latency)), agents=agents,
        )  # fmt: skip
        self.loop = WorkflowLoop(
            self.settings, self.db, worker_id=f"bench-{name}", registry=default_workflows().with_kinds(workflow)
        )
        self.parallel = parallel
        self.project_id = uuid.uuid4()
        self.requested_at = utcnow()

    async def setup(self, count: int) -> None:
        async with self.db.engine.begin() as conn:
            await conn.run_sync(Base.metadata.create_all)
        async with self.db.transaction() as session:
            project = Project(
                id=self.project_id, name=self.name, repository=str(self.remote), forge="github", owner="bench",
                repo_name=self.name, default_branch="main", settings={"codegen": {"max_parallel": self.parallel}},
            )  # fmt: skip
            session.add(project)
        for number in range(count):
            async with self.db.transaction() as session:
                locked = await tasks.lock_project(session, self.project_id)
                await tasks.create_task(session, project=locked, spec=TaskCreate(title=f"Task {number + 1}"))

    async def run(self, numbers: list[int]) -> float:
        """Request runs for `numbers` and wait until all have finished; wall seconds from request to the last."""
        self.requested_at = utcnow()
        started = time.perf_counter()
        async with self.db.transaction() as session:
            made = await codegen.start(
                session, self.project_id, CodegenRequest(tasks=numbers, agent="agentapi"), actor="bench",
                agents=self.agents,
            )  # fmt: skip
        ids = [run.id for run in made.runs]
        self.loop.wake()
        live = select(func.count()).where(WorkflowRun.id.in_(ids), WorkflowRun.status.in_(("pending", "running")))
        while True:
            # One cheap query per poll: the observer must not take the CPU and the database from the runs.
            async with self.db.session() as session:
                if not await session.scalar(live):
                    break
            await asyncio.sleep(0.01)
        took = time.perf_counter() - started
        async with self.db.session() as session:
            rows = (await session.scalars(select(WorkflowRun).where(WorkflowRun.id.in_(ids)))).all()
        failed = [f"{row.status}: {row.error_message}" for row in rows if row.status != "succeeded"]
        if failed:
            raise SystemExit(f"runs did not succeed: {failed}")
        return took

    async def close(self) -> None:
        await self.loop.stop()
        await self.db.dispose()


async def stage_seconds(world: World) -> dict[str, list[float]]:
    """Where the runs' time went: each journal step's durations, by name."""
    async with world.db.session() as session:
        rows = (await session.scalars(select(WorkflowStep))).all()
    by_stage: dict[str, list[float]] = {}
    for row in rows:
        if row.finished_at is not None:
            by_stage.setdefault(row.name, []).append((row.finished_at - row.started_at).total_seconds())
    return by_stage


async def timeline(world: World, took: float) -> str:
    """Where the time beyond the ideal went in the last batch: before the first agents started, between an agent's
    end and the next agent's start in its slot, and after the last agent ended (to the last run's end)."""
    async with world.db.session() as session:
        agents = (
            await session.scalars(
                select(WorkflowStep).where(WorkflowStep.name == "agent", WorkflowStep.started_at >= world.requested_at)
            )
        ).all()
    starts = sorted((row.started_at - world.requested_at).total_seconds() for row in agents)
    ends = sorted((row.finished_at - world.requested_at).total_seconds() for row in agents if row.finished_at)
    slots = world.parallel
    head = statistics.mean(starts[:slots])
    gaps = [start - end for start, end in zip(starts[slots:], ends, strict=False)]
    tail = took - ends[-1]
    return (
        f"  timeline: first {slots} agents start after {head:.2f} s (mean); an agent's slot waits "
        f"{statistics.mean(gaps):.3f} s (mean, max {max(gaps):.3f}) for the next agent over {len(gaps)} hand-overs; "
        f"the last run ends {tail:.2f} s after the last agent"
    )


async def bench_overhead(root: Path, count: int) -> None:
    world = World(root, "overhead", agent_seconds=0.0, parallel=1)
    await world.setup(count)
    world.loop.start()
    plain_dir = root / "plain"
    plain_dir.mkdir()
    try:
        await world.run([1])  # warm-up: the mirror's first clone and the template's first use
        walls, fakes, plain = [], [], []
        for number in range(2, count + 1):
            before = world.latency.seconds
            walls.append(await world.run([number]))
            fakes.append(world.latency.seconds - before)
            plain.append(plain_git(world.remote, plain_dir, number))
        wall, fake, git = (statistics.median(v) for v in (walls, fakes, plain))
        print(f"overhead: one task -> pull request, median of {len(walls)} tasks after one warm-up (SQLite)")
        print(f"  fakes (agent + forge)       {fake * 1000:8.1f} ms")
        print(f"  plain git (clone..push)     {git * 1000:8.1f} ms")
        print(f"  codegen run, request->done  {wall * 1000:8.1f} ms  ({wall / git:.1f}x the plain git work)")
        print(f"  orchestration over the fakes: {(wall - fake) * 1000:.0f} ms per task (goal < 1000 ms)")
    finally:
        await world.close()


async def bench_parallel(root: Path, count: int, agent_seconds: float, parallel: int) -> None:
    world = World(root, "parallel", agent_seconds=agent_seconds, parallel=parallel)
    await world.setup(count + 1)
    world.loop.start()
    try:
        world_warm = await world.run([count + 1])  # warm-up outside the measured batch
        took = await world.run(list(range(1, count + 1)))
        ideal = count / parallel * agent_seconds
        stages = await stage_seconds(world)
        own = sum(statistics.median(v) for k, v in stages.items() if k != "agent")
        print(f"parallel: {count} tasks, {parallel} at a time, agents of {agent_seconds:.1f} s (warm-up "
              f"{world_warm:.2f} s)")  # fmt: skip
        print(f"  codegen {took:.2f} s against the ideal {ideal:.2f} s: {(took / ideal - 1) * 100:+.1f}% "
              "(goal within 15%)")  # fmt: skip
        # Slots bound agents only, so other runs' stages overlap the agents: one run's own stages (the first
        # run's before its agent, the last one's after) are all that stays outside them.
        print(f"  a run's own stages take {own:.2f} s beside its agent: the floor with them is "
              f"{ideal + own:.2f} s")  # fmt: skip
        print("  stages (median/max s): " + ", ".join(
            f"{k} {statistics.median(v):.2f}/{max(v):.2f}" for k, v in stages.items()))  # fmt: skip
        print(await timeline(world, took))
    finally:
        await world.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tasks", type=int, default=6, help="Tasks of the overhead measure (one is a warm-up).")
    parser.add_argument("--parallel-tasks", type=int, default=16)
    parser.add_argument("--parallel", type=int, default=4)
    parser.add_argument("--agent-seconds", type=float, default=1.0)
    args = parser.parse_args()
    configure_logging("warning", "console")
    with tempfile.TemporaryDirectory(prefix="taskmaster-bench-", dir="/tmp") as tmp:
        root = Path(tmp)
        asyncio.run(bench_overhead(root / "a", args.tasks))
        asyncio.run(bench_parallel(root / "b", args.parallel_tasks, args.agent_seconds, args.parallel))


if __name__ == "__main__":
    main()
