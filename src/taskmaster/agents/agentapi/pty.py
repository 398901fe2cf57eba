"""A child process on a real pseudo-terminal, read and written from the asyncio event loop.

The child leads its own session with the PTY as controlling terminal, so Ctrl-C typed as raw input reaches it as
SIGINT. Ending it ends every process it started: its group, its descendants, and daemons that left both (found by
a marker in their environment; with `enable_child_subreaper` they stay our descendants too).
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import errno
import fcntl
import os
import secrets
import shutil
import signal
import struct
import subprocess
import termios
from collections.abc import Callable, Collection, Mapping, Sequence
from pathlib import Path

from taskmaster.core.errors import InvalidInput

READ_CHUNK = 65536
# Set in every agent's environment to a value unique to its session: processes that carry it belong to the session.
SESSION_MARKER = "TASKMASTER_AGENT_SESSION"
PR_SET_CHILD_SUBREAPER = 36


def enable_child_subreaper() -> bool:
    """Make this process the reaper of its orphaned descendants (Linux), so a daemon an agent detaches (double
    fork, new session) stays below us instead of moving to init. Returns whether the kernel agreed.

    Process-wide: call it from the process that hosts the agents (`agentapi serve`), not from a library.
    """
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return int(libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)) == 0
    except (OSError, AttributeError):
        return False


def _processes() -> dict[int, int]:
    """Every visible process id with its parent's id, from /proc."""
    found: dict[int, int] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/stat", "rb") as f:
                stat = f.read()
        except OSError:
            continue
        # The command name may hold spaces and parentheses: the fields that follow start after the last `)`.
        fields = stat[stat.rfind(b")") + 2 :].split()
        if len(fields) > 1:
            found[int(entry.name)] = int(fields[1])
    return found


def reap_adopted(keep: Collection[int]) -> int:
    """Collect the orphans this process adopted as subreaper once they exit; returns how many.

    `keep` are the agents' own pids: their `Popen` collects them, and must be the one that does.
    """
    me = os.getpid()
    reaped = 0
    for pid, parent in _processes().items():
        if parent != me or pid in keep:
            continue
        try:
            done, _status = os.waitpid(pid, os.WNOHANG)
        except OSError:
            continue
        reaped += bool(done)
    return reaped


def _carries(pid: int, marker: bytes) -> bool:
    try:
        with open(f"/proc/{pid}/environ", "rb") as f:
            return marker in f.read().split(b"\0")
    except OSError:
        return False


