"""`taskmaster secrets rotate-key`."""

from __future__ import annotations

from typing import TYPE_CHECKING

import typer

from taskmaster.cli import common

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncSession

    from taskmaster.secrets.service import RotationResult

command = typer.Typer(no_args_is_help=True)


@command.command("rotate-key")
def rotate_key_command() -> None:
    """Make a new primary key and re-encrypt every stored secret under it.

    With the key file (the default) the file is updated and the old key dropped once all rows are rotated.
    With TASKMASTER_SECRET_KEYS the new key is printed: put it first in the variable, then run again.
    """
    from taskmaster.secrets.box import (
        SecretBox,
        key_file_path,
        load_or_create_key_file,
        new_key,
        write_key_file,
    )
    from taskmaster.secrets.service import reencrypt_all

    settings = common.settings()
    if settings.auth.secret_keys is not None:
        box = SecretBox.from_settings(settings)
        if len(box.keys) == 1:
            print(new_key())
            print(
                "taskmaster: add this key first in TASKMASTER_SECRET_KEYS (keep the old one after it), "
                "then run `taskmaster secrets rotate-key` again to re-encrypt",
            )
            return
    else:
        path = key_file_path(settings)
        box = SecretBox([new_key(), *load_or_create_key_file(path)])
        # Save the new key beside the old ones before any row uses it: a crash here loses nothing.
        write_key_file(path, box.keys)

    async def go(session: AsyncSession) -> RotationResult:
        return await reencrypt_all(session, box)

    result = common.run_in_transaction(settings, go)
    if settings.auth.secret_keys is None:
        write_key_file(key_file_path(settings), box.keys[:1])
    print(f"re-encrypted {result.values} secret(s) in {result.rows} row(s) under the new primary key")
