"""Run steps on a remote Linux instance (such as a WSL2 instance) over SSH with asyncssh: one reused connection per
instance, a cap on concurrent steps, each step in its own session on the remote side, stopped with SIGTERM, a grace
period, then SIGKILL.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import posixpath
import re
import shlex
import time
from collections.abc import AsyncIterator, Awaitable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from os import PathLike
from typing import Any

import asyncssh
import structlog

from taskmaster.core.errors import InvalidInput, Unavailable
from taskmaster.executors.base import (
    FailureReason,
    OutputCallback,
    StepOutcome,
    StepSpec,
    canceled_outcome,
    infra_outcome,
    signal_name,
)

log = structlog.stdlib.get_logger("taskmaster.executors.ssh")

ClientKey = str | PathLike[str] | asyncssh.SSHKey

# What a step finds in its environment besides `spec.env` (which may override them): the same defaults as the local
# sandbox, plus HOME, the remote login's home directory.
DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
DEFAULT_ENV = {"PATH": DEFAULT_PATH, "LANG": "C.UTF-8"}

_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
_READ_CHUNK = 65536
_DIAGNOSTICS_LIMIT = 65536
_DRAIN_SECONDS = 5.0
_SIGNAL_TIMEOUT = 10.0
_PGID_WAIT = 5.0
_PGID, _EXIT, _ERROR = b"taskmaster-pgid ", b"taskmaster-exit ", b"taskmaster-error "

# Signals every process of the step's session except the caller, from /proc (field 6 of stat is the session; the
# command name in parentheses may hold spaces, so fields are counted after the last ")"). A session, not only a
# process group: tools such as `timeout` move into groups of their own. Builtins only, so the scan forks nothing.
_KILL_FUNCTION = r"""
tm_kill() {
    IFS=' ' read -r tm_me tm_rest < /proc/self/stat
    for tm_d in /proc/[0-9]*; do
        [ "${tm_d#/proc/}" = "$tm_me" ] && continue
        IFS= read -r tm_l 2>/dev/null < "$tm_d/stat" || continue
        tm_l=${tm_l##*) }
        set -f; set -- $tm_l; set +f
        [ "$4" = "$tm_sid" ] && kill -s "$tm_sig" "${tm_d#/proc/}" 2>/dev/null
    done
}
"""

# The remote side of one step, run by /bin/sh as the leader of a new session made by `setsid -w` ($0: a tag for
# `ps`, $1: the login's HOME, $2: the grace period). It reports its session id first, so the executor can signal
# the step, then reads the payload (a byte count line, then shell assignments: the environment, workdir, command)
# from stdin. Stdin then stays open for the step's life: a watchdog waits for its end, which comes when the
# executor closes the channel or the connection is lost, and then stops the session (SIGTERM, grace, SIGKILL),
# so nothing outlives a lost executor. The step runs in a subshell, so its environment never reaches this shell;
# at its end the wrapper reports the status and kills what the step left behind (background jobs), as the local
# sandbox does. `trap : TERM` lets the wrapper outlive the executor's SIGTERM to report the step's own status;
# a caught trap is reset in children, so the step still gets SIGTERM's default action.
_WRAPPER = (
    r"""
trap : TERM
tm_sid=$$
printf 'taskmaster-pgid %s\n' "$tm_sid" >&2
PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
export HOME="$1"
"""
    + _KILL_FUNCTION
    + r"""
tm_fail() { printf 'taskmaster-error %s\n' "$1" >&2; exit 100; }
IFS= read -r tm_n && tm_script=$(head -c "$tm_n") || tm_fail "could not read the step from stdin"
exec 4<&0 0</dev/null
(
    trap '' TERM
    cat >/dev/null
    tm_sig=TERM; tm_kill
    sleep "$2"
    tm_sig=KILL; tm_kill; tm_kill
    kill -s KILL -- "-$tm_sid"
) <&4 4<&- >/dev/null 2>&1 &
exec 4<&-
(
    eval "$tm_script" || tm_fail "could not set the step's environment"
    cd -- "$tm_dir" 2>/dev/null || tm_fail "workdir $tm_dir is not a directory"
    exec 2>&1
    exec "$tm_shell" -c "$tm_cmd"
)
tm_status=$?
printf 'taskmaster-exit %s\n' "$tm_status" >&2
tm_sig=KILL; tm_kill; tm_kill
exit "$tm_status"
"""
)

# Run over a second channel: signal the step's process group, then the rest of its session ($1: TERM or KILL,
# $2: the session id the wrapper reported).
_SIGNAL_SCRIPT = (
    r"""
tm_sig=$1 tm_sid=$2
"""
    + _KILL_FUNCTION
    + r"""
kill -s "$tm_sig" -- "-$tm_sid" 2>/dev/null
tm_kill
[ "$tm_sig" = KILL ] && tm_kill
exit 0
"""
)


@dataclass(frozen=True, slots=True, kw_only=True)
class SshInstance:
    """A remote Linux instance reachable over SSH, and where steps may run on it.

    `client_keys`: private key files or loaded `asyncssh.SSHKey`s; nothing else is used (no agent, no
    ~/.ssh/config, no password). `known_hosts`: a known_hosts file pinning the server's host key, or None to accept
    any host key; None lets anyone who can intercept the connection impersonate the instance, read the steps'
    environment (secrets) and fake their results, so use it only on a trusted network (e.g. a local WSL2 instance
    on loopback). `workspace_root`: an absolute path on the instance; every step's workdir must be inside it.
    `max_concurrent_steps`: steps running at once; each takes one SSH session on the shared connection, and
    stopping a step or a health check takes one more for a moment, so keep it below the server's `MaxSessions`
    (OpenSSH's default is 10). `shell`: runs each step's command (`shell -c command`).
    """

    name: str
    host: str
    port: int = 22
    username: str
    client_keys: Sequence[ClientKey]
    known_hosts: str | PathLike[str] | None
    workspace_root: str
    max_concurrent_steps: int = 4
    connect_timeout: float = 10.0
    keepalive_interval: float = 15.0
    keepalive_count_max: int = 3
    shell: str = "/bin/sh"

    def __post_init__(self) -> None:
        if not self.name or not self.host or not self.username:
            raise InvalidInput("an SSH instance needs a name, a host and a username")
        if not posixpath.isabs(self.workspace_root):
            raise InvalidInput(f"SSH instance {self.name!r}: workspace_root must be an absolute path")
        if self.max_concurrent_steps < 1:
            raise InvalidInput(f"SSH instance {self.name!r}: max_concurrent_steps must be at least 1")
        if not self.client_keys:
            raise InvalidInput(f"SSH instance {self.name!r}: at least one client key is needed")
        if not posixpath.isabs(self.shell):
            raise InvalidInput(f"SSH instance {self.name!r}: shell must be an absolute path")

    @property
    def label(self) -> str:
        """How messages name the instance: "SSH instance 'wsl' (ci@10.0.0.5:22)"."""
        return f"SSH instance {self.name!r} ({self.username}@{self.host}:{self.port})"

    def contains(self, workdir: str) -> bool:
        """Whether `workdir` is inside the workspace root, lexically (symbolic links on the instance are not seen)."""
        if not posixpath.isabs(workdir):
            return False
        root = posixpath.normpath(self.workspace_root)
        return posixpath.commonpath([root, posixpath.normpath(workdir)]) == root


@dataclass(frozen=True, slots=True)
class Health:
    """The result of a health check: `latency` is the round trip of a command, in seconds (None if none ran)."""

    ok: bool
    latency: float | None
    reason: str | None


class WorkdirOutsideRoot(InvalidInput):
    code = "workdir_outside_root"
    title = "Workdir outside the workspace root"


class StepSlot:
    """One of an instance's step slots, held by whoever reserved it (`SshExecutor.reserve`)."""

    def __init__(self, executor: SshExecutor) -> None:
        self._executor = executor
        self.released = False

    @property
    def executor(self) -> SshExecutor:
        return self._executor

    async def run(
        self,
        spec: StepSpec,
        *,
        on_output: OutputCallback | None = None,
        cancel: asyncio.Event | None = None,
    ) -> StepOutcome:
        """Run a step in this slot; as `SshExecutor.run` without the wait."""
        if self.released:
            raise RuntimeError("this step slot was released")
        self._executor.check_workdir(spec.workdir)
        return await self._executor._run_step(spec, on_output, cancel)


class SshExecutor:
    """The `Executor` for one SSH instance.

    Lifecycle: no I/O at construction; the connection is opened on first use, shared by every step and health
    check, and opened again on the next use after it was lost. `aclose()` closes it: running steps end as "infra",
    and their remote processes are stopped by the remote watchdog (SIGTERM, grace, SIGKILL).
    Concurrency: at most `instance.max_concurrent_steps` steps at once (an `asyncio.Semaphore`); others wait.
    Environment: the step gets exactly `DEFAULT_ENV`, HOME and `spec.env`, sent over the channel's stdin and
    exported by the remote shell (`env -i` clears the rest). asyncssh's `env=` is not used: sshd honours it only for
    names in its `AcceptEnv` (the test sshd without one silently dropped them), and it adds to sshd's own
    variables (SSH_CONNECTION, USER, MAIL, what ~/.bashrc exports) instead of replacing them. Variable names must
    be shell identifiers. Values never appear on a command line, so `ps` on the instance does not show them.
    Remote requirements: a POSIX /bin/sh, `setsid` (util-linux, with `-w`), `head`, `cat`, `sleep` and /proc.
    """

    def __init__(self, instance: SshInstance) -> None:
        self._instance = instance
        self._slots = asyncio.Semaphore(instance.max_concurrent_steps)
        self._busy = 0
        self._conn: asyncssh.SSHClientConnection | None = None
        self._connecting = asyncio.Lock()
        self._background: set[asyncio.Task[Any]] = set()
        self._closed = False

    def __repr__(self) -> str:
        return f"SshExecutor({self._instance.label})"

    @property
    def name(self) -> str:
        return f"ssh:{self._instance.name}"

    @property
    def instance(self) -> SshInstance:
        return self._instance

    @property
    def capacity(self) -> int:
        return self._instance.max_concurrent_steps

    @property
    def busy(self) -> int:
        """Slots held now (running steps and reservations)."""
        return self._busy

    @property
    def free(self) -> int:
        return self.capacity - self._busy

    @property
    def connected(self) -> bool:
        return self._conn is not None and not self._conn.is_closed()

    def check_workdir(self, workdir: str) -> None:
        """Raise `WorkdirOutsideRoot` unless `workdir` is an absolute path inside the instance's workspace root."""
        if not self._instance.contains(workdir):
            raise WorkdirOutsideRoot(
                f"workdir {workdir!r} is not inside the workspace root {self._instance.workspace_root!r}"
                f" of {self._instance.label}",
                instance=self._instance.name,
            )

    async def run(
        self,
        spec: StepSpec,
        *,
        on_output: OutputCallback | None = None,
        cancel: asyncio.Event | None = None,
    ) -> StepOutcome:
        """Run `spec` on the instance once a slot is free; see `Executor.run`."""
        self.check_workdir(spec.workdir)
        _check_env(spec)
        waited = time.monotonic()
        if not await self._acquire(cancel):
            return canceled_outcome(duration=time.monotonic() - waited, ran_on=self.name)
        self._busy += 1
        try:
            return await self._run_step(spec, on_output, cancel)
        finally:
            self._busy -= 1
            self._slots.release()

    @asynccontextmanager
    async def reserve(self) -> AsyncIterator[StepSlot]:
        """Hold one step slot (waiting for it) until the block ends; for pools that pick an instance first."""
        await self._slots.acquire()
        self._busy += 1
        slot = StepSlot(self)
        try:
            yield slot
        finally:
            slot.released = True
            self._busy -= 1
            self._slots.release()

    async def health_check(self, timeout: float = 10.0) -> Health:  # noqa: ASYNC109
        """Connect (or reuse the connection) and run a trivial command that also checks the remote requirements."""
        instance = self._instance
        script = (
            "command -v setsid >/dev/null || { echo 'setsid (util-linux) is not installed'; exit 1; };"
            ' [ -d "$1" ] || { printf "workspace root %s is not a directory\\n" "$1"; exit 1; };'
            " echo ok"
        )
        command = f"/bin/sh -c {shlex.quote(script)} taskmaster-health {shlex.quote(instance.workspace_root)}"
        try:
            conn = await self._connection()
        except _CONNECT_ERRORS as exc:
            return Health(False, None, f"cannot connect to {instance.label}: {_describe(exc)}")
        started = time.monotonic()
        try:
            result = await asyncio.wait_for(conn.run(command, check=False, encoding="utf-8"), timeout)
        except TimeoutError:
            return Health(False, None, f"{instance.label} did not answer a health check within {timeout:g}s")
        except (OSError, asyncssh.Error) as exc:
            return Health(False, None, f"health check on {instance.label} failed: {_describe(exc)}")
        latency = time.monotonic() - started
        lines = str(result.stdout or "").strip().splitlines()
        if result.exit_status != 0 or not lines or lines[-1] != "ok":
            detail = lines[-1] if lines else str(result.stderr or "").strip()[:200] or f"exit {result.exit_status}"
            return Health(False, latency, f"health check on {instance.label} failed: {detail}")
        return Health(True, latency, None)

    async def aclose(self) -> None:
        """Close the connection (running steps end as "infra") and wait for pending stop requests."""
        self._closed = True
        if self._background:
            await asyncio.wait(self._background, timeout=_SIGNAL_TIMEOUT)
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.close()
            with contextlib.suppress(Exception):
                await conn.wait_closed()

    async def _acquire(self, cancel: asyncio.Event | None) -> bool:
        """Take a slot; False if `cancel` was set first."""
        if cancel is None:
            await self._slots.acquire()
            return True
        if cancel.is_set():
            return False
        acquire = asyncio.ensure_future(self._slots.acquire())
        stop = asyncio.ensure_future(cancel.wait())
        try:
            await asyncio.wait({acquire, stop}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            stop.cancel()
            if not acquire.done():
                acquire.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await acquire
        if acquire.cancelled():
            return False
        if cancel.is_set():
            self._slots.release()
            return False
        return True

    async def _connection(self) -> asyncssh.SSHClientConnection:
        if self._closed:
            raise _ExecutorClosed("the executor is closed")
        async with self._connecting:
            conn = self._conn
            if conn is not None and not conn.is_closed():
                return conn
            self._conn = None
            instance = self._instance
            conn = await asyncssh.connect(
                instance.host,
                instance.port,
                username=instance.username,
                client_keys=list(instance.client_keys),
                known_hosts=None if instance.known_hosts is None else str(instance.known_hosts),
                config=None,  # only what the instance says: no ~/.ssh/config
                agent_path=None,
                password_auth=False,
                kbdint_auth=False,
                gss_auth=False,
                host_based_auth=False,
                connect_timeout=instance.connect_timeout,
                keepalive_interval=instance.keepalive_interval,
                keepalive_count_max=instance.keepalive_count_max,
            )
            self._conn = conn
            log.info("ssh connected", instance=instance.name, host=instance.host, port=instance.port)
            return conn

    async def _run_step(
        self, spec: StepSpec, on_output: OutputCallback | None, cancel: asyncio.Event | None
    ) -> StepOutcome:
        _check_env(spec)
        if cancel is not None and cancel.is_set():
            return canceled_outcome(duration=0.0, ran_on=self.name)
        step = _RemoteStep(self, spec)
        try:
            conn = await self._connection()
        except _CONNECT_ERRORS as exc:
            return step.infra(f"cannot connect to {self._instance.label}: {_describe(exc)}")
        return await step.run(conn, on_output, cancel)

    async def _signal(self, conn: asyncssh.SSHClientConnection, sig: str, session: int) -> None:
        """Send `sig` to the step's session over a second channel; connection problems are the caller's to see."""
        command = f"/bin/sh -c {shlex.quote(_SIGNAL_SCRIPT)} taskmaster-signal {sig} {session}"
        try:
            await asyncio.wait_for(conn.run(command, check=False), _SIGNAL_TIMEOUT)
        except (OSError, asyncssh.Error, TimeoutError) as exc:
            log.warning("could not signal a remote step", instance=self._instance.name, signal=sig, error=str(exc))

    def _kill_in_background(self, conn: asyncssh.SSHClientConnection, session: int) -> None:
        task = asyncio.get_running_loop().create_task(self._signal(conn, "KILL", session))
        self._background.add(task)
        task.add_done_callback(self._background.discard)


class _ExecutorClosed(Unavailable):
    """The executor was closed; never escapes `run` (it becomes an "infra" outcome)."""


_CONNECT_ERRORS = (OSError, asyncssh.Error, TimeoutError, _ExecutorClosed)


class _RemoteStep:
    """One run of a spec on the remote side: the channel, its two readers, and the stop sequence."""

    def __init__(self, executor: SshExecutor, spec: StepSpec) -> None:
        self.executor = executor
        self.instance = executor.instance
        self.spec = spec
        self.started = time.monotonic()
        self.session: int | None = None
        self.got_session = asyncio.Event()
        self.exit_status: int | None = None
        self.error: str | None = None
        self.diagnostics = b""
        self.forwarded = 0
        self.total = 0
        self.truncated = False
        self.timed_out = False
        self.canceled = False
        self.killed = False
        self.stopping = False

    def infra(self, reason: str) -> StepOutcome:
        log.warning("remote step failed", instance=self.instance.name, reason=reason)
        return infra_outcome(
            reason, duration=time.monotonic() - self.started, ran_on=self.executor.name, output_bytes=self.total
        )

    async def run(
        self, conn: asyncssh.SSHClientConnection, on_output: OutputCallback | None, cancel: asyncio.Event | None
    ) -> StepOutcome:
        label = self.instance.label
        grace = f"{self.spec.grace:.3f}"
        command = f'exec setsid -w env -i /bin/sh -c {shlex.quote(_WRAPPER)} taskmaster-step "$HOME" {grace}'
        try:
            process = await conn.create_process(command, encoding=None)
            payload = self._payload()
            process.stdin.write(b"%d\n" % len(payload) + payload)
            await process.stdin.drain()
        except (OSError, asyncssh.Error) as exc:
            return self.infra(f"cannot start the step on {label}: {_describe(exc)}")
        error: BaseException | None = None
        ended = asyncio.ensure_future(process.wait_closed())
        pump = asyncio.ensure_future(self._pump(process.stdout, on_output))
        status = asyncio.ensure_future(self._read_status(process.stderr))
        stop = asyncio.ensure_future(cancel.wait()) if cancel is not None else None
        tasks: set[asyncio.Future[Any]] = {ended, pump, status} | ({stop} if stop is not None else set())
        try:
            deadline = self.started + self.spec.timeout
            while True:
                remaining = max(0.0, deadline - time.monotonic())
                done, _ = await asyncio.wait(tasks, timeout=remaining, return_when=asyncio.FIRST_COMPLETED)
                if ended in done:
                    break
                if pump in done and _returned(pump) is not None:
                    error = _returned(pump)
                elif pump in done or status in done:
                    tasks -= done  # output closed or lost; the channel's end (or the deadline) decides
                    continue
                elif stop is not None and stop in done:
                    self.canceled = True
                else:
                    self.timed_out = True
                await self._stop(conn, process, ended)
                break
            await asyncio.wait({pump, status}, timeout=_DRAIN_SECONDS)
            if error is None and pump.done():
                error = _returned(pump)
        finally:
            for task in (ended, pump, status, stop):
                if task is not None and not task.done():
                    task.cancel()
            if not ended.done():  # run() itself was cancelled or failed: nothing may outlive it
                if self.session is not None and not conn.is_closed():
                    self.executor._kill_in_background(conn, self.session)
                process.close()
        if error is not None:
            raise error
        return self._outcome(conn)

    def _payload(self) -> bytes:
        env = {**DEFAULT_ENV, **self.spec.env}
        lines = [f"export {name}={shlex.quote(value)}" for name, value in env.items()]
        lines += [
            f"tm_dir={shlex.quote(self.spec.workdir)}",
            f"tm_cmd={shlex.quote(self.spec.command)}",
            f"tm_shell={shlex.quote(self.instance.shell)}",
        ]
        return ("\n".join(lines) + "\n").encode()

    async def _pump(self, stream: asyncssh.SSHReader[bytes], on_output: OutputCallback | None) -> BaseException | None:
        """Forward output up to the cap, then drain; returns (not raises) an exception from `on_output`."""
        cap = self.spec.max_output_bytes
        while chunk := await _read(stream.read(_READ_CHUNK)):
            self.total += len(chunk)
            if self.truncated:
                continue  # keep draining, so the remote step never blocks on a full window
            pieces = [chunk]
            if self.forwarded + len(chunk) > cap:
                marker = f"\n[taskmaster] output truncated: more than {cap} bytes; the rest is not kept\n"
                pieces = [chunk[: cap - self.forwarded], marker.encode()]
                self.forwarded = cap
                self.truncated = True
            else:
                self.forwarded += len(chunk)
            for piece in pieces:
                if piece and on_output is not None:
                    try:
                        await on_output(piece)
                    except Exception as exc:
                        return exc
        return None

    async def _read_status(self, stream: asyncssh.SSHReader[bytes]) -> None:
        """The wrapper's lines on stderr: the session id, an error, the exit status; anything else is kept."""
        while line := await _read(stream.readline()):
            if line.startswith(_PGID) and self.session is None:
                with contextlib.suppress(ValueError):
                    self.session = int(line[len(_PGID) :])
                    self.got_session.set()
            elif line.startswith(_EXIT):
                with contextlib.suppress(ValueError):
                    self.exit_status = int(line[len(_EXIT) :])
            elif line.startswith(_ERROR):
                self.error = line[len(_ERROR) :].decode(errors="replace").strip()
            elif len(self.diagnostics) < _DIAGNOSTICS_LIMIT:
                self.diagnostics += line

    async def _stop(
        self, conn: asyncssh.SSHClientConnection, process: asyncssh.SSHClientProcess[bytes], ended: asyncio.Future[Any]
    ) -> None:
        """SIGTERM the step's session over a second channel, SIGKILL after the grace period, then close."""
        self.stopping = True
        if self.session is None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.got_session.wait(), _PGID_WAIT)
        if self.session is not None and not conn.is_closed():
            await self.executor._signal(conn, "TERM", self.session)
            done, _ = await asyncio.wait({ended}, timeout=self.spec.grace)
            if not done and not conn.is_closed():
                self.killed = True
                await self.executor._signal(conn, "KILL", self.session)
                await asyncio.wait({ended}, timeout=_DRAIN_SECONDS)
        process.close()  # also ends the remote watchdog's wait: it stops whatever is left
        await asyncio.wait({ended}, timeout=_DRAIN_SECONDS)

    def _outcome(self, conn: asyncssh.SSHClientConnection) -> StepOutcome:
        label = self.instance.label
        diagnostics = self.diagnostics.decode(errors="replace").strip()
        if self.error is not None:
            return self.infra(f"{self.error} on {label}")
        if self.exit_status is None and conn.is_closed() and not self.executor._closed:
            return self.infra(f"connection lost to {label} during the step")
        if self.exit_status is None and self.executor._closed:
            return self.infra(f"the executor for {label} was closed during the step")
        if self.session is None and not (self.timed_out or self.canceled):
            first = " ".join(diagnostics.splitlines()[:3])[:500] or "the remote shell gave no reason"
            return self.infra(f"cannot start the step on {label}: {first}")
        if diagnostics:
            # After a stop, the shells' "Terminated" and setsid's "did not exit normally" are expected.
            report = log.debug if self.stopping else log.warning
            report("remote step diagnostics", instance=self.instance.name, text=diagnostics[:500])
        exit_code = self.exit_status
        if exit_code is None and self.killed:
            exit_code = 128 + 9
        sig = exit_code - 128 if exit_code is not None and 128 < exit_code <= 128 + 64 else None
        failure: FailureReason | None
        if self.canceled:
            failure, reason = None, "canceled"
        elif self.timed_out:
            failure, reason = FailureReason.TIMEOUT, f"timeout: the step ran longer than {self.spec.timeout:g}s"
        elif exit_code is None:
            failure, reason = (
                FailureReason.CODE,
                f"the step's shell on {label} ended without an exit status (killed from outside)",
            )
        elif exit_code != 0:
            failure = FailureReason.CODE
            reason = f"exit code {exit_code}" + (f" ({signal_name(sig)})" if sig else "")
        else:
            failure, reason = None, None
        return StepOutcome(
            exit_code=exit_code,
            signal=sig,
            timed_out=self.timed_out,
            canceled=self.canceled,
            output_truncated=self.truncated,
            duration=time.monotonic() - self.started,
            failure_reason=failure,
            reason=reason,
            output_bytes=self.total,
            ran_on=self.executor.name,
        )


async def _read(reading: Awaitable[bytes]) -> bytes:
    """A read from a channel stream; a lost connection reads as the end (the outcome says what happened)."""
    try:
        return await reading
    except (OSError, asyncssh.Error):
        return b""


def _check_env(spec: StepSpec) -> None:
    for name in spec.env:
        if not _NAME.match(name):
            raise InvalidInput(f"environment variable {name!r}: a remote step's variable names must be shell names")


def _returned(task: asyncio.Future[BaseException | None]) -> BaseException | None:
    """What a finished pump returned (an exception from `on_output`), or None (also if the stream itself failed)."""
    if task.cancelled() or task.exception() is not None:
        return None
    return task.result()


def _describe(exc: BaseException) -> str:
    if isinstance(exc, asyncssh.PermissionDenied):
        return f"authentication refused ({exc.reason or 'permission denied'})"
    if isinstance(exc, asyncssh.HostKeyNotVerifiable):
        return f"host key not verifiable against known_hosts ({exc.reason})"
    if isinstance(exc, asyncssh.DisconnectError):
        return exc.reason or type(exc).__name__
    if isinstance(exc, TimeoutError):
        return "timed out"
    if isinstance(exc, OSError) and exc.errno:
        return os.strerror(exc.errno)  # asyncio's own text ("Connect call failed") hides which failure it was
    return str(exc) or type(exc).__name__
