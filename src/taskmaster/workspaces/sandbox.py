"""Run one step's shell command in its workspace: under bubblewrap when present, with resource limits, and stopped
(SIGTERM, a grace period, then SIGKILL) on timeout, cancel, or a runaway process count.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import resource
import shutil
import signal
import stat
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import structlog

from taskmaster.core.errors import InvalidInput
from taskmaster.core.outcomes import FailureReason, Outcome

log = structlog.stdlib.get_logger("taskmaster.workspaces.sandbox")

# The sandboxed user when Taskmaster runs as root ("nobody"). Root cannot be limited: RLIMIT_NPROC is not enforced
# for uid 0 (the kernel exempts INIT_USER), and `bwrap --unshare-user --uid N` run by root still maps N to uid 0
# outside, so a fork bomb would run unchecked. Started as an unprivileged user, bwrap makes a user namespace of its
# own, and since Linux 5.14 RLIMIT_NPROC is counted per (user namespace, uid): the limit, applied inside the
# namespace by prlimit, counts this sandbox's tasks only, not every process "nobody" owns on the host. It also keeps
# root-only files (keys, the database) unreadable through the read-only view of the host. The pids cgroup would
# be as good, but it is rarely writable inside containers, and user namespaces work wherever bwrap does.
SANDBOX_UID = 65534
SANDBOX_GID = 65534

OutputCallback = Callable[[bytes], Awaitable[None]]

_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
_SHELL = "/bin/sh"
_PRIVATE_TMP = "/tmp"  # noqa: S108 - a fresh tmpfs inside the sandbox, seen by this step only
# The outer shell sends the step's stderr into its stdout, so the process's own stderr only carries bwrap's and
# prlimit's messages: anything there means the sandbox, not the step, failed.
_WRAPPER = 'exec 2>&1; exec /bin/sh -c "$0"'
_READ_CHUNK = 65536
_TAIL_BYTES = 4096
_DIAGNOSTICS_LIMIT = 65536
_POLL_SECONDS = 0.2
# A build may touch the process limit for an instant; one that stays there this long is a fork bomb (bash retries
# failed forks forever, so it never ends by itself).
_AT_LIMIT_SECONDS = 1.0
_DRAIN_SECONDS = 5.0
_FORK_FAILED = re.compile(rb"can(?:no|')t fork|fork: retry|fork failed|fork: resource temporarily unavailable", re.I)
_OUT_OF_MEMORY = re.compile(rb"MemoryError|cannot allocate memory|out of memory|std::bad_alloc|memory exhausted", re.I)


@dataclass(frozen=True, slots=True)
class Limits:
    """Resource limits of one step; None means no limit.

    `cpu_seconds`: CPU time of each process (SIGXCPU, then SIGKILL a second later). `memory_bytes`: the data
    segment of each process (RLIMIT_DATA: heap and private mappings, so runtimes that reserve large address
    ranges, like the JVM or V8, still start), also the size of the private /tmp. `max_processes`: tasks (threads
    count, as for the kernel's RLIMIT_NPROC) in the sandbox at once, the sandbox's init included; a step that
    stays at the limit is stopped. `max_output_bytes`: output forwarded to `on_output`; the rest is drained and
    dropped.
    """

    cpu_seconds: int | None = None
    memory_bytes: int | None = None
    max_processes: int | None = 1024
    max_output_bytes: int | None = 10 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class SandboxSpec:
    """What to run and how.

    `command` runs under `/bin/sh -c` with `workspace` as working directory. The environment is exactly `env` on
    top of PATH, HOME (a private /tmp under bubblewrap) and LANG. `network` False gives the step a network
    namespace of its own (only its own loopback). `timeout` (seconds, None for none) ends the step with SIGTERM,
    and SIGKILL `grace` seconds later. `hidden` paths are covered by empty directories inside the sandbox (e.g.
    the workspace root holding other pipelines' checkouts, or the state directory). `read_only` paths are shown
    read-only at their own place even when under a hidden path or /tmp (e.g. the mirror objects a checkout reads
    through its alternates file, so that git works in the step). `isolation`: "auto" uses
    bubblewrap when installed and otherwise runs unsandboxed with a warning; "bwrap" requires it; "none" never uses
    it.
    """

    command: str
    workspace: Path
    env: Mapping[str, str] = field(default_factory=dict)
    network: bool = False
    timeout: float | None = 3600.0
    grace: float = 5.0
    limits: Limits = Limits()
    hidden: tuple[Path, ...] = ()
    read_only: tuple[Path, ...] = ()
    isolation: Literal["auto", "bwrap", "none"] = "auto"

    def __post_init__(self) -> None:
        for name, value in self.env.items():
            if not name or "=" in name or "\0" in name or "\0" in value:
                raise InvalidInput(f"invalid environment variable for the sandbox: {name!r}")
        if "\0" in self.command:
            raise InvalidInput("the command contains a NUL byte")
        if self.grace < 0 or (self.timeout is not None and self.timeout <= 0):
            raise InvalidInput("timeout must be positive and grace not negative")


SandboxResult = Outcome
"""How a step ended (`core.outcomes.Outcome`): `reason` None, "timeout", "canceled", "limit: processes",
"limit: cpu", "limit: memory" (the last from the step's own error output, e.g. MemoryError) or "sandbox: <why>";
`failure_reason` "code" for the step's own failures, limits included, and "infra" when the sandbox could not run it
(retry); `sandboxed` False when no bubblewrap was used."""


async def run(
    spec: SandboxSpec,
    *,
    on_output: OutputCallback | None = None,
    cancel: asyncio.Event | None = None,
) -> SandboxResult:
    """Run `spec.command` and return how it ended; never raises for the step's or the sandbox's failures.

    Output (stdout and stderr combined, in order) goes to `on_output` chunk by chunk as it is produced, up to
    `max_output_bytes`, then one truncation line. Setting `cancel` stops the step like a timeout does. If the
    awaiting task is itself cancelled, the step is killed at once. An exception raised by `on_output` stops the
    step and is re-raised.
    """
    started = time.monotonic()
    bwrap = shutil.which("bwrap") if spec.isolation != "none" else None
    if bwrap is None and spec.isolation == "bwrap":
        return _infra(spec, started, "sandbox: bubblewrap (bwrap) is required but not installed", sandboxed=True)
    if bwrap is None and spec.isolation == "auto":
        log.warning("bubblewrap not found: running the step without a sandbox", workspace=str(spec.workspace))
    problem = await asyncio.to_thread(_prepare_workspace, spec.workspace, bwrap is not None)
    if problem:
        return _infra(spec, started, f"sandbox: {problem}", sandboxed=bwrap is not None)
    step = _Step(spec, bwrap, started)
    return await step.run(on_output, cancel)


class _Step:
    """One run of a spec: the process, its output pumps, the process-count watchdog and the stop sequence."""

    def __init__(self, spec: SandboxSpec, bwrap: str | None, started: float) -> None:
        self.spec = spec
        self.bwrap = bwrap
        self.started = started
        self.proc: asyncio.subprocess.Process | None = None
        self.home: str | None = None
        self.pidns: str | None = None  # "pid:[inode]" of the sandbox, as /proc/<pid>/ns/pid reads
        self.init_pid: int | None = None  # host pid of the sandbox's init (pid 1 inside)
        self.init_fd: int | None = None  # a pidfd on it: signals reach that process even if the pid is reused
        self.forwarded = 0
        self.total = 0
        self.tail = b""
        self.truncated = False
        self.timed_out = False
        self.canceled = False
        self.limit_hit = False
        self.peak_tasks = 0

    async def run(self, on_output: OutputCallback | None, cancel: asyncio.Event | None) -> SandboxResult:
        try:
            argv, kwargs, info_read = self._launch()
        except (_SetupError, OSError) as exc:
            return _infra(self.spec, self.started, f"sandbox: {exc}", sandboxed=self.bwrap is not None)
        try:
            try:
                self.proc = await asyncio.create_subprocess_exec(*argv, **kwargs)
            except OSError as exc:
                if info_read is not None:
                    os.close(info_read)
                return _infra(self.spec, self.started, f"sandbox: cannot start {argv[0]}: {exc}", self.sandboxed)
            finally:
                for fd in kwargs.get("pass_fds", ()):
                    os.close(fd)
            return await self._supervise(on_output, cancel, info_read)
        finally:
            if self.init_fd is not None:
                os.close(self.init_fd)
            if self.home is not None:
                shutil.rmtree(self.home, ignore_errors=True)

    @property
    def sandboxed(self) -> bool:
        return self.bwrap is not None

    def _launch(self) -> tuple[list[str], dict[str, Any], int | None]:
        spec, limits = self.spec, self.spec.limits
        workspace = str(spec.workspace.absolute())
        rlimits = _rlimits(limits)
        prlimit = shutil.which("prlimit")
        kwargs: dict[str, Any] = {
            "stdin": asyncio.subprocess.DEVNULL,
            "stdout": asyncio.subprocess.PIPE,
            "stderr": asyncio.subprocess.PIPE,
            "start_new_session": True,
        }
        if prlimit:
            limit_argv = [prlimit, *(f"--{name}={soft}:{hard}" for name, (_, soft, hard) in rlimits.items()), "--"]
        elif self.bwrap:
            # The process limit must be set inside bwrap's user namespace to count this sandbox alone.
            raise _SetupError("prlimit (util-linux) is needed to apply limits inside bubblewrap")
        else:
            limit_argv = []
            kwargs["preexec_fn"] = _rlimit_setter(rlimits)
        inner = [*limit_argv, _SHELL, "-c", _WRAPPER, spec.command]
        base = {"PATH": _PATH, "LANG": "C.UTF-8"}
        if not self.bwrap:
            self.home = tempfile.mkdtemp(prefix="taskmaster-home-")
            kwargs["cwd"] = workspace
            kwargs["env"] = {**base, "HOME": self.home, **spec.env}
            return inner, kwargs, None
        # The environment goes through the process environment, not `--setenv` arguments: a command line can be
        # read by every user in `ps`, an environment only by its owner and root.
        kwargs["env"] = {**base, "HOME": _PRIVATE_TMP, **spec.env}
        kwargs["cwd"] = "/"
        # As root, bubblewrap itself runs as the sandbox user. Dropped by `setpriv` rather than by the `user=`
        # argument of asyncio's subprocess functions, which uvloop (the server's event loop) does not accept.
        drop: list[str] = []
        if os.geteuid() == 0:
            setpriv = shutil.which("setpriv")
            if setpriv is None:
                raise _SetupError("setpriv (util-linux) is needed to run steps as an unprivileged user")
            drop = [setpriv, f"--reuid={SANDBOX_UID}", f"--regid={SANDBOX_GID}", "--clear-groups"]
        info_read, info_write = os.pipe()
        kwargs["pass_fds"] = (info_write,)
        tmp_size = ["--size", str(limits.memory_bytes)] if limits.memory_bytes else []
        argv = [
            *drop,
            self.bwrap,
            "--unshare-user",
            "--unshare-pid",
            "--unshare-ipc",
            "--unshare-uts",
            "--unshare-cgroup-try",
            *([] if spec.network else ["--unshare-net"]),
            "--hostname",
            "taskmaster-sandbox",
            "--ro-bind",
            "/",
            "/",
            "--dev",
            "/dev",
            "--proc",
            "/proc",
            *tmp_size,
            "--tmpfs",
            _PRIVATE_TMP,
            *(arg for path in spec.hidden for arg in ("--tmpfs", str(path.absolute()))),
            # After the hidden paths and /tmp, so that these show through them.
            *(arg for path in spec.read_only for arg in ("--ro-bind", str(path.absolute()), str(path.absolute()))),
            "--bind",
            workspace,
            workspace,
            "--chdir",
            workspace,
            "--die-with-parent",
            "--new-session",
            "--info-fd",
            str(info_write),
            "--",
            *inner,
        ]
        return argv, kwargs, info_read

    async def _supervise(
        self, on_output: OutputCallback | None, cancel: asyncio.Event | None, info_read: int | None
    ) -> SandboxResult:
        proc = self.proc
        assert proc is not None and proc.stdout is not None and proc.stderr is not None
        waiter = asyncio.ensure_future(_wait_exit(proc))
        pump = asyncio.ensure_future(self._pump(proc.stdout, on_output))
        diagnostics = asyncio.ensure_future(_read_capped(proc.stderr, _DIAGNOSTICS_LIMIT))
        tasks: set[asyncio.Future[Any]] = {waiter, pump}
        info = asyncio.ensure_future(self._read_info(info_read)) if info_read is not None else None
        watch = asyncio.ensure_future(self._watch()) if self.spec.limits.max_processes else None
        stop = asyncio.ensure_future(cancel.wait()) if cancel is not None else None
        tasks |= {task for task in (watch, stop) if task is not None}
        error: BaseException | None = None
        try:
            deadline = None if self.spec.timeout is None else time.monotonic() + self.spec.timeout
            while True:
                remaining = None if deadline is None else max(0.0, deadline - time.monotonic())
                done, _ = await asyncio.wait(tasks, timeout=remaining, return_when=asyncio.FIRST_COMPLETED)
                if waiter in done:
                    break
                if pump in done and pump.exception() is None:
                    tasks.discard(pump)  # the step closed its output but runs on
                    continue
                if pump in done:
                    error = pump.exception()
                elif stop is not None and stop in done:
                    self.canceled = True
                elif watch is not None and watch in done:
                    self.limit_hit = True
                else:
                    self.timed_out = True
                if info is not None:
                    await asyncio.wait({info}, timeout=1.0)  # the init's pid, to signal the sandbox's members
                await self._stop(waiter)
                break
            await waiter
            if not self.sandboxed:
                await asyncio.to_thread(self._kill_session, signal.SIGKILL)  # the step's leftover background jobs
            done, _ = await asyncio.wait({pump}, timeout=_DRAIN_SECONDS)
            if not done:
                log.warning("output still open after the step ended", workspace=str(self.spec.workspace))
                pump.cancel()
            elif pump.exception() is not None and error is None:
                error = pump.exception()
            done, _ = await asyncio.wait({diagnostics}, timeout=_DRAIN_SECONDS)
            diag = diagnostics.result() if done else b""
        finally:
            for task in (waiter, pump, diagnostics, info, watch, stop):
                if task is not None and not task.done():
                    task.cancel()
            if proc.returncode is None:  # run() itself was cancelled, or failed: nothing may outlive it
                self._signal_all(signal.SIGKILL)
                with contextlib.suppress(ProcessLookupError):
                    proc.kill()
                await asyncio.shield(_wait_exit(proc))
        if error is not None:
            raise error
        assert proc.returncode is not None
        return self._result(proc.returncode, diag)

    async def _pump(self, stream: asyncio.StreamReader, on_output: OutputCallback | None) -> None:
        cap = self.spec.limits.max_output_bytes
        while chunk := await stream.read(_READ_CHUNK):
            self.total += len(chunk)
            self.tail = (self.tail + chunk)[-_TAIL_BYTES:]
            if self.truncated:
                continue  # keep draining, so the step never blocks on a full pipe
            if cap is not None and self.forwarded + len(chunk) > cap:
                part = chunk[: cap - self.forwarded]
                self.forwarded = cap
                self.truncated = True
                marker = f"\n[taskmaster] output truncated: more than {cap} bytes; the rest is not kept\n".encode()
                for piece in (part, marker):
                    if piece and on_output is not None:
                        await on_output(piece)
                continue
            self.forwarded += len(chunk)
            if on_output is not None:
                await on_output(chunk)

    async def _read_info(self, fd: int | None) -> None:
        """bwrap's --info-fd JSON: the host pid of the sandbox's init and the inode of its pid namespace."""
        assert fd is not None
        data = await asyncio.to_thread(_read_all_and_close, fd)
        try:
            info = json.loads(data)
            init_pid = int(info["child-pid"])
            pidns = f"pid:[{int(info['pid-namespace'])}]"
        except (ValueError, KeyError, TypeError):
            return  # bwrap failed before starting the sandbox; its stderr says why
        with contextlib.suppress(OSError):
            self.init_fd = os.pidfd_open(init_pid)
            self.init_pid, self.pidns = init_pid, pidns

    async def _watch(self) -> None:
        """Return when the step has stayed at its process limit for `_AT_LIMIT_SECONDS`."""
        limit = self.spec.limits.max_processes
        assert limit is not None
        since: float | None = None
        while True:
            await asyncio.sleep(_POLL_SECONDS)
            tasks = await asyncio.to_thread(self._count_tasks)
            self.peak_tasks = max(self.peak_tasks, tasks)
            if tasks < limit:
                since = None
                continue
            now = time.monotonic()
            since = since if since is not None else now
            if now - since >= _AT_LIMIT_SECONDS:
                return

    async def _stop(self, waiter: asyncio.Future[int]) -> None:
        """SIGTERM every process of the step, then SIGKILL whatever is left after the grace period."""
        await asyncio.to_thread(self._signal_all, signal.SIGTERM)
        done, _ = await asyncio.wait({waiter}, timeout=self.spec.grace)
        if not done:
            await asyncio.to_thread(self._signal_all, signal.SIGKILL)
            done, _ = await asyncio.wait({waiter}, timeout=_DRAIN_SECONDS)
            if not done:  # a process that survives SIGKILL this long is stuck in the kernel; stop waiting politely
                log.error("step process did not die after SIGKILL", pid=self.proc.pid if self.proc else None)

    def _signal_all(self, sig: signal.Signals) -> None:
        proc = self.proc
        if proc is None or proc.returncode is not None:
            return
        if not self.sandboxed:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, sig)
            if sig == signal.SIGKILL:
                self._kill_session(sig)
            return
        if self.pidns is None or self.init_fd is None:
            # No sandbox yet: killing bwrap itself takes the half-made sandbox with it (--die-with-parent).
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGKILL)
            return
        if sig == signal.SIGKILL:
            # The init's death ends every process in its pid namespace; bwrap then exits.
            with contextlib.suppress(OSError):
                signal.pidfd_send_signal(self.init_fd, signal.SIGKILL)
            return
        # Not to bwrap's process group: bwrap does not forward SIGTERM, it dies of it, and --die-with-parent then
        # SIGKILLs the sandbox with no grace. The step's processes get the signal directly instead.
        for pid in _namespace_members(self.pidns):
            if pid != self.init_pid:
                _send(pid, sig, lambda pid: _in_namespace(pid, self.pidns))

    def _kill_session(self, sig: signal.Signals) -> None:
        """Unsandboxed: signal every process still in the step's session (background jobs, detached pipelines)."""
        if self.proc is None:
            return
        session = self.proc.pid
        for pid in _session_members(session):
            _send(pid, sig, lambda pid: _session_of(pid) == session)

    def _count_tasks(self) -> int:
        if self.sandboxed:
            pids = _namespace_members(self.pidns) if self.pidns else []
        else:
            pids = _session_members(self.proc.pid) if self.proc else []
        return sum(_threads(pid) for pid in pids)

    def _result(self, returncode: int, diagnostics: bytes) -> SandboxResult:
        spec = self.spec
        duration = time.monotonic() - self.started
        stopped = self.timed_out or self.canceled or self.limit_hit
        text = diagnostics.decode(errors="replace").strip()
        if text and returncode != 0 and not stopped:
            first = " ".join(text.splitlines()[:3])[:500]
            return _infra(spec, self.started, f"sandbox: {first}", self.sandboxed, output_bytes=self.total)
        if text:
            log.warning("sandbox diagnostics", text=text[:500], workspace=str(spec.workspace))
        sig: int | None = None
        if returncode < 0:
            sig, returncode = -returncode, 128 - returncode
        elif 128 < returncode <= 128 + 64:
            sig = returncode - 128
        reason = self._reason(returncode, sig)
        failure: FailureReason | None
        if self.canceled:
            failure = None
        elif self.timed_out:
            failure = FailureReason.TIMEOUT
        else:
            failure = None if returncode == 0 and not self.limit_hit else FailureReason.CODE
        return SandboxResult(
            exit_code=returncode,
            signal=sig,
            timed_out=self.timed_out,
            canceled=self.canceled,
            output_truncated=self.truncated,
            output_bytes=self.total,
            duration=duration,
            reason=reason,
            failure_reason=failure,
            sandboxed=self.sandboxed,
        )

    def _reason(self, exit_code: int, sig: int | None) -> str | None:
        limits = self.spec.limits
        if self.canceled:
            return "canceled"
        if self.timed_out:
            return "timeout"
        if self.limit_hit:
            return "limit: processes"
        if exit_code == 0:
            return None
        if limits.max_processes and (self.peak_tasks >= limits.max_processes or _FORK_FAILED.search(self.tail)):
            return "limit: processes"
        if limits.cpu_seconds and sig == signal.SIGXCPU:
            return "limit: cpu"
        if limits.memory_bytes and _OUT_OF_MEMORY.search(self.tail):
            return "limit: memory"
        return None


class _SetupError(Exception):
    """The sandbox cannot be set up; becomes an "infra" result, never escapes `run`."""


def _infra(spec: SandboxSpec, started: float, reason: str, sandboxed: bool, *, output_bytes: int = 0) -> SandboxResult:
    log.warning("sandbox failed", reason=reason, workspace=str(spec.workspace))
    duration = time.monotonic() - started
    return Outcome.infra(reason, duration=duration, output_bytes=output_bytes, sandboxed=sandboxed)


def _rlimits(limits: Limits) -> dict[str, tuple[int, int, int]]:
    """prlimit option name -> (resource, soft, hard)."""
    found = {"core": (resource.RLIMIT_CORE, 0, 0)}  # no core files dropped into the workspace
    if limits.cpu_seconds is not None:
        found["cpu"] = (resource.RLIMIT_CPU, limits.cpu_seconds, limits.cpu_seconds + 1)
    if limits.memory_bytes is not None:
        found["data"] = (resource.RLIMIT_DATA, limits.memory_bytes, limits.memory_bytes)
    if limits.max_processes is not None:
        found["nproc"] = (resource.RLIMIT_NPROC, limits.max_processes, limits.max_processes)
    return found


def _rlimit_setter(rlimits: Mapping[str, tuple[int, int, int]]) -> Callable[[], None]:
    """For unsandboxed runs without prlimit (e.g. macOS): set the limits in the child before exec."""
    values = list(rlimits.values())

    def apply() -> None:
        for which, soft, hard in values:
            resource.setrlimit(which, (soft, hard))

    return apply


def _prepare_workspace(workspace: Path, sandboxed: bool) -> str | None:
    """Check the workspace (and, as root under bubblewrap, hand it to the sandbox user); a problem, or None."""
    if not workspace.is_dir():
        return f"workspace {workspace} is not a directory"
    if not sandboxed or os.geteuid() != 0:
        return None
    for parent in workspace.absolute().parents:
        info = parent.stat()
        if not _may_search(info):
            return (
                f"workspace {workspace} is not reachable by the sandbox user (uid {SANDBOX_UID}): {parent} lacks "
                "search permission (chmod o+x)"
            )
    try:
        _chown_tree(workspace)
    except OSError as exc:
        return f"cannot hand workspace {workspace} to the sandbox user: {exc}"
    return None


def _may_search(info: os.stat_result) -> bool:
    if info.st_mode & stat.S_IXOTH:
        return True
    if info.st_uid == SANDBOX_UID and info.st_mode & stat.S_IXUSR:
        return True
    return bool(info.st_gid == SANDBOX_GID and info.st_mode & stat.S_IXGRP)


def _chown_tree(root: Path) -> None:
    """Give the tree to the sandbox user (without following links), skipping what it owns already.

    Runs before every sandboxed step over the whole checkout, so it does one lstat per entry and nothing more:
    `scandir` tells directories from the entry type, without the extra stat of `os.walk` + `lstat`.
    """
    _give(os.lstat(root), os.fspath(root))
    pending = [os.fspath(root)]
    while pending:
        with os.scandir(pending.pop()) as entries:
            for entry in entries:
                _give(entry.stat(follow_symlinks=False), entry.path)
                if entry.is_dir(follow_symlinks=False):
                    pending.append(entry.path)


def _give(info: os.stat_result, path: str) -> None:
    if info.st_uid != SANDBOX_UID or info.st_gid != SANDBOX_GID:
        os.lchown(path, SANDBOX_UID, SANDBOX_GID)


async def _wait_exit(proc: asyncio.subprocess.Process) -> int:
    """The exit status as soon as the process has ended.

    Not `Process.wait()`: it also waits until every copy of the output pipes is closed, so a background job the
    step left running would hold it (and us) forever.
    """
    loop = asyncio.get_running_loop()
    try:
        pidfd = os.pidfd_open(proc.pid)
    except (AttributeError, OSError):  # no pidfd (not Linux), or already reaped
        pidfd = None
    if pidfd is not None:
        readable: asyncio.Future[None] = loop.create_future()

        def ended() -> None:
            if not readable.done():
                readable.set_result(None)

        loop.add_reader(pidfd, ended)
        try:
            await readable
        finally:
            loop.remove_reader(pidfd)
            os.close(pidfd)
    # The child watcher reaps the process and records the status a moment after it ends (well under a millisecond
    # once the pidfd said so); it offers no event. Polled from 0.5 ms up: a fixed 10 ms added that much to every
    # step, a large share of a short step's cost.
    delay = 0.0005
    while proc.returncode is None:
        await asyncio.sleep(delay)
        delay = min(delay * 2, 0.01 if pidfd is not None else 0.05)
    return proc.returncode


async def _read_capped(stream: asyncio.StreamReader, limit: int) -> bytes:
    kept = bytearray()
    while chunk := await stream.read(_READ_CHUNK):
        if len(kept) < limit:
            kept += chunk[: limit - len(kept)]
    return bytes(kept)


def _read_all_and_close(fd: int) -> bytes:
    """Read `fd` to its end, then close it: the reading thread owns it, so no other thread closes it under a read
    (the number could be reused by an unrelated file meanwhile)."""
    data = bytearray()
    try:
        while chunk := os.read(fd, 4096):
            data += chunk
    finally:
        os.close(fd)
    return bytes(data)


def _proc_pids() -> Iterator[int]:
    with contextlib.suppress(OSError):
        for name in os.listdir("/proc"):
            if name.isdigit():
                yield int(name)


def _in_namespace(pid: int, pidns: str | None) -> bool:
    try:
        return os.readlink(f"/proc/{pid}/ns/pid") == pidns
    except OSError:
        return False


def _namespace_members(pidns: str | None) -> list[int]:
    return [pid for pid in _proc_pids() if _in_namespace(pid, pidns)]


def _stat_fields(pid: int) -> list[str] | None:
    """/proc/<pid>/stat from field 3 on (the command name, field 2, may contain spaces and parentheses)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as handle:
            raw = handle.read()
    except OSError:
        return None
    return raw[raw.rfind(b")") + 2 :].decode().split()


def _session_of(pid: int) -> int | None:
    fields = _stat_fields(pid)
    return int(fields[3]) if fields else None


def _session_members(session: int) -> list[int]:
    return [pid for pid in _proc_pids() if _session_of(pid) == session]


def _threads(pid: int) -> int:
    fields = _stat_fields(pid)
    return int(fields[17]) if fields else 0


def _send(pid: int, sig: signal.Signals, still_ours: Callable[[int], bool]) -> None:
    """Signal `pid` if, once pinned by a pidfd, it is still one of the step's (a pid may be reused meanwhile)."""
    try:
        fd = os.pidfd_open(pid)
    except OSError:
        return
    try:
        if still_ours(pid):
            signal.pidfd_send_signal(fd, sig)
    except OSError:
        pass
    finally:
        os.close(fd)