class PtyProcess:
    """One agent process. Lifecycle: `spawn` (on a running loop) -> `write`/output callbacks -> `terminate`.

    Not thread-safe: use it from the loop that spawned it. `on_output(bytes)` runs for every read, `on_exit(code)`
    once when the process has exited (the code is negative for a signal, as in `subprocess`).
    Raises InvalidInput from `spawn` when the command cannot be started.
    """

    def __init__(self, popen: subprocess.Popen[bytes], master: int, loop: asyncio.AbstractEventLoop) -> None:
        self._popen = popen
        self._master = master
        self._loop = loop
        self._out = bytearray()
        self._exited: asyncio.Future[int] = loop.create_future()
        self._eof = False
        self._pidfd: int | None = None
        self.marker = ""
        self.on_output: Callable[[bytes], None] = lambda _data: None
        self.on_exit: Callable[[int], None] = lambda _code: None

    @property
    def pid(self) -> int:
        return self._popen.pid

    @property
    def returncode(self) -> int | None:
        return self._exited.result() if self._exited.done() else None

    @classmethod
    def spawn(
        cls,
        argv: Sequence[str],
        *,
        columns: int = 80,
        lines: int = 1000,
        cwd: str | Path | None = None,
        env: Mapping[str, str] | None = None,
    ) -> PtyProcess:
        if not argv:
            raise InvalidInput("the agent command is empty")
        # Behind `setsid` a missing program would only show as an early exit; check it first for a clear error.
        program = argv[0]
        if "/" in program:
            found = os.access(Path(cwd or ".") / program, os.X_OK)
        else:
            found = shutil.which(program, path=(env or {}).get("PATH")) is not None
        if not found:
            raise InvalidInput(f"cannot start {program!r}: no such executable")
        marker = secrets.token_hex(12)
        env = {**(os.environ if env is None else env), SESSION_MARKER: marker}
        master, slave = os.openpty()
        try:
            fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", lines, columns, 0, 0))
            setsid = shutil.which("setsid")
            # `setsid --ctty` makes the PTY the controlling terminal without a preexec_fn, which is unsafe in a
            # process that runs threads; without it the child still gets its own session, minus job control.
            command = [setsid, "--ctty", *argv] if setsid else list(argv)
            popen = subprocess.Popen(  # noqa: S603 - running the configured agent command is the point
                command,
                stdin=slave,
                stdout=slave,
                stderr=slave,
                cwd=cwd,
                env=env,
                start_new_session=setsid is None,
                close_fds=True,
            )
        except (OSError, ValueError) as exc:
            os.close(master)
            raise InvalidInput(f"cannot start {argv[0]!r}: {exc}") from None
        finally:
            os.close(slave)
        os.set_blocking(master, False)
        process = cls(popen, master, asyncio.get_running_loop())
        process.marker = marker
        process._watch()
        return process

    def _watch(self) -> None:
        self._loop.add_reader(self._master, self._on_readable)
        try:
            self._pidfd = os.pidfd_open(self._popen.pid)
        except (AttributeError, OSError):
            self._loop.run_in_executor(None, self._popen.wait).add_done_callback(lambda _f: self._reap())
        else:
            self._loop.add_reader(self._pidfd, self._reap)

    def _on_readable(self) -> None:
        try:
            data = os.read(self._master, READ_CHUNK)
        except BlockingIOError:
            return
        except OSError as exc:
            if exc.errno not in (errno.EIO, errno.EBADF):
                raise
            data = b""
        if not data:
            self._eof = True
            self._loop.remove_reader(self._master)
            return
        self.on_output(data)

    def _reap(self) -> None:
        code = self._popen.poll()
        if code is None:
            return
        if self._pidfd is not None:
            self._loop.remove_reader(self._pidfd)
            os.close(self._pidfd)
            self._pidfd = None
        # Output written just before exit may still sit in the PTY; read it before reporting the exit.
        while not self._eof and self._master >= 0:
            try:
                data = os.read(self._master, READ_CHUNK)
            except OSError:
                break
            if not data:
                break
            self.on_output(data)
        if not self._exited.done():
            self._exited.set_result(code)
            self.on_exit(code)

    def write(self, data: bytes) -> None:
        """Queue bytes for the agent's terminal input; they are written as the PTY accepts them."""
        if self._master < 0 or self._exited.done():
            raise OSError(errno.EPIPE, "the agent has exited")
        pending = bool(self._out)
        self._out += data
        if not pending:
            self._flush()

    def _flush(self) -> None:
        try:
            written = os.write(self._master, self._out)
        except BlockingIOError:
            written = 0
        except OSError:
            self._out.clear()
            self._loop.remove_writer(self._master)
            return
        del self._out[:written]
        if self._out:
            self._loop.add_writer(self._master, self._flush)
        else:
            self._loop.remove_writer(self._master)

    async def wait(self) -> int:
        return await asyncio.shield(self._exited)

    def signal_group(self, signum: int) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self._popen.pid, signum)

    async def terminate(self, grace: float = 3.0) -> int:
        """End the agent and everything it started: SIGTERM (and SIGHUP), then SIGKILL after `grace` seconds.

        The agent's group gets the signals, and so does every other process of the session: descendants in other
        groups or sessions, and detached daemons that carry the session's marker.
        """
        others = self.session_processes()
        if not self._exited.done():
            self.signal_group(signal.SIGTERM)
            self.signal_group(signal.SIGHUP)
            _signal_all(others, signal.SIGTERM)
            try:
                await asyncio.wait_for(asyncio.shield(self._exited), grace)
            except TimeoutError:
                self.signal_group(signal.SIGKILL)
                await asyncio.wait_for(asyncio.shield(self._exited), grace)
        # Children that left the group's leader behind still hold the group id; make sure they are gone too.
        self.signal_group(signal.SIGKILL)
        others |= self.session_processes()
        _signal_all(others, signal.SIGKILL)
        await _reap(others)
        self.close()
        return self._exited.result()

    def session_processes(self) -> set[int]:
        """Every live process of this session but the agent itself: its descendants and the marked ones."""
        table = _processes()
        children: dict[int, list[int]] = {}
        for pid, parent in table.items():
            children.setdefault(parent, []).append(pid)
        found: set[int] = set()
        stack = [self.pid]
        while stack:
            for child in children.get(stack.pop(), []):
                if child not in found:
                    found.add(child)
                    stack.append(child)
        marker = f"{SESSION_MARKER}={self.marker}".encode()
        if self.marker:
            found.update(pid for pid in table if pid not in found and _carries(pid, marker))
        found.discard(self.pid)
        found.discard(os.getpid())
        return found

    def close(self) -> None:
        if self._master >= 0:
            self._loop.remove_reader(self._master)
            self._loop.remove_writer(self._master)
            os.close(self._master)
            self._master = -1


def _signal_all(pids: set[int], signum: int) -> None:
    for pid in pids:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signum)


async def _reap(pids: set[int], limit: float = 2.0) -> None:
    """Wait until the signalled processes are gone: collect the exit status of those that became our children (as
    their subreaper), so no zombie stays, and watch the others until they exit (a SIGKILL is delivered at once, but
    a busy machine may take a while to end the process). At most `limit` seconds."""
    waiting = set(pids)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + limit
    while waiting and loop.time() < deadline:
        for pid in list(waiting):
            try:
                done, _status = os.waitpid(pid, os.WNOHANG)  # noqa: ASYNC222 - WNOHANG never blocks
            except ChildProcessError:  # not our child: its parent reaps it; gone once it is dead
                done = 0 if _running(pid) else pid
            except OSError:
                done = pid
            if done:
                waiting.discard(pid)
        if waiting:
            await asyncio.sleep(0.02)


def _running(pid: int) -> bool:
    """Whether `pid` is a process that has not exited (a zombie has)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read()
    except OSError:
        return False
    fields = stat[stat.rfind(b")") + 2 :].split()
    return bool(fields) and fields[0] != b"Z"
