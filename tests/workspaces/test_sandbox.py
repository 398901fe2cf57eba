"""The step sandbox with real bubblewrap and real processes: output, isolation, limits, timeout and cancel."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import secrets
import shutil
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from taskmaster.core.logging import configure_logging
from taskmaster.workspaces.cleanup import remove_tree
from taskmaster.workspaces.errors import SandboxUnavailable
from taskmaster.workspaces.git_cache import MirrorCache
from taskmaster.workspaces.sandbox import SANDBOX_UID, Limits, SandboxResult, SandboxSpec, _copy_readable, run
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


def host_addresses() -> list[str]:
    """The host's own IPv4 addresses besides loopback, as the kernel lists its local routes."""
    addresses = set()
    last = ""
    for line in Path("/proc/net/fib_trie").read_text().splitlines():
        text = line.strip()
        if text.startswith("|--"):
            last = text[3:].strip()
        elif text == "/32 host LOCAL" and not last.startswith("127."):
            addresses.add(last)
    return sorted(addresses)


@pytest.fixture
def wide_listener() -> Iterator[tuple[int, list[bytes]]]:
    """A TCP server on every address of the host (0.0.0.0) that records what each connection sends."""
    server = socket.socket()
    server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    server.bind(("0.0.0.0", 0))
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
            server.shutdown(socket.SHUT_RDWR)
        server.close()
        thread.join(timeout=5)


async def test_network_is_cut_off_unless_asked_for(workspace: Path, listener: tuple[int, list[bytes]]) -> None:
    port, received = listener
    connect = f"exec 3<>/dev/tcp/127.0.0.1/{port} && echo hello-from-step >&3 && echo connected"
    command = f"bash -c '{connect}'; ip -o link 2>/dev/null | grep -c tap0"

    isolated, isolated_out = await run_collecting(SandboxSpec(command, workspace))

    # Same address, same port: inside its own namespace 127.0.0.1 is a loopback with nothing listening.
    assert isolated.exit_code != 0 and b"connected" not in isolated_out.data
    assert isolated_out.data.decode().splitlines()[-1] == "0"  # no interface but its own loopback
    assert received == []


async def test_loopback_from_a_network_true_step_does_not_reach_the_host(
    workspace: Path, listener: tuple[int, list[bytes]], wide_listener: tuple[int, list[bytes]]
) -> None:
    # The issue: a `network: true` step shared the host's network and reached the API, PostgreSQL and AgentAPI on
    # 127.0.0.1. Now: the host's loopback (directly, and through slirp's gateway 10.0.2.2), and every address of
    # the host (a service on 0.0.0.0), are unreachable, while the step has an interface, a default route and DNS.
    local_port, local_received = listener
    wide_port, wide_received = wide_listener
    targets = [f"127.0.0.1/{local_port}", f"10.0.2.2/{local_port}", f"127.0.0.1/{wide_port}", f"10.0.2.2/{wide_port}"]
    targets += [f"{address}/{wide_port}" for address in host_addresses()]
    assert len(targets) > 4  # the host has an address besides loopback
    probes = "; ".join(
        f"timeout 5 bash -c 'exec 3<>/dev/tcp/{target} && echo step >&3' 2>/dev/null && echo reached {target}"
        for target in targets
    )
    command = f"{probes}; cat /etc/resolv.conf; cat /proc/net/route; echo done"

    result, collected = await run_collecting(SandboxSpec(command, workspace, network=True))

    out = collected.data.decode()
    assert result.exit_code == 0 and result.sandboxed and out.endswith("done\n"), out
    assert "reached" not in out, out
    assert local_received == [] and wide_received == []
    assert "nameserver 10.0.2.3" in out  # slirp4netns' DNS forwarder: names resolve through the host's resolver
    default_route = [line.split() for line in out.splitlines() if line.startswith("tap0")]
    assert any(fields[1] == "00000000" and fields[2] == "0202000A" for fields in default_route), out


def listening_unix_sockets() -> list[str]:
    """Paths of the Unix sockets listening on the host (PostgreSQL's, MySQL's, ... whatever runs here)."""
    paths = []
    for line in Path("/proc/net/unix").read_text().splitlines()[1:]:
        fields = line.split()
        if len(fields) >= 8 and fields[5] == "01" and fields[7].startswith("/"):  # state LISTEN, a path name
            paths.append(fields[7])
    return sorted(set(paths))


