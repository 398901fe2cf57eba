"""Exponential backoff with jitter, for everything that retries (pipeline steps, webhook processing)."""

from __future__ import annotations

import random
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Backoff:
    """Delay before retry n (1, 2, ...): `base * factor**(n-1)`, at most `cap`, of which the `jitter` fraction is
    drawn at random (so retries of many steps failing together spread out)."""

    base: float = 1.0
    factor: float = 2.0
    cap: float = 60.0
    jitter: float = 0.5

    def delay(self, retry: int, rng: random.Random | None = None) -> float:
        raw = min(self.cap, self.base * self.factor ** max(retry - 1, 0))
        draw = (rng or random).random()
        return raw * (1 - self.jitter) + raw * self.jitter * draw
