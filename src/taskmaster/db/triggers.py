"""One live row per trigger: a request for work (a pipeline, a workflow run) makes a new row unless a live one
already covers the same trigger, which a partial unique index enforces across concurrent requests."""

from __future__ import annotations

from typing import Any, TypeVar

from sqlalchemy import Select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

Row = TypeVar("Row")


async def add_unless_live(session: AsyncSession, row: Row, live: Select[Any]) -> tuple[Row, bool]:
    """The live row `live` selects, or `row` added; True when `row` was added. The caller owns the transaction.

    The insert runs in a savepoint: a concurrent request for the same trigger loses on the unique index, not the
    caller's transaction, and gets the winner's row."""
    existing: Row | None = await session.scalar(live)
    if existing is not None:
        return existing, False
    try:
        async with session.begin_nested():
            session.add(row)
    except IntegrityError:
        existing = await session.scalar(live)
        if existing is None:
            raise
        return existing, False
    return row, True
