"""A child process on a real pseudo-terminal, read and written from the asyncio event loop.

The child leads its own session with the PTY as controlling terminal, so Ctrl-C typed as raw input reaches it as
SIGINT and ending the session signals its whole process group.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import fcntl
import os
import shutil
import signal
import struct
import subprocess
import termios
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from taskmaster.core.errors import InvalidInput

READ_CHUNK = 65536


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
                env=dict(env) if env is not None else None,
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
        """End the agent's process group: SIGTERM (and SIGHUP), then SIGKILL after `grace` seconds."""
        if not self._exited.done():
            self.signal_group(signal.SIGTERM)
            self.signal_group(signal.SIGHUP)
            try:
                await asyncio.wait_for(asyncio.shield(self._exited), grace)
            except TimeoutError:
                self.signal_group(signal.SIGKILL)
                await asyncio.wait_for(asyncio.shield(self._exited), grace)
        # Children that left the group's leader behind still hold the group id; make sure they are gone too.
        self.signal_group(signal.SIGKILL)
        self.close()
        return self._exited.result()

    def close(self) -> None:
        if self._master >= 0:
            self._loop.remove_reader(self._master)
            self._loop.remove_writer(self._master)
            os.close(self._master)
            self._master = -1
