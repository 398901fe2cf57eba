"""The step sandbox with real bubblewrap and real processes: output, isolation, limits, timeout and cancel."""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from taskmaster.core.logging import configure_logging
from taskmaster.workspaces.cleanup import remove_tree
from taskmaster.workspaces.git_cache import MirrorCache
from taskmaster.workspaces.sandbox import SANDBOX_UID, Limits, SandboxResult, SandboxSpec, run
from tests.support import LogCapture, OutputCollector, make_repo, processes_with


def marker() -> str:
    """A unique `sleep` argument, findable in /proc: `sleep 1000.<digits>` sleeps as long as `sleep 1000`."""
    return f"1000.{secrets.randbelow(10**9):09d}"


async def run_collecting(spec: SandboxSpec, **kwargs: object) -> tuple[SandboxResult, OutputCollector]:
    collected = OutputCollector()
    result = await run(spec, on_output=collected, **kwargs)  # type: ignore[arg-type]
    return result, collected


@pytest.mark.parametrize(("code", "failure"), [(0, None), (3, "code"), (255, "code")])
async def test_exit_codes_pass_through(workspace: Path, code: int, failure: str | None) -> None:
    result, _ = await run_collecting(SandboxSpec(f"exit {code}", workspace))

    assert result.exit_code == code
    assert result.failure_reason == failure
    assert result.reason is None and result.signal is None
    assert result.sandboxed is True
    assert result.ok is (code == 0)


async def test_output_is_streamed_in_order_while_the_step_runs(workspace: Path) -> None:
    spec = SandboxSpec("echo one; echo two >&2; echo three; sleep 1; echo four", workspace)

    result, collected = await run_collecting(spec)

    assert collected.data == b"one\ntwo\nthree\nfour\n"
    assert result.output_bytes == len(collected.data)
    # The first lines were forwarded while the step slept, not all at once when it ended.
    assert collected.chunks[-1][0] - collected.chunks[0][0] >= 0.9


async def test_output_beyond_the_cap_is_dropped_with_one_marker_and_the_step_is_not_blocked(workspace: Path) -> None:
    spec = SandboxSpec("seq 1 200000; echo done", workspace, limits=Limits(max_output_bytes=1000))

    result, collected = await run_collecting(spec)

    assert result.exit_code == 0 and result.output_truncated
    assert result.output_bytes > 1_000_000  # everything was drained
    kept, _, rest = collected.data.partition(b"\n[taskmaster] output truncated")
    assert len(kept) == 1000 and kept.startswith(b"1\n2\n3\n")
    assert rest.count(b"\n") == 1 and b"1000 bytes" in rest
    assert collected.data.count(b"truncated") == 1


