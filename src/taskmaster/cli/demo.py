"""`taskmaster demo`: a sample repository, its project on the local forge, its tasks and a pipeline."""

from __future__ import annotations

from pathlib import Path

import typer

from taskmaster.cli import common


def command(
    directory: Path | None = typer.Option(
        None, "--dir", help="Where to make the sample repository (default: <state dir>/demo/notes)."
    ),
    json_output: bool = typer.Option(False, "--json", help="Print the result as JSON."),
) -> None:
    """Make the demo: a tiny Python repository with its own .taskmaster.yml, the project `demo` for it on the local
    forge, its PRD parsed into tasks, and a pipeline for `main` that the server's worker runs."""
    from taskmaster.db.session import Database
    from taskmaster.runtime import Runtime
    from taskmaster.workflows.demo import DemoResult, create_demo

    settings = common.settings()

    async def go(db: Database) -> DemoResult:
        runtime = Runtime(settings, db=db)
        return await create_demo(
            settings, db, mirror=runtime.mirror, credentials=runtime.credentials, directory=directory, actor="cli:demo"
        )

    result = common.run_with_db(settings, go)
    if json_output:
        common.print_json(
            {
                "project_id": str(result.project_id),
                "repository": str(result.repository),
                "tasks": result.tasks,
                "pipeline_id": str(result.pipeline_id),
            }
        )
        return
    print(f"Made the project 'demo' for {result.repository}, with {result.tasks} tasks from its PRD,")
    print(f"and requested pipeline {result.pipeline_id} for main.")
    print("Start `taskmaster serve` (or `./dev serve`) and open http://127.0.0.1:3000/ to watch it run.")
