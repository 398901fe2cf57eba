"""Turn the database settings into the async SQLAlchemy URL the app and Alembic use."""

from __future__ import annotations

from typing import TYPE_CHECKING
from urllib.parse import quote

if TYPE_CHECKING:
    from taskmaster.config.settings import Settings

_SQLITE_FILE = "taskmaster.db"


def database_url(settings: Settings) -> str:
    """The async SQLAlchemy URL: `DATABASE_URL` wins, then `DB_HOST`…, else the embedded SQLite file."""
    db = settings.database
    if db.url:
        return _to_async(db.url)
    if db.host:
        auth = quote(db.user, safe="")
        if db.password is not None:
            auth += ":" + quote(db.password.get_secret_value(), safe="")
        return f"postgresql+asyncpg://{auth}@{db.host}:{db.port}/{quote(db.name, safe='')}"
    return f"sqlite+aiosqlite:///{(settings.state_dir / _SQLITE_FILE).resolve()}"


def _to_async(url: str) -> str:
    scheme, rest = url.split(":", 1)
    base = scheme.split("+", 1)[0]
    if base in {"postgresql", "postgres"}:
        return "postgresql+asyncpg:" + rest
    return "sqlite+aiosqlite:" + rest
