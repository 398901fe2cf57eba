"""`taskmaster mcp`: the task manager as MCP tools for coding agents, over stdio or streamable HTTP."""

from __future__ import annotations

from typing import Annotated

import typer

from taskmaster.cli import common

DEFAULT_PORT = 3001


def command(
    http: Annotated[bool, typer.Option("--http", help="Serve streamable HTTP instead of stdio.")] = False,
    host: Annotated[str, typer.Option(help="With --http: the interface to bind.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=1, max=65535, help="With --http: the port.")] = DEFAULT_PORT,
    path: Annotated[str, typer.Option(help="With --http: the endpoint's path.")] = "/mcp",
) -> None:
    """Serve the task manager as MCP tools (stdio by default). Over HTTP every request needs a Taskmaster API
    token (`Authorization: Bearer tm_…`), with the same roles as the REST API."""
    if not path.startswith("/"):
        common.fail(f"--path must start with '/' (got {path!r})")
    settings = common.settings()
    from taskmaster.core.logging import configure_logging

    # Logs go to stderr: over stdio, stdout carries the protocol and nothing else.
    configure_logging(settings.logging.level, settings.logging.format)
    if http:
        from taskmaster.mcp.serve import serve_http

        common.run(serve_http(settings, host=host, port=port, path=path))
        return
    from taskmaster.mcp.handshake import opening

    # Usually answered already by the entry point (`cli.main`), before the command line and settings loaded.
    first = opening()
    # Not `common.run`: its database error handling loads SQLAlchemy, which stdio defers past the handshake (tool
    # calls report database errors themselves).
    import asyncio

    from taskmaster.core.errors import TaskmasterError
    from taskmaster.mcp.serve import serve_stdio

    try:
        asyncio.run(serve_stdio(settings, first))
    except TaskmasterError as exc:
        common.fail(exc.detail, common.EXIT_FAILURE)
