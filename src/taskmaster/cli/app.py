"""Assemble the Typer application from the command table (each command lives in its own module)."""

from __future__ import annotations

import importlib

import typer

from taskmaster.cli.commands import COMMANDS, SUMMARY


def build_app() -> typer.Typer:
    app = typer.Typer(help=SUMMARY, no_args_is_help=True, add_completion=False, rich_markup_mode=None)
    for name, module_name, summary in COMMANDS:
        module = importlib.import_module(f"taskmaster.cli.{module_name}")
        command = module.command
        if isinstance(command, typer.Typer):
            app.add_typer(command, name=name, help=summary)
        else:
            app.command(name=name, help=summary)(command)
    return app