@pytest.mark.parametrize("network", [False, True])
async def test_unix_socket_connect_to_any_host_socket_fails(
    workspace: Path, reachable_dir: Path, network: bool
) -> None:
    # The issue: with `network: false` a step connected to /var/run/postgresql (trust authentication) and made
    # itself an admin token. Our own sockets, in a directory anyone may enter and in /run, stand for any service.
    mine = [reachable_dir / "service.sock", Path(f"/run/taskmaster-test-{secrets.token_hex(4)}.sock")]
    servers = []
    for path in mine:
        server = socket.socket(socket.AF_UNIX)
        server.bind(str(path))
        path.chmod(0o777)
        server.listen(1)
        servers.append(server)
    try:
        sockets = listening_unix_sockets()
        assert {str(path) for path in mine} <= set(sockets)
        probe = (
            "import json, os, socket\n"
            "for path in json.loads(os.environ['SOCKETS']):\n"
            "    s = socket.socket(socket.AF_UNIX)\n"
            "    try:\n"
            "        s.connect(path)\n"
            "        print('connected', path)\n"
            "    except OSError as exc:\n"
            "        print('refused', exc.errno)\n"
            "print('checked', len(json.loads(os.environ['SOCKETS'])))\n"
        )
        spec = SandboxSpec(
            'python3 -c "$PROBE"', workspace, env={"SOCKETS": json.dumps(sockets), "PROBE": probe}, network=network
        )

        result, collected = await run_collecting(spec)

        out = collected.data.decode()
        assert result.exit_code == 0 and f"checked {len(sockets)}" in out, out
        assert "connected" not in out, out
    finally:
        for server in servers:
            server.close()
        for path in mine:
            path.unlink(missing_ok=True)


async def test_the_workspace_is_writable_and_the_rest_of_the_host_is_not(workspace: Path, tmp_path: Path) -> None:
    host_file = Path("/var/tmp") / f"taskmaster-test-{secrets.token_hex(6)}"
    host_file.write_text("original\n")
    host_file.chmod(0o666)  # even file permissions would allow it: the host's /var/tmp is not the step's
    private_file = tmp_path / "host.txt"
    private_file.write_text("original\n")
    try:
        spec = SandboxSpec(
            f"echo made > built.txt && mkdir -p out/deep && echo x > out/deep/y; "
            f"echo pwned > /usr/taskmaster-test; echo a=$?; echo pwned > {private_file}; echo b=$?; "
            f"echo pwned > /etc/taskmaster-test; echo c=$?; touch /tmp/scratch; echo d=$?; "
            f"echo pwned > {host_file}; cat {host_file}; ls /home /root /srv /var/lib 2>&1 | grep -c 'No such'",
            workspace,
        )
        result, collected = await run_collecting(spec)

        assert result.exit_code == 0
        out = collected.data.decode()
        assert "a=0" not in out and "b=0" not in out and "c=0" not in out and "d=0" in out
        assert "Read-only file system" in out
        assert out.splitlines()[-2:] == ["pwned", "4"]  # the step's own /var/tmp; none of the host's directories
        assert host_file.read_text() == "original\n" and private_file.read_text() == "original\n"
        assert not Path("/etc/taskmaster-test").exists() and not Path("/usr/taskmaster-test").exists()
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
        SandboxSpec(
            f"ls -A {secret_dir} 2>/dev/null | wc -l; cat {secret_dir}/secret.txt", workspace, hidden=(secret_dir,)
        )
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
    # A hidden path whose parent does not exist cannot be made in the read-only /usr: bwrap itself fails.
    spec = SandboxSpec("echo never", workspace, hidden=(Path("/usr/nonexistent-taskmaster/dir"),))

    result, collected = await run_collecting(spec)

    assert result.failure_reason == "infra" and result.exit_code is None
    assert result.reason is not None and result.reason.startswith("sandbox: bwrap:")
    assert "/nonexistent-taskmaster" in result.reason
    assert b"never" not in collected.data


