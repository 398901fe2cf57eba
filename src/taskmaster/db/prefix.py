"""Ids as people type them: a whole UUID, or a unique prefix of one (as git takes an abbreviated commit)."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

from sqlalchemy import String, cast, func, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import QueryableAttribute
from sqlalchemy.sql import ColumnElement

from taskmaster.core.errors import InvalidInput, NotFound

MIN_PREFIX = 4
SHORT_WIDTH = 13  # "01a242c3-1234": the millisecond part of a UUIDv7, so rows made a moment apart differ
_SHOWN = 10
_HEX = frozenset("0123456789abcdef")


def is_prefix(text: str) -> bool:
    """Whether `text` can be an id prefix: at least `MIN_PREFIX` hex digits (dashes allowed)."""
    digits = text.strip().lower().replace("-", "")
    return len(digits) >= MIN_PREFIX and set(digits) <= _HEX


async def resolve_id(
    session: AsyncSession,
    column: QueryableAttribute[uuid.UUID],
    text: str,
    what: str,
    *,
    where: ColumnElement[bool] | None = None,
) -> uuid.UUID:
    """The id in `column` that `text` names: the whole UUID, or the only one starting with `text`.

    `what` names the thing in messages ("pipeline"). Raises `InvalidInput` for text that is no id or prefix and for
    a prefix of several ids (listing them), `NotFound` when no id matches.
    """
    try:
        return uuid.UUID(text)
    except ValueError:
        pass
    if not is_prefix(text):
        raise InvalidInput(f"not a {what} id: {text!r} (give the id or at least {MIN_PREFIX} of its first characters)")
    digits = text.strip().lower().replace("-", "")
    # SQLite stores a UUID as 32 hex digits, PostgreSQL renders it with dashes: compare both without them.
    query: Any = select(column).where(func.replace(cast(column, String), "-", "").like(f"{digits}%"))
    if where is not None:
        query = query.where(where)
    found = list(await session.scalars(query.order_by(column).limit(_SHOWN + 1)))
    if not found:
        raise NotFound(f"no {what} id starts with {text!r}")
    if len(found) > 1:
        more = " and more" if len(found) > _SHOWN else ""
        listed = ", ".join(str(i) for i in found[:_SHOWN])
        raise InvalidInput(f"{text!r} is ambiguous: it starts the {what} ids {listed}{more}; give more characters")
    result: uuid.UUID = found[0]
    return result


def short_ids(ids: Sequence[uuid.UUID | str]) -> list[str]:
    """The ids cut to one width, at least `SHORT_WIDTH` characters and long enough that no two listed are alike."""
    full = [str(i) for i in ids]
    width = SHORT_WIDTH
    while width < 36 and len({i[:width] for i in full}) < len(set(full)):
        width += 1
    return [i[:width] for i in full]
