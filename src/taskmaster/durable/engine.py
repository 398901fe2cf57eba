"""DBOS Transact set up from the settings: config, system database, launch and shutdown of the singleton.

DBOS keeps one engine per process; `launch` and `shutdown` are its only owners here.
"""

from __future__ import annotations

import logging
import math
import socket
import threading
from typing import Literal

from dbos import DBOS, DBOSConfig
from sqlalchemy.engine import make_url

import taskmaster
from taskmaster.config import Settings
from taskmaster.config.state import private_dir, private_file
from taskmaster.config.urls import sync_database_url
from taskmaster.core.errors import Conflict
from taskmaster.durable import names

WorkerMode = Literal["process", "in-process"]

_DBOS_CONSOLE_HANDLER = "__dbos_console_log_handler__"
_lock = threading.Lock()
_launched_executor: str | None = None


def application_version() -> str:
    """The version DBOS stamps on workflows. Explicit, so recovery never depends on a hash of source code."""
    return taskmaster.__version__


def executor_id(settings: Settings, mode: WorkerMode = "process") -> str:
    """This worker's identity: `worker.id` if set, else one derived from the host name.

    It must survive restarts: DBOS recovers, at launch, the pending workflows of its own executor id.
    An in-process worker gets its own suffix so a `taskmaster worker` on the same host never shares its id.
    """
    if settings.worker.id:
        return settings.worker.id
    host = socket.gethostname() or "localhost"
    return host if mode == "process" else f"{host}:in-process"


def system_database_url(settings: Settings) -> str:
    """SQLite file `<state_dir>/dbos.sqlite` on the embedded default; else the app's PostgreSQL database."""
    if settings.embedded:
        return f"sqlite:///{(settings.state_dir / names.SQLITE_FILE).resolve()}"
    url = make_url(sync_database_url(settings))
    # `DB_SSLMODE` is a separate setting; psycopg reads it from the URL.
    if settings.database.sslmode and "sslmode" not in url.query:
        url = url.update_query_dict({"sslmode": settings.database.sslmode})
    return url.render_as_string(hide_password=False)


def dbos_config(settings: Settings, *, mode: WorkerMode = "process") -> DBOSConfig:
    """The DBOS configuration for a worker. Pure: connects to nothing."""
    return DBOSConfig(
        name=names.APP_NAME,
        system_database_url=system_database_url(settings),
        dbos_system_schema=names.SYSTEM_SCHEMA,
        application_version=application_version(),
        executor_id=executor_id(settings, mode),
        enable_otlp=False,
        log_level=settings.logging.level.upper(),
    )


def ensure_system_database(settings: Settings) -> None:
    """Create or migrate DBOS's tables without launching DBOS (blocking; idempotent, safe to race)."""
    _prepare_state_dir(settings)
    _route_dbos_logs()
    DBOS.migrate(system_database_url(settings), schema=names.SYSTEM_SCHEMA)


def launch(settings: Settings, *, mode: WorkerMode = "process") -> str:
    """Create and launch this process's DBOS, listening to the job queue; returns the executor id.

    Blocking: call it from a thread when an event loop runs. Recovery of this executor's pending
    workflows starts here. Workflows must be registered (their modules imported) before the call.
    Raises `Conflict` if DBOS already runs in this process; on any other failure DBOS is torn down.
    """
    global _launched_executor
    with _lock:
        if _launched_executor is not None:
            raise Conflict(f"the durable engine already runs in this process as {_launched_executor}")
        config = dbos_config(settings, mode=mode)
        executor = executor_id(settings, mode)
        _prepare_state_dir(settings)
        _route_dbos_logs()
        try:
            DBOS(config=config)
            DBOS.launch()
            DBOS.register_queue(names.QUEUE, worker_concurrency=settings.worker.concurrency)
        except BaseException:
            DBOS.destroy()
            raise
        _launched_executor = executor
        return executor


def shutdown(grace_seconds: float = 0.0) -> None:
    """Stop dequeuing, wait up to `grace_seconds` for running workflows, then tear DBOS down (blocking).

    Workflows still running afterwards keep their threads and finish; if the process dies first,
    the next launch with the same executor id recovers them. The workflow registry is kept, so a
    later `launch` in this process still knows every job.
    """
    global _launched_executor
    with _lock:
        if _launched_executor is None:
            return
        try:
            DBOS.destroy(workflow_completion_timeout_sec=math.ceil(max(grace_seconds, 0.0)))
        finally:
            _launched_executor = None


def _prepare_state_dir(settings: Settings) -> None:
    if settings.embedded:
        private_dir(settings.state_dir)
        private_file(settings.state_dir / names.SQLITE_FILE)


def _route_dbos_logs() -> None:
    # DBOS installs its own console handler unless its logger already has one; a NullHandler keeps
    # it out, so DBOS's lines reach our root handler (JSON, with the job's request_id) instead.
    dbos_logger = logging.getLogger("dbos")
    dbos_logger.handlers[:] = [h for h in dbos_logger.handlers if h.name != _DBOS_CONSOLE_HANDLER]
    if not dbos_logger.handlers:
        dbos_logger.addHandler(logging.NullHandler())
    dbos_logger.propagate = True
