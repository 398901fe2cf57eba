"""What the worker's loops share: drain work until none is left, then wait for a wake-up or the poll interval."""

from __future__ import annotations

import asyncio
import contextlib

import structlog

log = structlog.stdlib.get_logger("taskmaster.worker")


class PollingLoop:
    """Subclasses implement `drain()` (do every piece of due work, return when none is left) and may extend
    `prepare()` (once, before the first drain). `wake()` (from this process) skips the wait; a failing drain (the
    database went away) is logged and retried after the poll interval, never ends the loop."""

    name = "loop"

    def __init__(self, poll_seconds: float) -> None:
        self.poll_seconds = poll_seconds
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name=self.name)

    def wake(self) -> None:
        self._wake.set()

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def prepare(self) -> None:
        """Work to do once when the loop starts."""

    async def drain(self) -> None:
        raise NotImplementedError

    async def _run(self) -> None:
        try:
            await self.prepare()
        except Exception as exc:  # a loop that cannot prepare still serves new work
            log.warning(f"{self.name} loop could not prepare", error=str(exc))
        while True:
            try:
                await self.drain()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning(f"{self.name} loop failed; trying again after the poll interval", error=str(exc))
            self._wake.clear()
            # asyncio.timeout, not wait_for: on Python 3.11 wait_for swallows a cancel that arrives as the wake-up
            # does (stop() right after a wake() then waited forever).
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.poll_seconds):
                    await self._wake.wait()
