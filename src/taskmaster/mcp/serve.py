"""Run the MCP server over stdio or streamable HTTP, with the database opened once for the whole process."""

from __future__ import annotations

from typing import TYPE_CHECKING

from taskmaster.config import Settings
from taskmaster.core.logging import get_logger
from taskmaster.mcp.auth import ExplainedUnauthorized
from taskmaster.mcp.handshake import Opening
from taskmaster.mcp.replay import replay_stdio
from taskmaster.mcp.server import build_server

if TYPE_CHECKING:
    from taskmaster.db.session import Database

log = get_logger(__name__)


async def serve_stdio(settings: Settings, opening: Opening | None = None) -> None:
    """Serve one client on stdin/stdout until it closes them. Nothing else may write to stdout.

    The schema is checked (the embedded database migrated) at the first tool call, not before `initialize`:
    clients wait for the handshake at start-up, and Alembic takes a good part of a second to load. `opening` is the
    client's first line, already read (and perhaps answered) by `handshake.answer_initialize`.
    """
    opened: list[Database] = []

    async def prepare() -> Database:
        from taskmaster.db import migrate
        from taskmaster.db.session import Database

        db = Database.from_settings(settings)
        opened.append(db)
        await migrate.ensure_schema(db, embedded=settings.embedded)
        return db

    try:
        server = build_server(None, settings, prepare=prepare)
        if opening is None:
            await server.run_stdio_async()
        else:
            await replay_stdio(server, opening)
    finally:
        for db in opened:
            await db.dispose()


async def serve_http(settings: Settings, *, host: str, port: int, path: str) -> None:
    """Serve streamable HTTP at `http://host:port/path`, each request authenticated by a Taskmaster token.

    On the embedded default, `<state dir>/admin-token` holds a token to start with, as for `taskmaster serve`.
    """
    import uvicorn

    from taskmaster.auth import service as auth_service
    from taskmaster.db import migrate
    from taskmaster.db.session import Database

    db = Database.from_settings(settings)
    try:
        await migrate.ensure_schema(db, embedded=settings.embedded)
        if settings.embedded:
            async with db.transaction() as session:
                token_file = await auth_service.ensure_local_admin_token(session, settings)
            log.info("local admin token ready", admin_token_file=str(token_file))
        base = f"http://{f'[{host}]' if ':' in host else host}:{port}"
        mcp_app = build_server(db, settings, http_url=base).streamable_http_app(streamable_http_path=path, host=host)
        app = ExplainedUnauthorized(mcp_app, db, settings)
        log.info("mcp server listening", url=base + path, auth="bearer token (Taskmaster API token or JWT)")
        config = uvicorn.Config(
            app, host=host, port=port, log_config=None, access_log=False, server_header=False, lifespan="on"
        )
        await uvicorn.Server(config).serve()
    finally:
        await db.dispose()
