"""`taskmaster serve`: the API server with uvicorn, and by default an in-process worker."""

from __future__ import annotations

from typing import Annotated

import typer

from taskmaster.cli import common


def command(
    host: Annotated[str | None, typer.Option(help="Interface to bind (default from TASKMASTER_HOST).")] = None,
    port: Annotated[int | None, typer.Option(help="Port (default 3000, or TASKMASTER_PORT).")] = None,
    no_worker: Annotated[bool, typer.Option("--no-worker", help="Do not run a worker in this process.")] = False,
) -> None:
    """Start the API server."""
    settings = common.settings()
    import uvicorn

    from taskmaster.app import create_app, prepare_database
    from taskmaster.core.logging import configure_logging
    from taskmaster.db.session import Database

    configure_logging(settings.logging.level, settings.logging.format)

    async def prepare() -> None:
        db = Database.from_settings(settings)
        try:
            await prepare_database(settings, db)
        finally:
            await db.dispose()

    common.run(prepare())
    app = create_app(settings, run_worker=not no_worker, prepare=False)
    uvicorn.run(
        app,
        host=host or settings.server.host,
        port=port or settings.server.port,
        log_config=None,
        access_log=False,
        server_header=False,
    )
