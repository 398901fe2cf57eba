"""`taskmaster serve`: the API server with uvicorn, and by default an in-process worker.

The port is bound before anything else starts, so a busy port fails at once; start-up says in a few lines what runs
where and what to do next, and leaves the rest (migrations, uvicorn's banner) to the debug log.
"""

from __future__ import annotations

import errno
import socket
import sys
from typing import TYPE_CHECKING, Annotated

import typer

from taskmaster.cli import common

if TYPE_CHECKING:
    from taskmaster.config import Settings


def command(
    host: Annotated[str | None, typer.Option(help="Interface to bind (default from TASKMASTER_HOST).")] = None,
    port: Annotated[int | None, typer.Option(help="Port (default 3000, or TASKMASTER_PORT; 0: any free port).")] = None,
    no_worker: Annotated[bool, typer.Option("--no-worker", help="Do not run a worker in this process.")] = False,
) -> None:
    """Start the API server."""
    settings = common.settings()
    bind_host = host or settings.server.host
    bind_port = port if port is not None else settings.server.port
    sock = _bind(bind_host, bind_port)
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
    config = uvicorn.Config(app, log_config=None, access_log=False, server_header=False)
    _banner(settings, sock, worker=not no_worker)
    uvicorn.Server(config).run(sockets=[sock])


def _bind(host: str, port: int) -> socket.socket:
    """The listening socket, or exit 2 with the reason before anything has started."""
    try:
        family = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0][0]
        sock = socket.socket(family, socket.SOCK_STREAM)
    except OSError as exc:
        common.fail(f"cannot listen on {host}:{port}: {exc.strerror or exc}")
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(2048)
    except OSError as exc:
        sock.close()
        if exc.errno == errno.EADDRINUSE:
            common.fail(
                f"port {port} on {host} is already in use (another `taskmaster serve`?): "
                "stop it, or choose another with --port or TASKMASTER_PORT"
            )
        common.fail(f"cannot listen on {host}:{port}: {exc.strerror or exc}")
    return sock


_ANY = frozenset({"0.0.0.0", "::"})  # noqa: S104 - recognising the wildcard address, not binding to it


def _banner(settings: Settings, sock: socket.socket, *, worker: bool) -> None:
    """A few lines for the person who started the server (stderr; the log stays machine-readable)."""
    from taskmaster import __version__

    host, port = sock.getsockname()[:2]
    shown = "127.0.0.1" if host in _ANY else host
    url = f"http://[{shown}]:{port}" if ":" in shown else f"http://{shown}:{port}"
    if settings.embedded:
        database = f"embedded SQLite in {settings.state_dir}/"
    else:
        database = "PostgreSQL (" + settings.database_url.rsplit("@", 1)[-1] + ")"
    runs = "with a worker in this process" if worker else "without a worker (run `taskmaster worker`)"
    lines = [
        f"Taskmaster {__version__} on {url} ({url}/docs for the API), {runs}",
        f"  database: {database}",
    ]
    if settings.embedded:
        lines.append(f"  admin token: {settings.admin_token_file} (send it as 'Authorization: Bearer <token>')")
    lines.append(
        "  next: taskmaster project add NAME --repo PATH, then taskmaster pipeline run -p NAME --ref main"
        " (docs/quickstart.md); Ctrl-C stops"
    )
    print("\n".join(lines), file=sys.stderr, flush=True)
