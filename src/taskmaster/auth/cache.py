"""A short-lived, in-process memory of authenticated API tokens, so the hot read paths skip one query.

A token revoked through this process's API stops working at once (the route drops it here); one revoked by
another process (the CLI, another server) stops working within `auth.token_cache_seconds` (default 10 s).
Expiry is checked on every use. JWTs are not cached: they are checked without the database anyway.
"""

from __future__ import annotations

import time
import uuid
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from taskmaster.auth.schemas import Principal
from taskmaster.core.clock import utcnow


@dataclass(frozen=True)
class _Entry:
    principal: Principal
    expires_at: datetime | None
    cached_at: float


class PrincipalCache:
    """Token hash -> principal for `ttl` seconds (0 disables it); at most `max_entries`, least recently used out."""

    def __init__(self, ttl: float, *, max_entries: int = 10_000, clock: Callable[[], float] = time.monotonic) -> None:
        self.ttl = ttl
        self.max_entries = max_entries
        self._clock = clock
        self._entries: OrderedDict[str, _Entry] = OrderedDict()

    def get(self, token_hash: str) -> Principal | None:
        entry = self._entries.get(token_hash)
        if entry is None:
            return None
        expired = entry.expires_at is not None and entry.expires_at <= utcnow()
        if expired or self._clock() - entry.cached_at >= self.ttl:
            del self._entries[token_hash]
            return None
        self._entries.move_to_end(token_hash)
        return entry.principal

    def put(self, token_hash: str, principal: Principal, expires_at: datetime | None) -> None:
        if self.ttl <= 0:
            return
        self._entries[token_hash] = _Entry(principal, expires_at, self._clock())
        self._entries.move_to_end(token_hash)
        while len(self._entries) > self.max_entries:
            self._entries.popitem(last=False)

    def forget(self, token_id: uuid.UUID) -> None:
        """Drop every entry of a token (it was revoked)."""
        for key in [k for k, e in self._entries.items() if e.principal.token_id == token_id]:
            del self._entries[key]
