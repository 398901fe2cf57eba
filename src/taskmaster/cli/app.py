"""Assemble the Typer application from the command table (each command lives in its own module)."""

from __future__ import annotations

import importlib

import typer

from taskmaster.cli.commands import COMMANDS, SUMMARY


def build_app(only: str | None = None) -> typer.Typer:
    """The whole command tree, or with `only` just that command (the others' modules are never imported)."""
    app = typer.Typer(help=SUMMARY, no_args_is_help=True, add_completion=False, rich_markup_mode=None)
    # A callback keeps Typer in "group" mode even when `only` leaves a single command registered.
    app.callback()(_root)
    for name, module_name, summary in COMMANDS:
        if only is not None and name != only:
            continue
        module = importlib.import_module(f"taskmaster.cli.{module_name}")
        command = module.command
        if isinstance(command, typer.Typer):
            app.add_typer(command, name=name, help=summary)
        else:
            app.command(name=name, help=summary)(command)
    return app


def _root() -> None:
    """Taskmaster."""
