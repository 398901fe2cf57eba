"""`taskmaster worker`: a durable worker process."""

from __future__ import annotations

import typer

from taskmaster.cli import common


def command() -> None:
    """Run a worker: it picks up durable jobs, heart-beats, and stops gracefully on SIGTERM."""
    settings = common.settings()
    from taskmaster.worker.main import run_worker

    raise typer.Exit(run_worker(settings))
