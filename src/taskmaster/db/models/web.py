"""Dashboard sign-ins: a server-side session per browser, bound to the API token that opened it."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import ForeignKey, Index, String
from sqlalchemy.orm import Mapped, mapped_column

from taskmaster.db.base import Base, IdMixin, TimestampMixin


class WebSession(IdMixin, TimestampMixin, Base):
    """One signed-in browser. The cookie holds a random secret; only its SHA-256 is stored.

    The session acts with the role of `token_id`, checked on every request, so revoking the token ends the session.
    """

    __tablename__ = "web_sessions"
    __table_args__ = (Index("ix_web_sessions_expires_at", "expires_at"),)

    session_hash: Mapped[str] = mapped_column(String(64), unique=True)
    token_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("api_tokens.id", ondelete="CASCADE"))
    csrf_token: Mapped[str] = mapped_column(String(64))
    expires_at: Mapped[datetime]