async def test_a_workspace_under_a_private_directory_runs_at_a_fixed_path(tmp_path: Path) -> None:
    private = tmp_path / "home" / "ws"  # under pytest's root-only directory, below one of mode 0700 too
    private.mkdir(parents=True)
    (tmp_path / "home").chmod(0o700)
    (private / "input.txt").write_text("from the checkout\n")
    mirror_objects = tmp_path / "home" / "objects"
    mirror_objects.mkdir()
    (mirror_objects / "pack").write_text("objects\n")

    result, collected = await run_collecting(
        SandboxSpec(
            f"pwd; cat input.txt; echo made > output.txt; cat {mirror_objects}/pack",
            private,
            read_only=(mirror_objects,),
        )
    )

    assert result.ok and result.sandboxed, collected.data
    assert collected.data.decode().splitlines() == ["/workspace", "from the checkout", "objects"]
    assert (private / "output.txt").read_text() == "made\n"


async def test_a_missing_workspace_is_an_infra_failure(reachable_dir: Path) -> None:
    result = await run(SandboxSpec("true", reachable_dir / "missing"))

    assert result.failure_reason == "infra" and result.reason is not None and "not a directory" in result.reason


async def test_with_the_sandbox_off_the_step_runs_unsandboxed_with_one_warning(
    workspace: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    empty = tmp_path / "empty-path"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))  # no bwrap (nor prlimit: limits are set in the child instead)
    capture = LogCapture()
    configure_logging("info", "json", stream=capture)
    try:
        result, collected = await run_collecting(
            SandboxSpec("ulimit -p; echo ran-in=$(pwd)", workspace, limits=Limits(max_processes=77), isolation="none")
        )
    finally:
        configure_logging("warning", "auto", stream=LogCapture())

    assert result.exit_code == 0 and result.sandboxed is False
    assert collected.data.decode().splitlines() == ["77", f"ran-in={workspace}"]
    warnings = [record for record in capture.records() if record["level"] == "warning"]
    assert len(warnings) == 1 and "without a sandbox" in warnings[0]["event"]


async def test_sandbox_required_and_bubblewrap_missing_raises_with_the_install_hint_and_runs_nothing(
    workspace: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))

    with pytest.raises(SandboxUnavailable) as raised:
        await run(SandboxSpec("touch ran", workspace))

    assert "bwrap (bubblewrap)" in raised.value.detail and "apt-get install bubblewrap" in raised.value.detail
    assert 'executor.sandbox = "off"' in raised.value.detail
    assert not (workspace / "ran").exists()


