"""`taskmaster agentapi serve [OPTIONS] -- <agent command>`: an AgentAPI server for terminal coding agents."""

from __future__ import annotations

import os
import secrets
from pathlib import Path
from typing import Annotated

import typer

from taskmaster.cli import common

command = typer.Typer(no_args_is_help=True)

# The reference guesses the agent type from the program's name when --type is not given.
REAP_INTERVAL = 5.0  # seconds between collections of exited daemons adopted as subreaper
KNOWN_PROGRAMS = {"claude": "claude", "aider": "aider", "goose": "goose", "codex": "codex", "gemini": "gemini"}


@command.callback()
def group() -> None:
    """AgentAPI server for terminal coding agents."""


def _split(values: list[str]) -> list[str]:
    return [item.strip() for value in values for item in value.split(",") if item.strip()]


@command.command("serve", context_settings={"allow_interspersed_args": False})
def serve_command(
    agent_command: Annotated[list[str] | None, typer.Argument(help="The agent command, after `--`.")] = None,
    agent_type: Annotated[
        str | None, typer.Option("--type", "-t", help="claude, aider, goose, codex, gemini or custom.")
    ] = None,
    port: Annotated[int, typer.Option("--port", "-p", help="Port to listen on.")] = 3284,
    host: Annotated[str, typer.Option(help="Interface to bind.")] = "127.0.0.1",
    term_width: Annotated[int, typer.Option("--term-width", "-W", min=10, help="Terminal columns.")] = 80,
    term_height: Annotated[int, typer.Option("--term-height", "-H", min=10, help="Terminal rows.")] = 1000,
    allowed_hosts: Annotated[
        list[str] | None, typer.Option("--allowed-hosts", "-a", help="Allowed Host names (comma separated; '*').")
    ] = None,
    allowed_origins: Annotated[
        list[str] | None, typer.Option("--allowed-origins", "-o", help="Allowed CORS origins (comma separated; '*').")
    ] = None,
    auth_token: Annotated[
        str | None,
        typer.Option("--auth-token", help="Require this bearer token (default: one generated at start, saved 0600)."),
    ] = None,
    no_auth: Annotated[
        bool,
        typer.Option("--no-auth", help="No token, as the reference server: loopback interface and clients only."),
    ] = False,
    max_message_bytes: Annotated[
        int, typer.Option(min=1024, help="Largest request body accepted (uploads: 10 MB), else 413.")
    ] = 1 << 20,
    prompt_regex: Annotated[
        str | None, typer.Option("--prompt-regex", help="Regex matching the agent's input prompt row (custom).")
    ] = None,
    multi: Annotated[bool, typer.Option("--multi", help="Also serve /sessions (many agents in one server).")] = False,
    queue: Annotated[bool, typer.Option("--queue", help="Queue user messages sent while the agent is busy.")] = False,
    persist: Annotated[
        bool, typer.Option("--persist", help="Keep transcripts in the database and restore sessions on start.")
    ] = False,
    stability_window: Annotated[float, typer.Option(help="Seconds without screen change before `stable`.")] = 2.0,
    ping_interval: Annotated[float, typer.Option(help="Seconds between SSE keep-alive comments.")] = 15.0,
) -> None:
    """Run an agent in a pseudo-terminal and serve the AgentAPI HTTP API (one session, or many with --multi)."""
    argv = list(agent_command or [])
    if not argv and not multi:
        common.fail("give the agent command after `--` (or use --multi to start sessions over HTTP)")
    kind = agent_type or KNOWN_PROGRAMS.get(os.path.basename(argv[0]) if argv else "", "custom")
    if argv and kind == "custom" and not prompt_regex:
        # Without a pattern nothing tells a custom agent's prompt from its output: it would never become stable.
        common.fail(
            "a custom agent needs --prompt-regex, a regex matching its input prompt row (e.g. '^> ?$' or '\\$ $'),"
            " or --type claude|aider|goose|codex|gemini"
        )
    if no_auth and auth_token:
        common.fail("give --auth-token or --no-auth, not both")
    from taskmaster.agents.agentapi.guards import is_loopback

    if no_auth and not is_loopback(host):
        common.fail(f"--no-auth serves loopback only; --host {host} is not a loopback address")
    import asyncio

    import uvicorn

    from taskmaster.agents.agentapi.conversation import SessionConfig
    from taskmaster.agents.agentapi.rules import rules_for
    from taskmaster.agents.agentapi.server import DEFAULT_ALLOWED_HOSTS, DEFAULT_ALLOWED_ORIGINS, create_app
    from taskmaster.agents.agentapi.sessions import SessionManager
    from taskmaster.agents.agentapi.store import DatabaseStore, MemoryStore, TranscriptStore
    from taskmaster.core.errors import TaskmasterError

    try:
        rules_for(kind, prompt_regex)
    except TaskmasterError as exc:
        common.fail(exc.detail)
    token = auth_token
    if token is None and not no_auth:
        token = _new_token(common.settings().agentapi_token_file)
    db = None
    store: TranscriptStore = MemoryStore()
    if persist:
        from taskmaster.db.session import Database

        db = Database.from_settings(common.settings())
        store = DatabaseStore(db)
    from taskmaster.agents.agentapi.pty import enable_child_subreaper, reap_adopted

    # Daemons an agent detaches (Codex's app-server) stay below this process, and end with their session.
    subreaper = enable_child_subreaper()
    manager = SessionManager(store=store)
    exit_code = 0
    server: uvicorn.Server | None = None

    async def start(m: SessionManager) -> None:
        if persist:
            await m.restore(stability_window=stability_window)
        if argv and m.default_id is None:
            config = SessionConfig(
                argv=argv,
                agent_type=kind,
                columns=term_width,
                lines=term_height,
                prompt_regex=prompt_regex,
                stability_window=stability_window,
                queue=queue,
            )
            await m.create(config, default=True)
        if argv and not multi:
            asyncio.get_running_loop().create_task(_stop_when_agent_exits(m))
        if subreaper:
            asyncio.get_running_loop().create_task(_reap_adopted(m))

    async def _reap_adopted(m: SessionManager) -> None:
        # Daemons adopted as subreaper that exit on their own would stay zombies until their session ends.
        while True:
            await asyncio.sleep(REAP_INTERVAL)
            reap_adopted({pid for c in m.sessions.values() if (pid := c.pid) is not None})

    async def _stop_when_agent_exits(m: SessionManager) -> None:
        nonlocal exit_code
        code = await m.default.wait_exit()
        # As the reference does: the server lives as long as its one agent.
        exit_code = 0 if code == 0 else 1
        if server is not None:
            server.should_exit = True

    try:
        app = create_app(
            manager,
            multi=multi,
            allowed_hosts=_split(allowed_hosts or []) or DEFAULT_ALLOWED_HOSTS,
            allowed_origins=_split(allowed_origins or []) or DEFAULT_ALLOWED_ORIGINS,
            auth_token=token,
            max_body_bytes=max_message_bytes,
            stability_window=stability_window,
            ping_interval=ping_interval,
            on_startup=start,
        )
    except TaskmasterError as exc:
        common.fail(exc.detail)
    config = uvicorn.Config(app, host=host, port=port, log_config=None, access_log=False, lifespan="on")
    server = uvicorn.Server(config)
    try:
        server.run()
    finally:
        if db is not None:
            asyncio.run(db.dispose())
    if exit_code or not server.started:
        raise typer.Exit(exit_code or common.EXIT_FAILURE)


def _new_token(path: Path) -> str:
    """A fresh bearer token, saved to `path` (mode 0600, in a 0700 directory) and printed once."""
    token = secrets.token_urlsafe(32)
    try:
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(token + "\n")
        # An existing file keeps its old mode through O_CREAT: set it again.
        os.chmod(path, 0o600)
    except OSError as exc:
        common.fail(f"cannot save the AgentAPI token to {path}: {exc.strerror or exc}")
    print(f"AgentAPI token: {token}  (saved to {path}; send it as `Authorization: Bearer <token>`)", flush=True)
    return token
