"""What every command shares: settings (one clear line per problem), async running, JSON and tables."""

from __future__ import annotations

import asyncio
import json
import re
import sys
from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, Any, NoReturn, TypeVar

import typer

from taskmaster.config import ConfigurationError, Settings, load_settings
from taskmaster.core.errors import TaskmasterError

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncSession

    from taskmaster.db.session import Database

T = TypeVar("T")

EXIT_FAILURE = 1
EXIT_ERROR = 2

JsonOption = typer.Option(False, "--json", help="Print machine-readable JSON.")
YesOption = typer.Option(False, "--yes", "-y", help="Do it without asking.")


def fail(message: str, code: int = EXIT_ERROR) -> NoReturn:
    print(f"taskmaster: {message}", file=sys.stderr)
    raise typer.Exit(code)


def confirm(question: str, yes: bool) -> None:
    """Ask before something that cannot be undone; without `--yes` and without a terminal to ask on, refuse."""
    if yes:
        return
    if not sys.stdin.isatty():
        fail(f"{question.split('?')[0]}: not confirmed (no terminal to ask on); add --yes to do it")
    if not typer.confirm(question, default=False):
        fail("not done", EXIT_FAILURE)


def settings(*, logs: bool = True) -> Settings:
    """Read the configuration, or stop with one line per problem (never a stack trace).

    `logs=False` leaves logging alone (and structlog unimported): for the client path of the task commands, which
    logs nothing and must start fast.
    """
    try:
        loaded = load_settings()
    except ConfigurationError as exc:
        for problem in exc.problems:
            print(f"taskmaster: configuration error: {problem}", file=sys.stderr)
        raise typer.Exit(EXIT_ERROR) from None
    if not logs:
        return loaded
    from taskmaster.core.logging import configure_logging

    # Commands print their results on stdout (often JSON): log lines go to stderr, and only the ones that matter.
    # `serve` and `worker` configure logging again at the configured level.
    configure_logging("warning", loaded.logging.format, stream=sys.stderr)
    return loaded


def detail(exc: TaskmasterError) -> str:
    """The error's text; one that can be overridden names this door's option (`override`: "force" -> --force)."""
    override = exc.extra.get("override")
    return f"{exc.detail} with --{override}" if override else exc.detail


def run(awaitable: Awaitable[T]) -> T:
    """Run a coroutine; domain errors become one line on stderr and exit code 1."""

    async def wrapper() -> T:
        return await awaitable

    from sqlalchemy.exc import DBAPIError, OperationalError, ProgrammingError

    try:
        return asyncio.run(wrapper())
    except TaskmasterError as exc:
        fail(detail(exc), EXIT_FAILURE)
    except (ProgrammingError, OperationalError) as exc:
        line = _first_line(exc)
        if _MISSING_SCHEMA.search(line):
            fail(f"the database schema is behind this version: {line} (run `taskmaster db migrate`)", EXIT_FAILURE)
        fail(f"database error: {line}" if isinstance(exc, ProgrammingError) else _unreachable(line), EXIT_FAILURE)
    except (DBAPIError, OSError) as exc:
        fail(_unreachable(_first_line(exc)), EXIT_FAILURE)


# PostgreSQL's and SQLite's words for a table or column the code expects but the schema lacks.
_MISSING_SCHEMA = re.compile(r"(column|relation|table) .* does not exist|no such (column|table)", re.IGNORECASE)


def _unreachable(line: str) -> str:
    return f"cannot reach the database: {line}"


def run_with_db(settings: Settings, action: Callable[[Database], Awaitable[T]], *, migrate: bool = True) -> T:
    """Open the database, run `action`, always dispose the engine. The embedded database is first migrated to
    the schema of this version, as `serve` does (`migrate=False` for the `db` commands, which manage it)."""
    from taskmaster.db.session import Database

    async def go() -> T:
        db = Database.from_settings(settings)
        try:
            if migrate and settings.embedded:
                from taskmaster.db.migrate import upgrade

                await upgrade(db)
            return await action(db)
        finally:
            await db.dispose()

    return run(go())


def run_in_transaction(settings: Settings, action: Callable[[AsyncSession], Awaitable[T]]) -> T:
    """Run `action` in one transaction that commits on success."""

    async def go(db: Database) -> T:
        async with db.transaction() as session:
            return await action(session)

    return run_with_db(settings, go)


def _first_line(exc: BaseException) -> str:
    text = str(getattr(exc, "orig", None) or exc) or type(exc).__name__
    return text.strip().splitlines()[0]


def print_json(data: Any) -> None:
    print(json.dumps(data, indent=2, default=str))


_WHOLE_COLUMNS = frozenset({"id", "#"})
_SHORT_COLUMN = 12


def print_table(columns: Sequence[str], rows: Sequence[Sequence[Any]], title: str | None = None) -> None:
    from rich import box
    from rich.console import Console
    from rich.table import Table

    cells = [["" if cell is None else str(cell) for cell in row] for row in rows]
    # A column no row fills (no errors, no PRs yet) only takes room from those that say something.
    shown = [i for i, column in enumerate(columns) if not cells or column in _WHOLE_COLUMNS or any(r[i] for r in cells)]
    table = Table(title=title)
    widths = {i: max([len(columns[i]), *(len(row[i]) for row in cells)]) for i in shown}
    for i in shown:
        width = widths[i]
        if columns[i] in _WHOLE_COLUMNS or width <= _SHORT_COLUMN:
            # Ids are what people copy into the next command, and short values (a status, a time) read badly
            # broken: the long columns (titles, messages) wrap instead.
            table.add_column(columns[i], no_wrap=True, min_width=width)
        else:
            table.add_column(columns[i])
    for row in cells:
        table.add_row(*(row[i] for i in shown))
    console = Console()
    if sum(widths.values()) + 3 * len(shown) + 1 > console.width:  # each column's padding and rule, the edge
        # Too wide for the terminal: no vertical rules, so that the room goes to the text that has to wrap.
        table.box, table.show_edge = box.SIMPLE_HEAD, False
    console.print(table)


def require_planner(provider: str) -> None:
    """A usage error (exit 2) for an unknown `--provider`, before anything is opened."""
    from taskmaster.agents.llm import PLANNERS

    if provider not in PLANNERS:
        fail(f"--provider must be one of {', '.join(PLANNERS)} (got {provider!r})")
