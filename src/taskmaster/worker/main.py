"""`run_worker(settings)`: the `taskmaster worker` process, from start-up to a graceful exit on a signal."""

from __future__ import annotations

import asyncio
import signal

import structlog

from taskmaster.config import Settings
from taskmaster.core.errors import TaskmasterError
from taskmaster.core.logging import configure_logging
from taskmaster.db.migrate import ensure_schema
from taskmaster.runtime import Runtime
from taskmaster.worker.runtime import WorkerRuntime

log = structlog.stdlib.get_logger("taskmaster.worker")

_STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)


def run_worker(settings: Settings) -> int:
    """Run a worker until SIGTERM or SIGINT, then stop gracefully. Returns the exit code: 0, or 1 if it
    could not start. A second signal during the shutdown gets the default behaviour (immediate exit); what was
    cut short stays leased to this worker id, resumed on its next start or taken over by another worker once
    its heartbeat is stale.
    Must be called from the main thread (it installs signal handlers) with no event loop running.
    """
    configure_logging(settings.logging.level, settings.logging.format)
    return asyncio.run(_serve(settings))


async def _serve(settings: Settings) -> int:
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()

    def on_signal(signum: int) -> None:
        log.info("worker stopping", signal=signal.Signals(signum).name)
        stop.set()
        for sig in _STOP_SIGNALS:
            loop.remove_signal_handler(sig)

    for sig in _STOP_SIGNALS:
        loop.add_signal_handler(sig, on_signal, sig)

    parts = Runtime(settings)
    runtime = WorkerRuntime(parts, mode="process")
    try:
        try:
            await ensure_schema(parts.db, embedded=settings.embedded)
            await runtime.start()
        except TaskmasterError as exc:
            log.error("worker could not start", error=exc.detail)
            return 1
        log.info("worker ready", worker=runtime.worker_id, database=parts.db.dialect)
        await stop.wait()
        return 0
    finally:
        await runtime.stop()
        await parts.aclose()
        for sig in _STOP_SIGNALS:
            loop.remove_signal_handler(sig)
