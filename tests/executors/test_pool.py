"""The SSH pool against real sshd servers: routing to the least busy healthy instance, waiting when all are full,
taking sick instances out of rotation and bringing them back.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from taskmaster.core.errors import InvalidInput
from taskmaster.executors.base import StepSpec
from taskmaster.executors.pool import NoHealthyInstance, SshPool
from tests.support import eventually
from tests.support.sshd import Sshd, kill_marked, unique_sleep, wait_for_processes


def spec(workdir: Path | str, command: str, timeout: float = 30.0, **fields: Any) -> StepSpec:
    return StepSpec(command=command, workdir=str(workdir), timeout=timeout, **fields)


@pytest.fixture
def root(tmp_path: Path) -> Path:
    """One workspace root both instances use (they are the same machine, as identical WSL2 instances would be)."""
    path = tmp_path / "root"
    path.mkdir()
    return path


@pytest.fixture
def two(make_sshd: Callable[[str], Sshd]) -> tuple[Sshd, Sshd]:
    return make_sshd("a"), make_sshd("b")


def pool_of(servers: tuple[Sshd, ...], root: Path, capacity: int = 2, **options: float) -> SshPool:
    instances = [
        server.instance(name=name, workspace_root=str(root), max_concurrent_steps=capacity)
        for name, server in zip("ab", servers, strict=False)
    ]
    return SshPool(instances, **options)


async def test_the_pool_sends_each_step_to_the_least_busy_instance(two: tuple[Sshd, Sshd], root: Path) -> None:
    sleep, marker = unique_sleep()
    async with pool_of(two, root, capacity=2) as pool:
        try:
            long = asyncio.create_task(pool.run(spec(root, sleep, grace=0.2)))
            await asyncio.to_thread(wait_for_processes, marker)
            busy = {state.name: state.busy for state in pool.states()}
            assert sorted(busy.values()) == [0, 1]
            outcome = await pool.run(spec(root, "true"))
            assert outcome.ok
            idle = next(name for name, count in busy.items() if count == 0)
            assert outcome.ran_on == f"ssh:{idle}"
            long.cancel()
            with pytest.raises(asyncio.CancelledError):
                await long
        finally:
            kill_marked(marker)


async def test_steps_wait_when_every_instance_is_full(two: tuple[Sshd, Sshd], root: Path) -> None:
    command = "date +%s.%N > start-$N; sleep 0.5; date +%s.%N > end-$N"
    async with pool_of(two, root, capacity=1) as pool:
        outcomes = await asyncio.gather(*(pool.run(spec(root, command, env={"N": str(n)})) for n in range(4)))
    assert all(outcome.ok for outcome in outcomes)
    assert {outcome.ran_on for outcome in outcomes} == {"ssh:a", "ssh:b"}
    spans = [(float((root / f"start-{n}").read_text()), float((root / f"end-{n}").read_text())) for n in range(4)]
    overlaps = [sum(1 for start, end in spans if start <= moment < end) for moment, _ in spans]
    assert max(overlaps) == 2  # one per instance


async def test_cancel_ends_the_wait_for_a_slot(two: tuple[Sshd, Sshd], root: Path) -> None:
    sleep, marker = unique_sleep()
    async with pool_of(two[:1], root, capacity=1) as pool:
        try:
            long = asyncio.create_task(pool.run(spec(root, sleep, grace=0.2)))
            await asyncio.to_thread(wait_for_processes, marker)
            cancel = asyncio.Event()
            waiting = asyncio.create_task(pool.run(spec(root, "touch ran"), cancel=cancel))
            await asyncio.sleep(0.1)
            cancel.set()
            outcome = await asyncio.wait_for(waiting, 5)
            assert outcome.canceled
            assert not (root / "ran").exists()
            long.cancel()
            with pytest.raises(asyncio.CancelledError):
                await long
        finally:
            kill_marked(marker)


async def test_the_pool_routes_around_an_unhealthy_instance_and_brings_it_back(
    two: tuple[Sshd, Sshd], root: Path
) -> None:
    b = two[1]
    b.kill()
    async with pool_of(two, root, capacity=2, recheck_interval=0.2) as pool:
        states = {state.name: state for state in pool.states()}
        assert states["a"].healthy and states["a"].latency is not None
        assert not states["b"].healthy
        assert states["b"].reason is not None and f"127.0.0.1:{b.port}" in states["b"].reason
        outcomes = await asyncio.gather(*(pool.run(spec(root, "sleep 0.2")) for _ in range(4)))
        assert [outcome.ran_on for outcome in outcomes] == ["ssh:a"] * 4
        assert all(outcome.ok for outcome in outcomes)
        b.start()
        await eventually(lambda: all(state.healthy for state in pool.states()), what="every instance healthy")
        outcomes = await asyncio.gather(*(pool.run(spec(root, "sleep 0.3")) for _ in range(4)))
        assert sorted(outcome.ran_on or "" for outcome in outcomes) == ["ssh:a", "ssh:a", "ssh:b", "ssh:b"]


async def test_an_infra_failure_takes_the_instance_out_of_rotation(two: tuple[Sshd, Sshd], root: Path) -> None:
    a = two[0]
    async with pool_of(two, root, capacity=1, recheck_interval=0.2) as pool:
        assert all(state.healthy for state in pool.states())
        a.kill()  # the pool has not noticed: its next check is only for unhealthy instances
        first = await pool.run(spec(root, "true"))  # both idle: goes to "a", the first
        assert first.ran_on == "ssh:a"
        assert first.failure_reason == "infra"
        assert not next(state for state in pool.states() if state.name == "a").healthy
        after = await asyncio.gather(*(pool.run(spec(root, "true")) for _ in range(3)))
        assert [outcome.ran_on for outcome in after] == ["ssh:b"] * 3
        assert all(outcome.ok for outcome in after)
        a.start()
        await eventually(lambda: all(state.healthy for state in pool.states()), what="every instance healthy")


async def test_a_pool_with_no_healthy_instance_returns_an_infra_outcome(two: tuple[Sshd, Sshd], root: Path) -> None:
    for server in two:
        server.kill()
    async with pool_of(two, root) as pool:
        outcome = await pool.run(spec(root, "true"))
        assert outcome.failure_reason == "infra"
        assert outcome.reason is not None
        assert outcome.reason.startswith("no healthy SSH instance in the pool (a: cannot connect")
        with pytest.raises(NoHealthyInstance):
            async with pool.lease():
                pass


async def test_a_lease_picks_the_instance_before_the_workdir_is_chosen(two: tuple[Sshd, Sshd], root: Path) -> None:
    async with pool_of(two, root, capacity=1) as pool:
        async with pool.lease() as lease:
            assert lease is not None
            workdir = Path(lease.instance.workspace_root) / "job-1"
            workdir.mkdir()
            outcome = await lease.run(spec(workdir, "pwd"))
            assert outcome.ok and outcome.ran_on == f"ssh:{lease.instance.name}"
            assert lease.executor.busy == 1
        assert {state.busy for state in pool.states()} == {0}


async def test_the_pool_refuses_a_workdir_no_instance_holds(two: tuple[Sshd, Sshd], root: Path) -> None:
    async with pool_of(two, root) as pool:
        with pytest.raises(InvalidInput, match="not inside any pool instance's workspace root"):
            await pool.run(spec("/etc", "true"))


def test_pool_instance_names_must_be_unique(two: tuple[Sshd, Sshd], root: Path) -> None:
    same = [server.instance(name="x", workspace_root=str(root)) for server in two]
    with pytest.raises(InvalidInput, match="unique"):
        SshPool(same)
