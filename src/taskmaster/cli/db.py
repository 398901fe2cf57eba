"""`taskmaster db migrate | status | create-migration NAME`."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from taskmaster.cli import common

if TYPE_CHECKING:
    from taskmaster.db.migrate import MigrationStatus
    from taskmaster.db.session import Database

command = typer.Typer(no_args_is_help=True)


@command.command("migrate")
def migrate_command(revision: Annotated[str, typer.Argument(help="Target revision.")] = "head") -> None:
    """Bring the schema up to the code's head revision (creates the SQLite file on the embedded default)."""
    from taskmaster.db import migrate

    async def go(db: Database) -> MigrationStatus:
        await migrate.upgrade(db, revision)
        return await migrate.status(db)

    state = common.run_with_db(common.settings(), go, migrate=False)
    print(f"database at {state.current} (head {state.head})")


@command.command("status")
def status_command(json_output: bool = common.JsonOption) -> None:
    """Show the current and head revisions; exit 1 when the database is behind."""
    from taskmaster.db import migrate

    state = common.run_with_db(common.settings(), migrate.status, migrate=False)
    if json_output:
        common.print_json({"current": state.current, "head": state.head, "up_to_date": state.up_to_date})
    else:
        verdict = "up to date" if state.up_to_date else "behind: run `taskmaster db migrate`"
        print(f"current {state.current or '(empty)'}, head {state.head}: {verdict}")
    if not state.up_to_date:
        raise typer.Exit(common.EXIT_FAILURE)


@command.command("create-migration")
def create_migration_command(name: Annotated[str, typer.Argument(help="What the migration does.")]) -> None:
    """Autogenerate a migration from the difference between the models and the (migrated) database."""
    from taskmaster.db import migrate

    async def go(db: Database) -> str:
        if not (await migrate.status(db)).up_to_date:
            common.fail("the database is behind head; run `taskmaster db migrate` first", common.EXIT_FAILURE)
        return str(await migrate.create_migration(db, name))

    print(f"wrote {common.run_with_db(common.settings(), go, migrate=False)}")
