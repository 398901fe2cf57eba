"""Entry point of the `taskmaster` command. Heavy modules load only when a command needs them."""

from __future__ import annotations

import sys


def main(argv: list[str] | None = None) -> None:
    args = sys.argv[1:] if argv is None else argv
    if not args or args[0] in {"-h", "--help"}:
        from taskmaster.cli.commands import fast_help

        print(fast_help())
        return
    if args[0] == "--version":
        import taskmaster

        print(f"taskmaster {taskmaster.__version__}")
        return
    if args == ["mcp"] and sys.stdin is not None and not sys.stdin.isatty():
        # A client starting `taskmaster mcp` over stdio waits for its `initialize` answer, which needs none of the
        # command line, the settings or the MCP SDK (together well over the half second a client should wait).
        # At a terminal a person is typing: the settings are checked before waiting for their first line.
        from taskmaster.mcp.handshake import opening

        opening()
    from taskmaster.cli.app import build_app
    from taskmaster.cli.commands import COMMANDS

    known = {name for name, _, _ in COMMANDS}
    build_app(only=args[0] if args[0] in known else None)(args=args, prog_name="taskmaster")
