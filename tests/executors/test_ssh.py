"""The SSH executor against a real sshd on loopback: output, environment, workdir rules, caps, stopping the remote
process tree, and infrastructure failures.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from taskmaster.core.errors import InvalidInput
from taskmaster.executors.base import StepSpec
from taskmaster.executors.ssh import DEFAULT_PATH, SshExecutor, WorkdirOutsideRoot
from tests.support import OutputCollector, free_port, processes_with
from tests.support.sshd import Sshd, kill_marked, unique_sleep, wait_for_processes

# What the remote shells add on their own: not the sshd's environment, so not a leak.
SHELL_MADE = {"PWD", "OLDPWD", "SHLVL", "_"}


def spec(workdir: Path | str, command: str, timeout: float = 30.0, **fields: Any) -> StepSpec:
    return StepSpec(command=command, workdir=str(workdir), timeout=timeout, **fields)


@pytest.fixture
async def executor(sshd: Sshd) -> AsyncIterator[SshExecutor]:
    ex = SshExecutor(sshd.instance())
    yield ex
    await ex.aclose()


@pytest.fixture
def workdir(sshd: Sshd, tmp_path: Path) -> Path:
    path = sshd.workspace_root / tmp_path.name
    path.mkdir()
    return path


async def test_a_step_reports_its_exit_code_and_streams_merged_output_in_order(
    executor: SshExecutor, workdir: Path
) -> None:
    out = OutputCollector()
    started = time.monotonic()
    outcome = await executor.run(
        spec(workdir, "echo one; echo two >&2; sleep 1; echo three; echo four >&2; exit 3"), on_output=out
    )
    assert outcome.exit_code == 3
    assert outcome.failure_reason == "code"
    assert outcome.reason == "exit code 3"
    assert outcome.signal is None
    assert not outcome.ok
    assert outcome.ran_on == "ssh:local"
    assert out.data == b"one\ntwo\nthree\nfour\n"
    assert outcome.output_bytes == len(out.data)
    # Streamed as produced: the first lines arrived before the step's `sleep 1` was over.
    first_arrival = out.chunks[0][0] - started
    assert first_arrival < outcome.duration - 0.5
    assert outcome.duration >= 1.0


async def test_a_successful_step_runs_in_its_workdir(executor: SshExecutor, workdir: Path) -> None:
    out = OutputCollector()
    outcome = await executor.run(spec(workdir, "pwd; echo made > file.txt"), on_output=out)
    assert outcome.ok
    assert outcome.failure_reason is None and outcome.reason is None and outcome.exit_code == 0
    assert out.data == f"{workdir}\n".encode()
    assert (workdir / "file.txt").read_text() == "made\n"


async def test_a_step_killed_by_a_signal_reports_it(executor: SshExecutor, workdir: Path) -> None:
    outcome = await executor.run(spec(workdir, "kill -SEGV $$"))
    assert outcome.exit_code == 128 + 11
    assert outcome.signal_name == "SIGSEGV"
    assert outcome.failure_reason == "code"


async def test_the_step_environment_is_exactly_the_spec_env_and_defaults(executor: SshExecutor, workdir: Path) -> None:
    env = {"PLAIN": "value", "TRICKY": 'it\'s "quoted" $HOME `x` \\ \n new line', "EMPTY": ""}
    out = OutputCollector()
    outcome = await executor.run(
        spec(workdir, "env -0", env=env),
        on_output=out,
    )
    assert outcome.ok
    seen = dict(item.split("=", 1) for item in out.data.decode().split("\0") if item)
    assert set(seen) - SHELL_MADE == {*env, "PATH", "LANG", "HOME"}
    assert {name: seen[name] for name in env} == env
    assert seen["PATH"] == DEFAULT_PATH
    assert seen["LANG"] == "C.UTF-8"
    assert seen["HOME"] == str(Path.home())
    # The login shell on the same connection does have sshd's variables: they are cleared, not absent.
    conn = await executor._connection()
    login = await conn.run("env", check=True)
    assert "SSH_CONNECTION=" in str(login.stdout)
    assert "SSH_CONNECTION" not in seen and "USER" not in seen and "MAIL" not in seen


async def test_the_spec_env_overrides_the_defaults(executor: SshExecutor, workdir: Path) -> None:
    out = OutputCollector()
    outcome = await executor.run(
        spec(workdir, 'printf "%s|%s" "$PATH" "$HOME"', env={"PATH": "/usr/bin:/bin", "HOME": str(workdir)}),
        on_output=out,
    )
    assert outcome.ok
    assert out.data.decode() == f"/usr/bin:/bin|{workdir}"


async def test_an_env_name_that_is_not_a_shell_name_is_refused(executor: SshExecutor, workdir: Path) -> None:
    with pytest.raises(InvalidInput, match="shell names"):
        await executor.run(spec(workdir, "true", env={"A-B": "1"}))


@pytest.mark.parametrize("outside", ["/etc", "{root}/../escape", "relative/dir", "{root}-sibling"])
async def test_a_workdir_outside_the_workspace_root_is_refused(executor: SshExecutor, sshd: Sshd, outside: str) -> None:
    workdir = outside.format(root=sshd.workspace_root)
    with pytest.raises(WorkdirOutsideRoot, match="not inside the workspace root") as caught:
        await executor.run(spec(workdir, "touch /tmp/should-not-exist"))
    assert str(sshd.workspace_root) in caught.value.detail
    assert "'local'" in caught.value.detail


async def test_a_missing_workdir_is_an_infra_failure_naming_the_host(executor: SshExecutor, sshd: Sshd) -> None:
    outcome = await executor.run(spec(sshd.workspace_root / "not-there", "true"))
    assert outcome.failure_reason == "infra"
    assert outcome.exit_code is None
    assert outcome.reason is not None
    assert "not-there is not a directory" in outcome.reason
    assert f"127.0.0.1:{sshd.port}" in outcome.reason


async def test_output_beyond_the_cap_is_dropped_after_a_marker_line(executor: SshExecutor, workdir: Path) -> None:
    out = OutputCollector()
    outcome = await executor.run(
        spec(workdir, "head -c 300000 /dev/zero | tr '\\0' a; echo; echo done", max_output_bytes=1000),
        on_output=out,
    )
    assert outcome.ok, outcome
    assert outcome.output_truncated
    assert outcome.output_bytes == 300000 + len("\ndone\n")
    assert out.data == b"a" * 1000 + b"\n[taskmaster] output truncated: more than 1000 bytes; the rest is not kept\n"


async def test_a_timeout_kills_the_remote_process_group_after_the_grace_period(
    executor: SshExecutor, workdir: Path
) -> None:
    sleep, marker = unique_sleep()
    try:
        outcome = await executor.run(spec(workdir, f"trap '' TERM; {sleep} & {sleep}", timeout=1.0, grace=1.0))
        assert outcome.timed_out
        assert outcome.failure_reason == "timeout"
        assert outcome.signal_name == "SIGKILL"  # SIGTERM was ignored, so SIGKILL after the grace period
        assert outcome.reason == "timeout: the step ran longer than 1s"
        assert 2.0 <= outcome.duration < 5.0
        assert processes_with(marker) == []
    finally:
        kill_marked(marker)


async def test_a_timeout_ends_a_step_that_obeys_sigterm_without_waiting_for_the_grace(
    executor: SshExecutor, workdir: Path
) -> None:
    sleep, marker = unique_sleep()
    try:
        outcome = await executor.run(spec(workdir, f"{sleep} & {sleep}; echo never", timeout=1.0, grace=20.0))
        assert outcome.timed_out
        assert outcome.exit_code == 128 + 15
        assert outcome.signal_name == "SIGTERM"
        assert outcome.duration < 5.0
        assert processes_with(marker) == []
    finally:
        kill_marked(marker)


async def test_background_jobs_left_by_a_finished_step_are_killed(executor: SshExecutor, workdir: Path) -> None:
    sleep, marker = unique_sleep()
    try:
        outcome = await executor.run(spec(workdir, f"({sleep} >/dev/null 2>&1 &); echo started"))
        assert outcome.ok
        assert processes_with(marker) == []
    finally:
        kill_marked(marker)


async def test_cancel_stops_the_remote_process_tree(executor: SshExecutor, workdir: Path) -> None:
    sleep, marker = unique_sleep()
    cancel = asyncio.Event()
    try:
        running = asyncio.create_task(
            executor.run(spec(workdir, f"trap '' TERM; {sleep} & {sleep}", grace=0.5), cancel=cancel)
        )
        await asyncio.to_thread(wait_for_processes, marker)
        cancel.set()
        outcome = await asyncio.wait_for(running, 10)
        assert outcome.canceled
        assert outcome.failure_reason is None
        assert outcome.reason == "canceled"
        assert not outcome.timed_out
        assert processes_with(marker) == []
    finally:
        kill_marked(marker)


async def test_cancelling_the_awaiting_task_kills_the_remote_step(executor: SshExecutor, workdir: Path) -> None:
    sleep, marker = unique_sleep()
    try:
        running = asyncio.create_task(executor.run(spec(workdir, f"trap '' TERM; {sleep} & {sleep}")))
        await asyncio.to_thread(wait_for_processes, marker)
        running.cancel()
        with pytest.raises(asyncio.CancelledError):
            await running
        deadline = time.monotonic() + 5
        while processes_with(marker) and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        assert processes_with(marker) == []
    finally:
        kill_marked(marker)


async def test_an_error_in_on_output_stops_the_step_and_is_raised(executor: SshExecutor, workdir: Path) -> None:
    sleep, marker = unique_sleep()

    async def refuse(chunk: bytes) -> None:
        raise RuntimeError("log store is full")

    try:
        with pytest.raises(RuntimeError, match="log store is full"):
            await executor.run(spec(workdir, f"echo hello; {sleep}", grace=0.5), on_output=refuse)
        assert processes_with(marker) == []
    finally:
        kill_marked(marker)


async def test_at_most_max_concurrent_steps_run_at_once(sshd: Sshd, workdir: Path) -> None:
    executor = SshExecutor(sshd.instance(max_concurrent_steps=2))
    try:
        command = "date +%s.%N > start-$N; sleep 0.5; date +%s.%N > end-$N"
        outcomes = await asyncio.gather(*(executor.run(spec(workdir, command, env={"N": str(n)})) for n in range(4)))
        assert all(outcome.ok for outcome in outcomes)
        spans = [
            (float((workdir / f"start-{n}").read_text()), float((workdir / f"end-{n}").read_text())) for n in range(4)
        ]
        overlaps = [sum(1 for start, end in spans if start <= moment < end) for moment, _ in spans]
        assert max(overlaps) == 2  # two at a time: parallel, but never more than the cap
        assert executor.busy == 0
    finally:
        await executor.aclose()


async def test_cancel_while_waiting_for_a_slot_never_runs_the_step(sshd: Sshd, workdir: Path) -> None:
    executor = SshExecutor(sshd.instance(max_concurrent_steps=1))
    sleep, marker = unique_sleep()
    try:
        busy = asyncio.create_task(executor.run(spec(workdir, sleep, timeout=20, grace=0.2)))
        await asyncio.to_thread(wait_for_processes, marker)
        cancel = asyncio.Event()
        waiting = asyncio.create_task(executor.run(spec(workdir, "touch ran"), cancel=cancel))
        await asyncio.sleep(0.2)
        cancel.set()
        outcome = await asyncio.wait_for(waiting, 5)
        assert outcome.canceled and outcome.exit_code is None
        assert not (workdir / "ran").exists()
        busy.cancel()
        with pytest.raises(asyncio.CancelledError):
            await busy
    finally:
        await executor.aclose()
        kill_marked(marker)


async def test_steps_share_one_connection(executor: SshExecutor, workdir: Path, sshd: Sshd) -> None:
    await executor.run(spec(workdir, "true"))
    first = executor._conn
    outcomes = await asyncio.gather(*(executor.run(spec(workdir, "true")) for _ in range(3)))
    assert all(outcome.ok for outcome in outcomes)
    assert executor._conn is first


async def test_a_refused_connection_is_an_infra_outcome_naming_the_host(sshd: Sshd) -> None:
    port = free_port()  # nothing listens there
    executor = SshExecutor(sshd.instance(name="gone", port=port))
    try:
        outcome = await executor.run(spec(sshd.workspace_root, "true"))
        assert outcome.failure_reason == "infra"
        assert outcome.exit_code is None
        assert outcome.reason is not None
        assert outcome.reason.startswith(f"cannot connect to SSH instance 'gone' (root@127.0.0.1:{port})")
        assert "refused" in outcome.reason.lower()
    finally:
        await executor.aclose()


async def test_an_unknown_client_key_is_an_infra_outcome_saying_authentication_was_refused(
    sshd: Sshd,
) -> None:
    keys = sshd.keys
    executor = SshExecutor(sshd.instance(client_keys=[str(keys.other_client)]))
    try:
        outcome = await executor.run(spec(sshd.workspace_root, "true"))
        assert outcome.failure_reason == "infra"
        assert outcome.reason is not None
        assert "authentication refused" in outcome.reason
        assert f"127.0.0.1:{sshd.port}" in outcome.reason
    finally:
        await executor.aclose()


async def test_a_host_key_that_does_not_match_known_hosts_is_refused(sshd: Sshd, tmp_path: Path) -> None:
    other = sshd.keys.other_host.with_suffix(".pub").read_text().split()
    known_hosts = tmp_path / "known_hosts"
    known_hosts.write_text(f"[127.0.0.1]:{sshd.port} {other[0]} {other[1]}\n")
    executor = SshExecutor(sshd.instance(known_hosts=str(known_hosts)))
    try:
        outcome = await executor.run(spec(sshd.workspace_root, "true"))
        assert outcome.failure_reason == "infra"
        assert outcome.reason is not None
        assert "host key not verifiable" in outcome.reason
    finally:
        await executor.aclose()


async def test_known_hosts_none_accepts_any_host_key(sshd: Sshd) -> None:
    executor = SshExecutor(sshd.instance(known_hosts=None))
    try:
        assert (await executor.run(spec(sshd.workspace_root, "true"))).ok
    finally:
        await executor.aclose()


async def test_sshd_killed_mid_step_is_an_infra_connection_lost_and_leaves_no_remote_orphans(
    fresh_sshd: Sshd,
) -> None:
    executor = SshExecutor(fresh_sshd.instance(name="flaky"))
    sleep, marker = unique_sleep()
    try:
        running = asyncio.create_task(
            executor.run(spec(fresh_sshd.workspace_root, f"trap '' TERM; {sleep} & {sleep}", grace=0.5))
        )
        await asyncio.to_thread(wait_for_processes, marker)
        fresh_sshd.kill()
        outcome = await asyncio.wait_for(running, 10)
        assert outcome.failure_reason == "infra"
        assert outcome.exit_code is None
        assert (
            outcome.reason
            == f"connection lost to SSH instance 'flaky' (root@127.0.0.1:{fresh_sshd.port}) during the step"
        )
        # The remote watchdog saw its stdin close and stopped the step (SIGTERM, grace, SIGKILL).
        deadline = time.monotonic() + 5
        while processes_with(marker) and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        assert processes_with(marker) == []
        # The executor connects again once the instance is back.
        fresh_sshd.start()
        again = await executor.run(spec(fresh_sshd.workspace_root, "echo back"))
        assert again.ok
    finally:
        await executor.aclose()
        kill_marked(marker)


async def test_health_check_reports_latency_and_reuses_the_connection(executor: SshExecutor) -> None:
    first = await executor.health_check()
    assert first.ok and first.reason is None
    assert first.latency is not None and 0 < first.latency < 5
    conn = executor._conn
    second = await executor.health_check()
    assert second.ok
    assert executor._conn is conn


async def test_health_check_fails_with_a_reason_when_the_instance_is_down(fresh_sshd: Sshd) -> None:
    executor = SshExecutor(fresh_sshd.instance(name="down"))
    try:
        assert (await executor.health_check()).ok
        fresh_sshd.kill()
        health = await executor.health_check()
        assert not health.ok
        assert health.reason is not None
        assert f"SSH instance 'down' (root@127.0.0.1:{fresh_sshd.port})" in health.reason
    finally:
        await executor.aclose()


async def test_health_check_fails_when_the_workspace_root_is_missing(sshd: Sshd) -> None:
    executor = SshExecutor(sshd.instance(workspace_root="/nonexistent/taskmaster-root"))
    try:
        health = await executor.health_check()
        assert not health.ok
        assert health.latency is not None
        assert health.reason is not None and "/nonexistent/taskmaster-root is not a directory" in health.reason
    finally:
        await executor.aclose()


def test_an_instance_needs_an_absolute_workspace_root(sshd: Sshd) -> None:
    with pytest.raises(InvalidInput, match="absolute"):
        sshd.instance(workspace_root="relative")


async def test_sshd_drops_asyncssh_env_names_its_accept_env_does_not_list(executor: SshExecutor) -> None:
    """Why the executor sends the environment itself: sshd drops `env=` names its AcceptEnv does not list."""
    conn = await executor._connection()
    result = await conn.run('printf "%s" "${TASKMASTER_PROBE-unset}"', env={"TASKMASTER_PROBE": "1"})
    assert result.stdout == "unset"
