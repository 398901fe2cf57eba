"""Log context for a running job: its correlation id and job id ride structlog's contextvars."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import structlog
from dbos import DBOS


@contextmanager
def job_context(request_id: str | None, **extra: Any) -> Iterator[None]:
    """Bind `request_id`, the job id and `extra` for every log line written inside the block.

    Use it as the first thing in a workflow body: the body re-runs on recovery, so the binding does too.
    Steps of a synchronous workflow run in the workflow's thread and inherit it. Unbound on exit.
    """
    values: dict[str, Any] = {key: value for key, value in extra.items() if value is not None}
    if request_id is not None:
        values["request_id"] = request_id
    job_id = DBOS.workflow_id
    if job_id is not None:
        values["job_id"] = job_id
    with structlog.contextvars.bound_contextvars(**values):
        yield
