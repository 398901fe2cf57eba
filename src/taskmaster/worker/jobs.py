"""Built-in maintenance jobs, registered with DBOS when the worker runtime imports this module at start.

Each job takes `request_id` (passed by `JobClient.enqueue`) and binds it first, so its log lines carry it.
"""

from __future__ import annotations

import time
from typing import Any

import structlog
from dbos import DBOS

from taskmaster.core.errors import InvalidInput
from taskmaster.durable import names
from taskmaster.durable.context import job_context

log = structlog.stdlib.get_logger("taskmaster.worker.jobs")


@DBOS.workflow(name=names.NOOP_WORKFLOW)
def noop(steps: int, step_seconds: float, request_id: str | None = None) -> dict[str, Any]:
    """`steps` durable steps that each sleep `step_seconds`: a probe of the queue, the worker and recovery.

    A step that completed is never run again, even if the worker dies and the job is recovered.
    Returns `{"steps": steps, "executor_id": <the worker that finished it>}`.
    """
    with job_context(request_id, job=names.NOOP_WORKFLOW):
        if steps < 0 or step_seconds < 0:
            raise InvalidInput(f"noop needs steps >= 0 and step_seconds >= 0 (got {steps}, {step_seconds})")
        log.info("noop job running", steps=steps, step_seconds=step_seconds)
        for index in range(steps):
            _noop_step(index, steps, step_seconds)
        log.info("noop job finished", steps=steps)
        return {"steps": steps, "executor_id": DBOS.executor_id}


@DBOS.step(name=names.NOOP_STEP)
def _noop_step(index: int, total: int, seconds: float) -> int:
    log.info("noop step started", step=index, total=total)
    time.sleep(seconds)
    log.info("noop step finished", step=index, total=total)
    return index
