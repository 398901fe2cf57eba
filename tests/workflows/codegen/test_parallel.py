"""Several runs at once, each in its own checkout: at most `codegen.max_parallel` of a project's runs work at once
(across workers), and at most `worker.codegen_concurrency` in one worker process."""

from __future__ import annotations

import asyncio

from taskmaster.projects import settings as project_settings
from taskmaster.workflows import service as runs
from taskmaster.workflows.base import RunInput
from taskmaster.workflows.codegen.run import CodegenWorkflow
from taskmaster.workflows.codegen.schemas import CodegenRequest
from taskmaster.workspaces.git_cache import MirrorCache
from tests.support.workers import with_worker
from tests.workflows.codegen.conftest import SlowAgent, World


async def _claim_all(world: World, count: int) -> list[tuple[str, RunInput]]:
    claimed = []
    for index in range(count):
        worker = f"w{index}"
        run = await runs.claim_next(world.db, worker, kinds=["codegen"])
        assert run is not None
        claimed.append((worker, run))
    return claimed


async def test_a_project_runs_at_most_max_parallel_tasks_at_once_each_in_its_own_checkout(world: World) -> None:
    async with world.db.transaction() as session:
        project = await session.get_one(type(world.project), world.project.id)
        project.settings = project_settings.apply(project.settings, {"codegen.max_parallel": 2})
    numbers = [await world.add_task(f"Task number {n}") for n in range(4)]
    agent = SlowAgent(0.6)
    world.use_agent(agent)
    await world.start(CodegenRequest(tasks=numbers, agent="agentapi"))
    claimed = await _claim_all(world, 4)
    outcomes = await asyncio.gather(*(world.workflow.run(world.db, run) for _, run in claimed))
    assert [o.status for o in outcomes] == ["succeeded"] * 4
    assert agent.most == 2
    assert len({job.checkout for job in agent.jobs}) == 4
    assert len(world.pulls()) == 4
    assert len(world.remote_branches()) == 5


async def test_the_runtime_registers_the_codegen_kind_with_its_agent_registry(world: World) -> None:
    from taskmaster.runtime import Runtime

    runtime = Runtime(world.settings, world.db)
    registry = runtime.workflows()
    assert sorted(registry) == ["codegen", "recovery", "review"]
    assert runtime.agents.kinds() == ["agentapi", "codegen", "offline"]
    await runtime.aclose()


async def test_one_worker_runs_at_most_its_codegen_concurrency_whatever_the_projects_allow(world: World) -> None:
    async with world.db.transaction() as session:
        project = await session.get_one(type(world.project), world.project.id)
        project.settings = project_settings.apply(project.settings, {"codegen.max_parallel": 8})
    settings = with_worker(world.settings, codegen_concurrency=1)
    workflow = CodegenWorkflow(
        settings, mirror=MirrorCache.from_settings(settings), credentials=world.workflow.parts.credentials,
        forges=world.workflow.parts.forges, agents=world.agents,
    )  # fmt: skip
    numbers = [await world.add_task(f"Task number {n}") for n in range(3)]
    agent = SlowAgent(0.3)
    world.use_agent(agent)
    await world.start(CodegenRequest(tasks=numbers, agent="agentapi"))
    claimed = await _claim_all(world, 3)
    outcomes = await asyncio.gather(*(workflow.run(world.db, run) for _, run in claimed))
    assert [o.status for o in outcomes] == ["succeeded"] * 3
    assert agent.most == 1 and len(world.pulls()) == 3
