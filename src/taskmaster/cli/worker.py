"""`taskmaster worker`: a worker process."""

from __future__ import annotations

import typer

from taskmaster.cli import common


def command() -> None:
    """Run a worker: it heart-beats and runs webhook deliveries, pipelines and workflow runs; it stops gracefully
    on SIGTERM."""
    settings = common.settings()
    from taskmaster.worker.main import run_worker

    raise typer.Exit(run_worker(settings))
