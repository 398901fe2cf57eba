"""Run one step's shell command in its workspace: under bubblewrap (required unless turned off by name) with a minimal
view of the host, a user-mode network stack when asked for, resource limits, and stopped (SIGTERM, a grace period,
then SIGKILL) on timeout, cancel, or a limit hit.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import functools
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
from taskmaster.workspaces.errors import SandboxUnavailable

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
WORKSPACE = "/workspace"
"""Where the step's workspace is mounted inside the sandbox, whatever its place on the host: no directory above it
on the host needs to be reachable by the sandbox user, and its host path tells the step nothing."""
# What the sandbox shows of the host, read-only: the toolchain and the parts of /etc that programs read to run (the
# loader, users, name resolution, certificates, alternatives, time zone). Nothing else: no /home, /root, /var, /run,
# /srv, /mnt or state directory, so no host Unix socket (PostgreSQL's, MySQL's, Docker's) can be reached.
_TOOLCHAIN = ("/usr", "/opt", "/nix")
_ROOT_LINKS = ("/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32")
_ETC = (
    "alternatives", "bash.bashrc", "ca-certificates", "ca-certificates.conf", "debian_version", "environment",
    "gai.conf", "gitconfig", "group", "host.conf", "hostname", "hosts", "inputrc", "issue", "java-17-openjdk",
    "ld.so.cache", "ld.so.conf", "ld.so.conf.d", "locale.alias", "locale.gen", "localtime", "login.defs",
    "mime.types", "npmrc", "nsswitch.conf", "os-release", "passwd", "pip.conf", "pki", "profile", "profile.d",
    "protocols", "python3", "python3.11", "python3.12", "resolv.conf", "rpc", "services", "shells", "ssl",
    "subgid", "subuid", "terminfo", "timezone", "vim", "wgetrc", "xdg",
)  # fmt: skip
_RUN_BYTES = 16 * 1024 * 1024
_ETC_CHECK_SECONDS = 1.0
# Where, when the sandbox user cannot walk to a workspace, a private mount namespace shows it to bwrap.
_STAGE = "/run/taskmaster-stage"
_STAGE_SCRIPT = (
    'mount=$0; $mount -t tmpfs -o size=64k,mode=0755 taskmaster-stage "' + _STAGE + '" || exit 1; n=0; '
    'while [ "$1" != -- ]; do mkdir "' + _STAGE + '/$n" && $mount --bind "$1" "' + _STAGE + '/$n" || exit 1; '
    'n=$((n + 1)); shift; done; shift; exec "$@"'
)
# The user-mode network (slirp4netns): the step's address, the gateway (which with host loopback disabled leads
# nowhere on the host) and the DNS forwarder, at libslirp's fixed addresses.
_SLIRP_DNS = "10.0.2.3"
_NETWORK_SETUP_SECONDS = 10.0
# Link-local addresses reach cloud metadata services (169.254.169.254), which hand out the host's credentials.
_BLOCKED_NETWORKS = ("169.254.0.0/16",)
_INSTALL_HINT = "install it (Debian/Ubuntu: apt-get install {package}; Fedora: dnf install {package})"
_OFF_HINT = 'or set executor.sandbox = "off" (TASKMASTER_EXECUTOR_SANDBOX=off) to run steps unsandboxed on purpose'
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
# Walking the workspace costs one lstat per file: every few polls, not every one.
_DISK_POLL_EVERY = 5
_DRAIN_SECONDS = 5.0
_FORK_FAILED = re.compile(rb"can(?:no|')t fork|fork: retry|fork failed|fork: resource temporarily unavailable", re.I)
_NO_SPACE = re.compile(rb"No space left on device|File too large|ENOSPC|EFBIG", re.I)
_PAGE_SIZE = os.sysconf("SC_PAGE_SIZE")
_OUT_OF_MEMORY = re.compile(rb"MemoryError|cannot allocate memory|out of memory|std::bad_alloc|memory exhausted", re.I)


@dataclass(frozen=True, slots=True)
class Limits:
    """Resource limits of one step; None means no limit.

    `cpu_seconds`: CPU time of each process (SIGXCPU, then SIGKILL a second later). `memory_bytes`: the data
    segment of each process (RLIMIT_DATA: heap and private mappings, so runtimes that reserve large address
    ranges, like the JVM or V8, still start), and the resident memory of all the step's processes together,
    watched: a step above it is stopped. `max_processes`: tasks (threads count, as for the kernel's RLIMIT_NPROC)
    in the sandbox at once, the sandbox's init included; a step that stays at the limit is stopped.
    `disk_bytes`: the size of the workspace, watched (a step above it is stopped), and of any one file written
    (RLIMIT_FSIZE). `tmp_bytes`: the size of the private /tmp (a tmpfs, so it is memory too).
    `max_output_bytes`: output forwarded to `on_output`; the rest is drained and dropped. `cpus`: CPU cores' worth
    of time per period for all the step's processes together, through the cpu cgroup controller where this process
    may write one (cgroup v1 `cpu.cfs_quota_us` or v2 `cpu.max`, as root); elsewhere not enforced (logged once).
    """

    cpu_seconds: int | None = None
    memory_bytes: int | None = None
    max_processes: int | None = 1024
    max_output_bytes: int | None = 10 * 1024 * 1024
    disk_bytes: int | None = None
    tmp_bytes: int | None = 1024 * 1024 * 1024
    cpus: float | None = None

    def __post_init__(self) -> None:
        for name in ("cpu_seconds", "memory_bytes", "max_processes", "disk_bytes", "tmp_bytes", "cpus"):
            value = getattr(self, name)
            if value is not None and value <= 0:
                raise InvalidInput(f"limit {name} must be positive, got {value}")


@dataclass(frozen=True, slots=True)
class SandboxSpec:
    """What to run and how.

    `command` runs under `/bin/sh -c` in `workspace`, which under bubblewrap is mounted at `/workspace` (the
    working directory; the host path is not visible). The environment is exactly `env` on top of PATH, HOME (a
    private /tmp under bubblewrap) and LANG. Under bubblewrap the step always has a network namespace of its own;
    `network` True connects it to the outside through slirp4netns with the host's loopback and the host's own
    addresses unreachable. `timeout` (seconds, None for none) ends the step with SIGTERM, and SIGKILL `grace`
    seconds later. The sandbox shows only the toolchain directories of the host; `hidden` paths inside them are
    covered by empty directories. `read_only` paths are shown read-only at their own host path (e.g. the mirror
    objects a checkout reads through its alternates file, so that git works in the step). `isolation`: "bwrap"
    requires bubblewrap (a missing tool raises `SandboxUnavailable`); "none" runs the step unsandboxed, as the
    server's user, with a warning: only when the configuration says so.
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
    isolation: Literal["bwrap", "none"] = "bwrap"

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
    step and is re-raised. Raises `SandboxUnavailable`, before running anything, when a tool the sandbox needs is
    missing (see `check`).
    """
    started = time.monotonic()
    bwrap: str | None = None
    if spec.isolation == "none":
        log.warning("running the step without a sandbox (executor.sandbox = off)", workspace=str(spec.workspace))
    else:
        bwrap = check(network=spec.network)
    problem = await asyncio.to_thread(_prepare_workspace, spec.workspace, bwrap is not None)
    if problem:
        return _infra(spec, started, f"sandbox: {problem}", sandboxed=bwrap is not None)
    step = _Step(spec, bwrap, started)
    return await step.run(on_output, cancel)


def check(*, network: bool = False) -> str:
    """The path of bwrap, once every tool a sandboxed step needs is installed; else `SandboxUnavailable` naming
    the missing tool and how to install it. `network`: also what a step with network needs."""
    needed = [("bwrap", "bubblewrap"), ("prlimit", "util-linux")]
    if os.geteuid() == 0:
        needed.append(("setpriv", "util-linux"))
    if network:
        needed += [("slirp4netns", "slirp4netns"), ("nsenter", "util-linux"), ("ip", "iproute2")]
    found = {tool: shutil.which(tool) for tool, _ in needed}
    for tool, package in needed:
        if found[tool] is None:
            why = "to give a step with `network: true` its network" if network and tool != "bwrap" else "to run steps"
            raise SandboxUnavailable(
                f"the step sandbox needs {tool} ({package}) {why}, and it is not installed: "
                f"{_INSTALL_HINT.format(package=package)}, {_OFF_HINT}"
            )
    bwrap = found["bwrap"]
    assert bwrap is not None
    return bwrap


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
        self.limit_hit: str | None = None
        self.peak_tasks = 0
        self.block_write: int | None = None  # held until the step's network is ready; closing it lets the step start
        self.network_proc: asyncio.subprocess.Process | None = None
        self.network_exit: int | None = None  # slirp4netns ends when this end of its exit pipe closes
        self.cgroup: str | None = None  # the step's cpu cgroup, when it has a cores limit

    async def run(self, on_output: OutputCallback | None, cancel: asyncio.Event | None) -> SandboxResult:
        try:
            argv, kwargs, info_read = self._launch()
        except (_SetupError, OSError) as exc:
            self._close_network()
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
            self._close_network()
            if self.network_proc is not None and self.network_proc.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    self.network_proc.kill()
                await self.network_proc.wait()
            if self.init_fd is not None:
                os.close(self.init_fd)
            if self.home is not None:
                shutil.rmtree(self.home, ignore_errors=True)
            if self.cgroup is not None:
                await asyncio.to_thread(_remove_cgroup, self.cgroup)

    def _close_network(self) -> None:
        for fd in (self.block_write, self.network_exit):
            if fd is not None:
                with contextlib.suppress(OSError):
                    os.close(fd)
        self.block_write = self.network_exit = None

    @property
    def sandboxed(self) -> bool:
        return self.bwrap is not None

    def _launch(self) -> tuple[list[str], dict[str, Any], int | None]:
        spec, limits = self.spec, self.spec.limits
        rlimits = _rlimits(limits)
        prlimit = shutil.which("prlimit")
        kwargs: dict[str, Any] = {
            "stdin": asyncio.subprocess.DEVNULL,
            "stdout": asyncio.subprocess.PIPE,
            "stderr": asyncio.subprocess.PIPE,
            "start_new_session": True,
        }
        if prlimit:
            # Resolved: the sandbox shows the toolchain at its real place, not the links that may lead there.
            prlimit = os.path.realpath(prlimit)
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
            kwargs["cwd"] = str(spec.workspace.absolute())
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
        fds: list[int] = []
        kwargs["pass_fds"] = fds
        info_read, info_write = os.pipe()
        fds.append(info_write)
        try:
            argv = self._bwrap_argv(drop, inner, fds, info_write)
        except BaseException:
            for fd in (*fds, info_read):
                os.close(fd)
            raise
        return argv, kwargs, info_read

    def _bwrap_argv(self, drop: list[str], inner: list[str], fds: list[int], info_write: int) -> list[str]:
        spec, limits = self.spec, self.spec.limits
        assert self.bwrap is not None
        shown = [str(path.absolute()) for path in spec.read_only if path.exists()]
        sources = [str(spec.workspace.absolute()), *shown]
        stage: list[str] = []
        if drop and not all(_sandbox_user_reaches(Path(source)) for source in sources):
            # bwrap runs as the sandbox user, which cannot walk to these (a state directory under a private
            # home): in a mount namespace of their own, root mounts them where it can, then becomes that user.
            stage = _stage_argv(sources)
            sources = [f"{_STAGE}/{number}" for number in range(len(sources))]
        binds = ["--bind", sources[0], WORKSPACE]
        for source, path in zip(sources[1:], shown, strict=True):
            binds += ["--ro-bind", source, path]
        cores: list[str] = []
        if limits.cpus is not None:
            self.cgroup = _cpu_cgroup(limits.cpus)
            if self.cgroup is not None:  # the first process joins it before anything forks, and everything inherits it
                cores = [_SHELL, "-c", 'echo $$ > "$0" && exec "$@"', os.path.join(self.cgroup, "cgroup.procs")]
        network: list[str] = []
        if spec.network:
            resolv = os.memfd_create("resolv.conf", os.MFD_CLOEXEC)
            os.write(resolv, f"nameserver {_SLIRP_DNS}\n".encode())
            os.lseek(resolv, 0, os.SEEK_SET)
            fds.append(resolv)
            block_read, self.block_write = os.pipe()
            fds.append(block_read)
            network = ["--ro-bind-data", str(resolv), "/etc/resolv.conf", "--block-fd", str(block_read)]
        view = _host_view(spec.hidden)
        sizes = ["--size", str(limits.tmp_bytes)] if limits.tmp_bytes else []
        argv = [
            *cores,
            *stage,
            *drop,
            self.bwrap,
            "--unshare-user",
            "--unshare-pid",
            "--unshare-ipc",
            "--unshare-uts",
            "--unshare-net",
            "--unshare-cgroup-try",
            "--hostname",
            "taskmaster-sandbox",
            *view,
            "--dev",
            "/dev",
            "--proc",
            "/proc",
            *sizes,
            "--tmpfs",
            _PRIVATE_TMP,
            "--size",
            str(_RUN_BYTES),
            "--tmpfs",
            "/run",
            "--dir",
            "/var",
            "--symlink",
            "../run",
            "/var/run",
            "--symlink",
            "../tmp",
            "/var/tmp",  # noqa: S108 - inside the sandbox: a link to its private /tmp
            *network,
            *binds,
            "--remount-ro",  # the root itself (a tmpfs holding the mount points): nothing new may appear there
            "/",
            "--chdir",
            WORKSPACE,
            "--die-with-parent",
            "--new-session",
            "--info-fd",
            str(info_write),
            "--",
            *inner,
        ]
        return argv

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
        if info is not None and self.spec.network:
            problem = await self._connect_network(info, waiter)
            if problem is not None:
                self._signal_all(signal.SIGKILL)
                await asyncio.wait({waiter}, timeout=_DRAIN_SECONDS)
                for unfinished in (waiter, pump, diagnostics, info):
                    unfinished.cancel()
                return _infra(self.spec, self.started, f"sandbox: network: {problem}", True)
        limits = self.spec.limits
        watched = limits.max_processes or limits.memory_bytes or limits.disk_bytes
        watch = asyncio.ensure_future(self._watch()) if watched else None
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
                    self.limit_hit = watch.result()
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

    async def _connect_network(self, info: asyncio.Future[None], waiter: asyncio.Future[int]) -> str | None:
        """Attach slirp4netns to the sandbox's network namespace, make the host's own addresses unreachable from
        it, then let the step start (it waits on its block fd until then); a problem, or None."""
        started: set[asyncio.Future[Any]] = {info, waiter}
        await asyncio.wait(started, timeout=_NETWORK_SETUP_SECONDS, return_when=asyncio.FIRST_COMPLETED)
        if self.init_pid is None:
            return "the sandbox did not start"
        pid = self.init_pid
        # bwrap reports the pid right after the clone, before the sandbox has written its user mapping; joining
        # its namespaces before that is refused.
        deadline = time.monotonic() + _NETWORK_SETUP_SECONDS
        while not await asyncio.to_thread(_mapped, pid):
            if waiter.done() or time.monotonic() > deadline:
                return "the sandbox did not start"
            await asyncio.sleep(0.001)
        slirp, nsenter, ip = shutil.which("slirp4netns"), shutil.which("nsenter"), shutil.which("ip")
        if slirp is None or nsenter is None or ip is None:
            return "slirp4netns, nsenter or ip went missing"
        joins = [f"--net=/proc/{pid}/ns/net"]
        options = ["--configure", "--mtu=65520", "--disable-host-loopback", "--enable-sandbox", "--enable-seccomp"]
        if os.geteuid() != 0:  # the sandbox's user namespace is ours: join it to act in its network namespace
            joins = [f"--user=/proc/{pid}/ns/user", "--preserve-credentials", *joins]
            options.append(f"--userns-path=/proc/{pid}/ns/user")
        ready_read, ready_write = os.pipe()
        exit_read, self.network_exit = os.pipe()
        try:
            self.network_proc = await asyncio.create_subprocess_exec(
                slirp,
                *options,
                f"--ready-fd={ready_write}",
                f"--exit-fd={exit_read}",
                # By path, not by pid: given a pid, slirp4netns also joins that process's user namespace, and once
                # bwrap has made its nested one, the network namespace (owned by the outer one) refuses it.
                "--netns-type=path",
                f"/proc/{pid}/ns/net",
                "tap0",
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.DEVNULL,
                stderr=asyncio.subprocess.PIPE,
                pass_fds=(ready_write, exit_read),
            )
        finally:
            os.close(ready_write)
            os.close(exit_read)
        # slirp4netns writes "1" once the interface is up, and keeps the pipe open: read that byte, not to the end.
        reader = asyncio.ensure_future(asyncio.to_thread(_read_byte_and_close, ready_read))
        ready, _ = await asyncio.wait({reader}, timeout=_NETWORK_SETUP_SECONDS)
        if not ready or reader.result() != b"1":
            with contextlib.suppress(ProcessLookupError):
                self.network_proc.kill()
            assert self.network_proc.stderr is not None
            errors = await _read_capped(self.network_proc.stderr, 2000)
            return f"slirp4netns did not start: {errors.decode(errors='replace').strip()[:300]}"
        blocked = [*(f"{address}/32" for address in _host_addresses()), *_BLOCKED_NETWORKS]
        routes = "".join(f"route add blackhole {network}\n" for network in blocked).encode()
        route = await asyncio.create_subprocess_exec(
            nsenter,
            *joins,
            "--",
            ip,
            "-batch",
            "-",
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )
        try:
            output, _ = await asyncio.wait_for(route.communicate(routes), _NETWORK_SETUP_SECONDS)
        except TimeoutError:
            route.kill()
            await route.wait()
            return "could not close the host's addresses (ip timed out)"
        if route.returncode != 0:
            return f"could not close the host's addresses: {output.decode(errors='replace').strip()[:300]}"
        assert self.block_write is not None
        os.write(self.block_write, b"1")
        os.close(self.block_write)
        self.block_write = None
        return None

    async def _watch(self) -> str:
        """Return the limit ("limit: processes", "limit: memory", "limit: disk") once the step is over it: at
        the process limit for `_AT_LIMIT_SECONDS`, above the memory or the workspace size at one look."""
        limits = self.spec.limits
        since: float | None = None
        polls = 0
        while True:
            await asyncio.sleep(_POLL_SECONDS)
            polls += 1
            tasks, resident = await asyncio.to_thread(self._usage)
            self.peak_tasks = max(self.peak_tasks, tasks)
            if limits.memory_bytes and resident > limits.memory_bytes:
                return "limit: memory"
            if limits.disk_bytes and polls % _DISK_POLL_EVERY == 0:
                used = await asyncio.to_thread(_tree_bytes, self.spec.workspace)
                if used > limits.disk_bytes:
                    return "limit: disk"
            if not limits.max_processes or tasks < limits.max_processes:
                since = None
                continue
            now = time.monotonic()
            since = since if since is not None else now
            if now - since >= _AT_LIMIT_SECONDS:
                return "limit: processes"

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

    def _usage(self) -> tuple[int, int]:
        """Tasks (threads) and resident bytes of the step's processes together."""
        if self.sandboxed:
            pids = _namespace_members(self.pidns) if self.pidns else []
        else:
            pids = _session_members(self.proc.pid) if self.proc else []
        tasks = resident = 0
        for pid in pids:
            fields = _stat_fields(pid)
            if fields:
                tasks += int(fields[17])
                resident += int(fields[21]) * _PAGE_SIZE
        return tasks, resident

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
            return self.limit_hit
        if exit_code == 0:
            return None
        if limits.max_processes and (self.peak_tasks >= limits.max_processes or _FORK_FAILED.search(self.tail)):
            return "limit: processes"
        if limits.cpu_seconds and sig == signal.SIGXCPU:
            return "limit: cpu"
        if limits.memory_bytes and _OUT_OF_MEMORY.search(self.tail):
            return "limit: memory"
        if limits.disk_bytes and (sig == signal.SIGXFSZ or _NO_SPACE.search(self.tail)):
            return "limit: disk"
        if limits.tmp_bytes and _NO_SPACE.search(self.tail):
            return "limit: tmp"
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
    if limits.disk_bytes is not None:
        found["fsize"] = (resource.RLIMIT_FSIZE, limits.disk_bytes, limits.disk_bytes)
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
    # No directory above it needs to be reachable by the sandbox user: bwrap gets the workspace as a descriptor.
    try:
        _chown_tree(workspace)
    except OSError as exc:
        return f"cannot hand workspace {workspace} to the sandbox user: {exc}"
    return None


@functools.cache
def _toolchain_view() -> tuple[str, ...]:
    """bwrap arguments showing the host's toolchain read-only (what exists here; looked up once per process)."""
    args: list[str] = []
    for path in _TOOLCHAIN:
        if os.path.isdir(path):
            args += ["--ro-bind", path, path]
    for path in _ROOT_LINKS:
        if os.path.islink(path):  # merged /usr: /bin -> usr/bin
            args += ["--symlink", os.readlink(path), path]
        elif os.path.isdir(path):
            args += ["--ro-bind", path, path]
    return tuple(args)


def _host_view(hidden: tuple[Path, ...]) -> list[str]:
    """The toolchain view and the step's /etc, with `hidden` paths inside the toolchain covered by empty
    directories (the rest of the host is not shown at all)."""
    covered = [str(path.absolute()) for path in hidden]
    return [
        *_toolchain_view(),
        "--ro-bind",
        _ETC_VIEW.current(),
        "/etc",
        *(arg for path in covered if any(_is_under(path, root) for root in _TOOLCHAIN) for arg in ("--tmpfs", path)),
    ]


class _EtcView:
    """A copy of the `_ETC` parts of /etc that every user may read, mounted as the step's /etc.

    One mount instead of one per entry: bubblewrap's ~50 bind mounts cost more than the rest of a step's start-up.
    Copied again when an entry (or the certificate or alternatives directory) changes, looked at once a second;
    what only "others" cannot read (e.g. /etc/ssl/private) is never copied. Kept under /run (or the temporary
    directory) for the process's life; the previous copy is removed at the next change (a step starting meanwhile
    has mounted it already).
    """

    def __init__(self) -> None:
        self.path: str | None = None
        self.signature: tuple[tuple[str, int], ...] = ()
        self.checked = 0.0
        self.old: list[str] = []

    def current(self) -> str:
        now = time.monotonic()
        if self.path is None or now - self.checked >= _ETC_CHECK_SECONDS:
            self.checked = now
            signature = _etc_signature()
            if self.path is None or signature != self.signature:
                self._rebuild(signature)
        assert self.path is not None
        return self.path

    def _rebuild(self, signature: tuple[tuple[str, int], ...]) -> None:
        base = "/run" if os.geteuid() == 0 and os.access("/run", os.W_OK) else tempfile.gettempdir()
        made = tempfile.mkdtemp(prefix="taskmaster-etc-", dir=base)
        for name in _ETC:
            _copy_readable(f"/etc/{name}", os.path.join(made, name))
        resolv = os.path.join(made, "resolv.conf")
        if not os.path.lexists(resolv):  # a mount point for a network step's resolv.conf
            with open(resolv, "w", encoding="ascii"):
                pass
        os.chmod(made, 0o755)  # noqa: S103 - the sandbox user reads it as its /etc
        for stale in self.old[:-1]:
            shutil.rmtree(stale, ignore_errors=True)
        self.old = [*self.old[-1:], *([self.path] if self.path else [])]
        self.path, self.signature = made, signature
        if len(self.old) == 0:
            atexit.register(self._remove_all)

    def _remove_all(self) -> None:
        for path in (*self.old, self.path):
            if path:
                shutil.rmtree(path, ignore_errors=True)


def _etc_signature() -> tuple[tuple[str, int], ...]:
    found = []
    for path in (*(f"/etc/{name}" for name in _ETC), "/etc/ssl/certs", "/etc/alternatives"):
        with contextlib.suppress(OSError):
            found.append((path, os.lstat(path).st_mtime_ns))
    return tuple(found)


def _copy_readable(source: str, target: str) -> None:
    """Copy `source` (links as links) to `target`, leaving out whatever other users may not read."""
    try:
        info = os.lstat(source)
    except OSError:
        return
    if stat.S_ISLNK(info.st_mode):
        os.symlink(os.readlink(source), target)
    elif stat.S_ISREG(info.st_mode) and info.st_mode & stat.S_IROTH:
        with contextlib.suppress(OSError):
            shutil.copyfile(source, target)
            os.chmod(target, 0o644)
    elif stat.S_ISDIR(info.st_mode) and info.st_mode & stat.S_IROTH and info.st_mode & stat.S_IXOTH:
        os.mkdir(target, 0o755)
        os.chmod(target, 0o755)  # noqa: S103 - only what others could read already
        with contextlib.suppress(OSError), os.scandir(source) as entries:
            for entry in entries:
                _copy_readable(entry.path, os.path.join(target, entry.name))


_ETC_VIEW = _EtcView()


_CPU_PERIOD_US = 100_000
_cpu_warned = False


def _cpu_cgroup(cpus: float) -> str | None:
    """A new cpu cgroup allowing `cpus` cores' worth of time (cgroup v1 or v2, under `taskmaster/`); None where
    none can be made here (not root, no writable cpu controller), logged once."""
    global _cpu_warned
    quota = max(1000, int(cpus * _CPU_PERIOD_US))
    name = f"step-{os.getpid()}-{time.monotonic_ns()}"
    try:
        if os.path.isdir("/sys/fs/cgroup/cpu") and os.path.exists("/sys/fs/cgroup/cpu/cpu.cfs_quota_us"):
            parent = "/sys/fs/cgroup/cpu/taskmaster"
            os.makedirs(parent, exist_ok=True)
            path = os.path.join(parent, name)
            os.mkdir(path)
            _write(os.path.join(path, "cpu.cfs_period_us"), str(_CPU_PERIOD_US))
            _write(os.path.join(path, "cpu.cfs_quota_us"), str(quota))
            return path
        with open("/sys/fs/cgroup/cgroup.subtree_control", encoding="ascii") as handle:
            if "cpu" not in handle.read().split():
                raise OSError("the cpu controller is not enabled for child cgroups")
        parent = "/sys/fs/cgroup/taskmaster"
        os.makedirs(parent, exist_ok=True)
        _write(os.path.join(parent, "cgroup.subtree_control"), "+cpu")
        path = os.path.join(parent, name)
        os.mkdir(path)
        _write(os.path.join(path, "cpu.max"), f"{quota} {_CPU_PERIOD_US}")
        return path
    except OSError as exc:
        if not _cpu_warned:
            _cpu_warned = True
            log.warning("no cpu cgroup can be made here: the cores limit (cpus) is not enforced", error=str(exc))
        return None


def _write(path: str, text: str) -> None:
    with open(path, "w", encoding="ascii") as handle:
        handle.write(text)


def _remove_cgroup(path: str) -> None:
    """Remove the step's cgroup once its processes are gone (the kernel takes a moment to let go of them)."""
    for _ in range(50):
        try:
            os.rmdir(path)
            return
        except FileNotFoundError:
            return
        except OSError:
            time.sleep(0.01)
    log.warning("step cgroup left behind", path=path)


def _sandbox_user_reaches(path: Path) -> bool:
    """Whether uid 65534 may walk every directory above `path` (others' search permission, or its own)."""
    for parent in path.parents:
        try:
            info = parent.stat()
        except OSError:
            return False
        if not (
            info.st_mode & 0o001
            or (info.st_uid == SANDBOX_UID and info.st_mode & 0o100)
            or (info.st_gid == SANDBOX_GID and info.st_mode & 0o010)
        ):
            return False
    return True


def _stage_argv(sources: list[str]) -> list[str]:
    """A prefix that, as root in a private mount namespace, mounts `sources` at `_STAGE/0`, `_STAGE/1`, ... (a
    tmpfs only that namespace sees), then runs the rest of the command line."""
    unshare, mount = shutil.which("unshare"), shutil.which("mount")
    if unshare is None or mount is None:
        raise SandboxUnavailable(
            "the step sandbox needs unshare and mount (util-linux, mount) to reach a workspace under a private "
            f"directory: {_INSTALL_HINT.format(package='util-linux mount')}, {_OFF_HINT}"
        )
    os.makedirs(_STAGE, mode=0o755, exist_ok=True)
    return [unshare, "--mount", "--propagation", "private", "--", _SHELL, "-c", _STAGE_SCRIPT, mount, *sources, "--"]


def _is_under(path: str, root: str) -> bool:
    return path == root or path.startswith(root.rstrip("/") + "/")


def _host_addresses() -> list[str]:
    """The host's own IPv4 addresses besides loopback (from /proc/net/fib_trie: its local /32 entries)."""
    try:
        with open("/proc/net/fib_trie", encoding="ascii") as handle:
            lines = handle.read().splitlines()
    except OSError:
        return []
    found: set[str] = set()
    last: str | None = None
    for line in lines:
        text = line.strip()
        if text.startswith("|--"):
            last = text[3:].strip()
        elif text == "/32 host LOCAL" and last is not None and not last.startswith("127."):
            found.add(last)
    return sorted(found)


def _tree_bytes(root: Path) -> int:
    """The bytes the files under `root` take on disk (allocated blocks, so sparse files count what they use)."""
    total = 0
    pending = [os.fspath(root)]
    while pending:
        try:
            with os.scandir(pending.pop()) as entries:
                for entry in entries:
                    with contextlib.suppress(OSError):
                        info = entry.stat(follow_symlinks=False)
                        total += info.st_blocks * 512
                        if entry.is_dir(follow_symlinks=False):
                            pending.append(entry.path)
        except OSError:
            continue
    return total


def _chown_tree(root: Path, uid: int = SANDBOX_UID, gid: int = SANDBOX_GID) -> None:
    """Give the tree to the sandbox user (or `uid`/`gid`; without following links), skipping what it owns already.

    Runs before every sandboxed step over the whole checkout, so it does one lstat per entry and nothing more:
    `scandir` tells directories from the entry type, without the extra stat of `os.walk` + `lstat`.
    """
    _give(os.lstat(root), os.fspath(root), uid, gid)
    pending = [os.fspath(root)]
    while pending:
        with os.scandir(pending.pop()) as entries:
            for entry in entries:
                _give(entry.stat(follow_symlinks=False), entry.path, uid, gid)
                if entry.is_dir(follow_symlinks=False):
                    pending.append(entry.path)


def _give(info: os.stat_result, path: str, uid: int = SANDBOX_UID, gid: int = SANDBOX_GID) -> None:
    if info.st_uid != uid or info.st_gid != gid:
        os.lchown(path, uid, gid)


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


def _mapped(pid: int) -> bool:
    """Whether the process's user namespace has its uid mapping (written once, by bwrap, as it sets up)."""
    try:
        with open(f"/proc/{pid}/uid_map", "rb") as handle:
            return bool(handle.read().strip())
    except OSError:
        return False


def _read_byte_and_close(fd: int) -> bytes:
    """One byte from `fd` (b"" at its end), then close it; the reading thread owns it, as in `_read_all_and_close`."""
    try:
        return os.read(fd, 1)
    finally:
        os.close(fd)


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
