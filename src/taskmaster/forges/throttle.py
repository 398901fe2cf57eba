"""What the forge clients share about pacing: a per-installation write throttle, and when (and how long) to retry."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass

from taskmaster.core import http
from taskmaster.core.errors import InvalidInput

MUTATING_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE"})
# A zero wait must still be a real (tiny) pause: githubkit treats a zero retry delay as "wait 60 s".
MIN_RETRY_WAIT = 0.05


@dataclass(frozen=True, slots=True)
class RetryPolicy(http.RetryPolicy):
    """How hard a forge client tries (see `http.RetryPolicy`), every pause at least `MIN_RETRY_WAIT`.

    `max_rate_limit_wait` bounds the wait a rate limit may impose; a longer one is not waited out but raised as
    `ForgeRateLimited` (with `retry_after`) so callers that run from a queue can reschedule instead of holding a worker.
    """

    def backoff(self, retry: int) -> float:
        """The pause before retry number `retry` (0-based), at least `MIN_RETRY_WAIT`."""
        # Named base class, not super(): a slotted dataclass is a new class, which zero-argument super() misses.
        return max(MIN_RETRY_WAIT, http.RetryPolicy.backoff(self, retry))


@dataclass(frozen=True, slots=True)
class ThrottleSettings:
    """Per installation (GitHub App) or token: at most `max_concurrency` requests in flight, and at least
    `min_write_interval` seconds between the starts of two mutating requests (GitHub asks for one second).
    """

    max_concurrency: int = 10
    min_write_interval: float = 1.0

    def __post_init__(self) -> None:
        if self.max_concurrency < 1 or self.min_write_interval < 0:
            raise InvalidInput("throttle needs max_concurrency >= 1 and min_write_interval >= 0")


class WriteThrottle:
    """The pacing of one installation or token, shared by every request made with it (see `ThrottleSettings`)."""

    def __init__(self, settings: ThrottleSettings) -> None:
        self.settings = settings
        self._slots = asyncio.Semaphore(settings.max_concurrency)
        self._write_turn = asyncio.Lock()
        self._next_write_at = 0.0

    @asynccontextmanager
    async def slot(self, method: str) -> AsyncIterator[None]:
        """Hold one request's place: writes first wait their turn, then every request takes a concurrency slot."""
        if method.upper() in MUTATING_METHODS and self.settings.min_write_interval > 0:
            async with self._write_turn:
                # Holding the lock while sleeping queues writers in arrival order, each one interval apart.
                wait = self._next_write_at - time.monotonic()
                if wait > 0:
                    await asyncio.sleep(wait)
                self._next_write_at = time.monotonic() + self.settings.min_write_interval
        async with self._slots:
            yield


def retry_after_seconds(headers: Mapping[str, str], *, now: float | None = None) -> float | None:
    """How long the server asks to wait: `Retry-After` (seconds or HTTP date), else a rate-limit reset time
    (`x-ratelimit-reset` on GitHub, `RateLimit-Reset` on GitLab, both epoch seconds). None when it does not say.
    """
    current = time.time() if now is None else now
    asked = http.retry_after_seconds(headers, now=current)
    if asked is not None:
        return asked
    lowered = {key.lower(): value for key, value in headers.items()}
    for name in ("x-ratelimit-reset", "ratelimit-reset"):
        reset = lowered.get(name)
        if reset is not None and reset.strip().isdigit():
            return max(0.0, float(reset) - current)
    return None