async def test_a_network_step_without_slirp4netns_fails_closed(
    workspace: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # Only bwrap and the util-linux tools on PATH: no slirp4netns. The step must not get the host's network.
    tools = tmp_path / "tools"
    tools.mkdir()
    for tool in ("bwrap", "prlimit", "setpriv", "nsenter", "ip"):
        found = shutil.which(tool)
        assert found is not None
        (tools / tool).symlink_to(found)
    monkeypatch.setenv("PATH", str(tools))

    with pytest.raises(SandboxUnavailable) as raised:
        await run(SandboxSpec("touch ran", workspace, network=True))
    offline = await run(SandboxSpec("touch offline", workspace))

    assert "slirp4netns" in raised.value.detail and "network: true" in raised.value.detail
    assert not (workspace / "ran").exists()
    assert offline.ok and (workspace / "offline").exists()  # steps without network still run


async def test_files_a_step_made_read_only_are_still_removed(workspace: Path) -> None:
    result, _ = await run_collecting(
        SandboxSpec("mkdir -p a/b && echo x > a/b/f && chmod 0444 a/b/f && chmod 0555 a/b a", workspace)
    )
    assert result.exit_code == 0

    await remove_tree(workspace)

    assert not workspace.exists()


async def test_disk_cap_a_workspace_growing_past_the_limit_is_stopped_and_says_so(workspace: Path) -> None:
    # Each file is under the cap; together they pass it: the watchdog, not the file-size limit, stops the step.
    spec = SandboxSpec(
        "for i in 1 2 3 4 5 6 7 8; do head -c 8M /dev/zero > part-$i; sleep 0.5; done; echo wrote-all",
        workspace,
        limits=Limits(disk_bytes=20 * 1024 * 1024),
        grace=1,
    )

    result, collected = await run_collecting(spec)

    assert result.reason == "limit: disk" and result.failure_reason == "code" and not result.ok
    assert b"wrote-all" not in collected.data
    assert len(list(workspace.glob("part-*"))) < 8


async def test_disk_cap_one_file_larger_than_the_limit_fails_the_step_and_says_so(workspace: Path) -> None:
    spec = SandboxSpec("head -c 40M /dev/zero > big", workspace, limits=Limits(disk_bytes=16 * 1024 * 1024))

    result, _ = await run_collecting(spec)

    assert result.reason == "limit: disk" and result.failure_reason == "code"
    assert (workspace / "big").stat().st_size <= 16 * 1024 * 1024


async def test_memory_cap_counts_the_step_processes_together(workspace: Path) -> None:
    # Four processes of 96 MiB each: every one is under the per-process limit, together they are above it.
    hold = "/usr/bin/python3 -c 'import time; x = bytearray(96 * 1024 * 1024); time.sleep(30)'"
    spec = SandboxSpec(
        f"for i in 1 2 3 4; do {hold} & done; wait; echo finished",
        workspace,
        limits=Limits(memory_bytes=256 * 1024 * 1024),
        grace=1,
    )

    result, collected = await run_collecting(spec)

    assert result.reason == "limit: memory" and result.failure_reason == "code"
    assert b"finished" not in collected.data and result.duration < 20


async def test_tmp_is_bounded_and_a_full_tmp_is_named(workspace: Path) -> None:
    spec = SandboxSpec("head -c 32M /dev/zero > /tmp/fill", workspace, limits=Limits(tmp_bytes=8 * 1024 * 1024))

    result, collected = await run_collecting(spec)

    assert b"No space left on device" in collected.data
    assert result.reason == "limit: tmp" and result.failure_reason == "code"


def test_the_steps_etc_copies_only_what_every_user_may_read(tmp_path: Path) -> None:
    source = tmp_path / "etc-ssl"
    (source / "private").mkdir(parents=True)
    (source / "private").chmod(0o700)
    (source / "private" / "server.key").write_text("secret key\n")
    (source / "openssl.cnf").write_text("public\n")
    (source / "openssl.cnf").chmod(0o644)
    (source / "root-only.conf").write_text("password=x\n")
    (source / "root-only.conf").chmod(0o600)
    (source / "link.pem").symlink_to("/usr/share/ca-certificates/x.crt")
    source.chmod(0o755)

    _copy_readable(str(source), str(tmp_path / "copy"))

    copy = tmp_path / "copy"
    assert sorted(path.name for path in copy.iterdir()) == ["link.pem", "openssl.cnf"]
    assert (copy / "openssl.cnf").read_text() == "public\n"
    assert os.readlink(copy / "link.pem") == "/usr/share/ca-certificates/x.crt"


async def test_the_steps_etc_resolves_users_and_certificates(workspace: Path) -> None:
    result, collected = await run_collecting(
        SandboxSpec(
            "id -un; getent passwd root | cut -d: -f1; test -s /etc/ssl/certs/ca-certificates.crt && echo certs; "
            "ls /etc/shadow /etc/ssl/private 2>&1 | grep -c 'No such'",
            workspace,
        )
    )

    assert result.ok and collected.data.decode().split() == ["nobody", "root", "certs", "2"], collected.data


async def test_cores_limit_puts_the_step_in_a_cpu_cgroup_with_its_quota(workspace: Path) -> None:
    # This machine has a writable cgroup v1 cpu controller (as root); the step gets 0.25 of a core.
    root = Path("/sys/fs/cgroup/cpu/taskmaster")
    burn = "python3 -c 'import os, time\nend = time.time() + 2\nwhile time.time() < end: pass\nprint(os.times().user)'"
    task = asyncio.ensure_future(run_collecting(SandboxSpec(burn, workspace, limits=Limits(cpus=0.25))))
    seen: list[tuple[str, str]] = []
    for _ in range(100):
        await asyncio.sleep(0.05)
        for group in root.glob("step-*") if root.is_dir() else []:
            with contextlib.suppress(OSError):
                if (group / "cgroup.procs").read_text().strip():
                    seen.append(((group / "cpu.cfs_quota_us").read_text().strip(), group.name))
        if seen:
            break

    result, collected = await task

    assert result.ok, collected.data
    assert seen and seen[0][0] == "25000"  # 0.25 x the 100 ms period
    assert float(collected.data.decode().split()[-1]) < 1.0  # 2 s of busy loop got at most about half a second
    assert not (root / seen[0][1]).exists()  # removed after the step
