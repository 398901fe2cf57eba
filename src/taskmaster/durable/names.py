"""Names shared by the process that enqueues a job and the worker that runs it; changing one orphans jobs."""

from __future__ import annotations

from typing import Final

APP_NAME: Final = "taskmaster"
"""DBOS application name: owner of our queues and workflows in the system database."""

SYSTEM_SCHEMA: Final = "dbos"
"""PostgreSQL schema holding DBOS's tables, beside Taskmaster's own in the same database."""

SQLITE_FILE: Final = "dbos.sqlite"
"""Embedded default: DBOS's system database file under the state directory."""

QUEUE: Final = "taskmaster"
"""The default job queue every worker listens to."""

NOOP_WORKFLOW: Final = "maintenance.noop"
NOOP_STEP: Final = "maintenance.noop.step"