async def test_environment_is_exactly_the_given_one_plus_path_home_lang(
    workspace: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TASKMASTER_HOST_SECRET", "from-the-host")
    spec = SandboxSpec("env", workspace, env={"CI": "true", "STEP_VALUE": "a b=c"})

    result, collected = await run_collecting(spec)

    assert result.exit_code == 0
    env = dict(line.split("=", 1) for line in collected.data.decode().splitlines())
    assert "TASKMASTER_HOST_SECRET" not in env and "from-the-host" not in collected.data.decode()
    assert env["CI"] == "true" and env["STEP_VALUE"] == "a b=c"
    assert env["HOME"] == "/tmp" and env["LANG"] == "C.UTF-8" and "/usr/bin" in env["PATH"]
    assert set(env) <= {"CI", "STEP_VALUE", "HOME", "LANG", "PATH", "PWD", "SHLVL", "_", "OLDPWD"}


@pytest.fixture
def listener() -> Iterator[tuple[int, list[bytes]]]:
    """A TCP server on the host's 127.0.0.1 that records what each connection sends."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(8)
    received: list[bytes] = []

    def accept() -> None:
        while True:
            try:
                conn, _ = server.accept()
            except OSError:
                return
            with conn:
                received.append(conn.recv(100))

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield server.getsockname()[1], received
    finally:
        with contextlib.suppress(OSError):
            server.shutdown(socket.SHUT_RDWR)  # wakes the thread blocked in accept()
        server.close()
        thread.join(timeout=5)


async def test_network_is_cut_off_unless_asked_for(workspace: Path, listener: tuple[int, list[bytes]]) -> None:
    port, received = listener
    connect = f"exec 3<>/dev/tcp/127.0.0.1/{port} && echo hello-from-step >&3 && echo connected"
    command = f"bash -c '{connect}'"

    isolated, isolated_out = await run_collecting(SandboxSpec(command, workspace))
    shared, shared_out = await run_collecting(SandboxSpec(command, workspace, network=True))

    # Same address, same port: inside its own namespace 127.0.0.1 is a loopback with nothing listening.
    assert isolated.exit_code != 0 and b"connected" not in isolated_out.data
    assert shared.exit_code == 0 and b"connected" in shared_out.data
    for _ in range(50):
        if received:
            break
        await asyncio.sleep(0.05)
    assert received == [b"hello-from-step\n"]


async def test_the_workspace_is_writable_and_the_rest_of_the_host_is_not(workspace: Path, tmp_path: Path) -> None:
    host_file = Path("/var/tmp") / f"taskmaster-test-{secrets.token_hex(6)}"
    host_file.write_text("original\n")
    host_file.chmod(0o666)  # even file permissions would allow it: only the read-only mount stops the write
    private_file = tmp_path / "host.txt"
    private_file.write_text("original\n")
    try:
        spec = SandboxSpec(
            f"echo made > built.txt && mkdir -p out/deep && echo x > out/deep/y; "
            f"echo pwned > {host_file}; echo a=$?; echo pwned > {private_file}; echo b=$?; "
            f"echo pwned > /etc/taskmaster-test; echo c=$?; touch /tmp/scratch; echo d=$?",
            workspace,
        )
        result, collected = await run_collecting(spec)

        assert result.exit_code == 0
        out = collected.data.decode()
        assert "a=0" not in out and "b=0" not in out and "c=0" not in out and "d=0" in out
        assert "Read-only file system" in out
        assert host_file.read_text() == "original\n" and private_file.read_text() == "original\n"
        assert not Path("/etc/taskmaster-test").exists()
        assert (workspace / "built.txt").read_text() == "made\n" and (workspace / "out/deep/y").exists()
        assert (workspace / "built.txt").stat().st_uid == SANDBOX_UID
    finally:
        host_file.unlink()


async def test_hidden_paths_are_empty_inside(workspace: Path, reachable_dir: Path) -> None:
    secret_dir = reachable_dir / "other-pipeline"
    secret_dir.mkdir()
    (secret_dir / "secret.txt").write_text("do not read")
    (secret_dir / "secret.txt").chmod(0o644)

    result, collected = await run_collecting(
        SandboxSpec(f"ls -A {secret_dir} | wc -l; cat {secret_dir}/secret.txt", workspace, hidden=(secret_dir,))
    )

    assert collected.data.decode().splitlines()[0].strip() == "0"
    assert b"do not read" not in collected.data and result.exit_code != 0


async def test_read_only_paths_show_through_hidden_ones_so_git_works_in_a_checkout(
    workspace: Path, reachable_dir: Path
) -> None:
    shas = make_repo(reachable_dir / "source")
    cache = MirrorCache(reachable_dir / "mirrors", max_bytes=1 << 30)
    await cache.checkout(str(reachable_dir / "source"), shas[-1], workspace)
    objects = cache.mirror_path(str(reachable_dir / "source")) / "objects"
    command = f"git log --format=%s -1; git status --porcelain; touch {objects}/x && echo wrote"

    without, plain = await run_collecting(SandboxSpec(command, workspace, hidden=(cache.root,)))
    shown, collected = await run_collecting(SandboxSpec(command, workspace, hidden=(cache.root,), read_only=(objects,)))

    assert b"commit 2" not in plain.data  # the alternates point into a hidden directory: no objects
    assert without.exit_code == 1  # the failed touch
    assert collected.data.decode().splitlines()[0] == "commit 2"
    assert b"wrote" not in collected.data and b"Read-only file system" in collected.data
    assert shown.exit_code == 1 and not (objects / "x").exists()


@pytest.mark.slow
async def test_a_fork_bomb_is_stopped_by_the_process_limit_and_reported(workspace: Path) -> None:
    spec = SandboxSpec(
        "bash -c 'bomb() { bomb | bomb & }; bomb; sleep 60'",
        workspace,
        limits=Limits(max_processes=20),
        timeout=60,
        grace=1,
    )

    result, _ = await run_collecting(spec)

    assert result.reason is not None and "process" in result.reason
    assert result.failure_reason == "code" and not result.timed_out
    assert result.duration < 10


async def test_each_sandbox_counts_its_own_processes(workspace: Path, reachable_dir: Path) -> None:
    other = reachable_dir / "ws2"
    other.mkdir()
    # Eight sleepers each, under a limit of 12: both fit only if they are not counted together.
    command = "for i in 1 2 3 4 5 6 7 8; do sleep 1 & done; wait; echo all-started"
    limits = Limits(max_processes=12)

    (first, first_out), (second, second_out) = await asyncio.gather(
        run_collecting(SandboxSpec(command, workspace, limits=limits)),
        run_collecting(SandboxSpec(command, other, limits=limits)),
    )

    assert first.exit_code == 0 and second.exit_code == 0, (first_out.data, second_out.data)
    assert b"all-started" in first_out.data and b"all-started" in second_out.data


async def test_memory_beyond_the_limit_fails_the_step_and_says_so(workspace: Path) -> None:
    limits = Limits(memory_bytes=256 * 1024 * 1024)
    allocate = "/usr/bin/python3 -c 'x = bytearray({size} * 1024 * 1024); print(len(x))'"

    small, small_out = await run_collecting(SandboxSpec(allocate.format(size=64), workspace, limits=limits))
    large, large_out = await run_collecting(SandboxSpec(allocate.format(size=1024), workspace, limits=limits))

    assert small.exit_code == 0 and small_out.data.strip() == str(64 * 1024 * 1024).encode()
    assert large.exit_code != 0 and b"MemoryError" in large_out.data
    assert large.reason == "limit: memory" and large.failure_reason == "code"


async def test_cpu_time_beyond_the_limit_ends_the_step(workspace: Path) -> None:
    result, _ = await run_collecting(SandboxSpec("while :; do :; done", workspace, limits=Limits(cpu_seconds=1)))

    assert result.reason == "limit: cpu" and result.failure_reason == "code"
    assert result.signal == 24 and result.duration < 10  # SIGXCPU


async def test_timeout_stops_the_step_gracefully_and_reports_timeout(workspace: Path) -> None:
    sleeper = marker()
    spec = SandboxSpec(f"trap 'echo terminated; exit 5' TERM; sleep {sleeper} & wait", workspace, timeout=0.5, grace=5)

    result, collected = await run_collecting(spec)

    assert result.timed_out and result.reason == "timeout" and result.failure_reason == "timeout"
    assert b"terminated" in collected.data and result.exit_code == 5  # the step's own TERM handler ran
    assert result.duration < 3  # well before the grace period ran out
    assert processes_with(sleeper) == []


@pytest.mark.parametrize("isolation", ["bwrap", "none"])
async def test_cancel_kills_a_step_that_ignores_sigterm_after_the_grace_period_leaving_no_process(
    workspace: Path, isolation: str
) -> None:
    sleepers = [marker(), marker()]
    spec = SandboxSpec(
        f"trap '' TERM; sleep {sleepers[0]} & sh -c 'trap \"\" TERM; sleep {sleepers[1]}' & echo started; wait",
        workspace,
        grace=1,
        isolation=isolation,  # type: ignore[arg-type]
    )
    cancel = asyncio.Event()
    collected = OutputCollector()
    task = asyncio.ensure_future(run(spec, on_output=collected, cancel=cancel))
    for _ in range(100):
        if b"started" in collected.data and all(processes_with(s) for s in sleepers):
            break
        await asyncio.sleep(0.05)
    assert all(processes_with(s) for s in sleepers)

    cancelled_at = time.monotonic()
    cancel.set()
    result = await task

    assert result.canceled and result.reason == "canceled" and result.failure_reason is None
    assert result.signal == 9  # SIGTERM was ignored, so SIGKILL ended it
    assert 0.9 < time.monotonic() - cancelled_at < 4
    assert result.sandboxed is (isolation == "bwrap")
    for _ in range(20):  # the kernel may take a moment to tear the processes down
        if not any(processes_with(s) for s in sleepers):
            break
        await asyncio.sleep(0.05)
    assert [processes_with(s) for s in sleepers] == [[], []]


@pytest.mark.parametrize("isolation", ["bwrap", "none"])
async def test_background_jobs_do_not_outlive_a_finished_step(workspace: Path, isolation: str) -> None:
    sleeper = marker()

    result, collected = await run_collecting(
        SandboxSpec(f"sleep {sleeper} & echo left-behind", workspace, isolation=isolation)  # type: ignore[arg-type]
    )

    assert result.exit_code == 0 and collected.data == b"left-behind\n"
    assert result.duration < 5
    for _ in range(20):
        if not processes_with(sleeper):
            break
        await asyncio.sleep(0.05)
    assert processes_with(sleeper) == []


async def test_cancelling_the_awaiting_task_kills_the_step(workspace: Path) -> None:
    sleeper = marker()
    task = asyncio.ensure_future(run(SandboxSpec(f"sleep {sleeper}", workspace)))
    for _ in range(100):
        if processes_with(sleeper):
            break
        await asyncio.sleep(0.05)

    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task

    for _ in range(20):
        if not processes_with(sleeper):
            break
        await asyncio.sleep(0.05)
    assert processes_with(sleeper) == []


async def test_an_output_callback_error_stops_the_step_and_propagates(workspace: Path) -> None:
    sleeper = marker()

    async def broken(_: bytes) -> None:
        raise RuntimeError("log store down")

    with pytest.raises(RuntimeError, match="log store down"):
        await run(SandboxSpec(f"echo hi; sleep {sleeper}", workspace, grace=1), on_output=broken)

    assert processes_with(sleeper) == []


async def test_a_sandbox_that_cannot_start_is_an_infra_failure_naming_bubblewrap(workspace: Path) -> None:
    # A hidden path whose parent does not exist cannot be made on the read-only root: bwrap itself fails.
    spec = SandboxSpec("echo never", workspace, hidden=(Path("/nonexistent-taskmaster/dir"),))

    result, collected = await run_collecting(spec)

    assert result.failure_reason == "infra" and result.exit_code is None
    assert result.reason is not None and result.reason.startswith("sandbox: bwrap:")
    assert "/nonexistent-taskmaster" in result.reason
    assert b"never" not in collected.data


async def test_a_workspace_the_sandbox_user_cannot_reach_is_an_infra_failure(tmp_path: Path) -> None:
    private = tmp_path / "ws"  # under pytest's root-only directory
    private.mkdir()

    result = await run(SandboxSpec("true", private))

    assert result.failure_reason == "infra"
    assert result.reason is not None and "not reachable by the sandbox user" in result.reason


async def test_a_missing_workspace_is_an_infra_failure(reachable_dir: Path) -> None:
    result = await run(SandboxSpec("true", reachable_dir / "missing"))

    assert result.failure_reason == "infra" and result.reason is not None and "not a directory" in result.reason


async def test_without_bubblewrap_the_step_runs_unsandboxed_with_one_warning(
    workspace: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    empty = tmp_path / "empty-path"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))  # no bwrap (nor prlimit: limits are set in the child instead)
    capture = LogCapture()
    configure_logging("info", "json", stream=capture)
    try:
        result, collected = await run_collecting(
            SandboxSpec("ulimit -p; echo ran-in=$(pwd)", workspace, limits=Limits(max_processes=77))
        )
    finally:
        configure_logging("warning", "auto", stream=LogCapture())

    assert result.exit_code == 0 and result.sandboxed is False
    assert collected.data.decode().splitlines() == ["77", f"ran-in={workspace}"]
    warnings = [record for record in capture.records() if record["level"] == "warning"]
    assert len(warnings) == 1 and "bubblewrap" in warnings[0]["event"]


async def test_isolation_bwrap_refuses_to_run_without_bubblewrap(
    workspace: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))

    result = await run(SandboxSpec("true", workspace, isolation="bwrap"))

    assert result.failure_reason == "infra" and result.reason is not None and "bwrap" in result.reason


async def test_files_a_step_made_read_only_are_still_removed(workspace: Path) -> None:
    result, _ = await run_collecting(
        SandboxSpec("mkdir -p a/b && echo x > a/b/f && chmod 0444 a/b/f && chmod 0555 a/b a", workspace)
    )
    assert result.exit_code == 0

    await remove_tree(workspace)

    assert not workspace.exists()
