"""Backoff delays grow exponentially up to the cap, with the jittered fraction drawn at random."""

from __future__ import annotations

import random

from taskmaster.core.backoff import Backoff


def test_delays_grow_by_the_factor_up_to_the_cap_within_the_jitter_band() -> None:
    policy = Backoff(base=1.0, factor=2.0, cap=10.0, jitter=0.5)
    rng = random.Random(7)
    for retry, ceiling in [(1, 1.0), (2, 2.0), (3, 4.0), (4, 8.0), (5, 10.0), (9, 10.0)]:
        delays = [policy.delay(retry, rng) for _ in range(200)]
        assert all(ceiling / 2 <= d <= ceiling for d in delays), retry
        assert max(delays) - min(delays) > ceiling / 4  # really drawn, not constant


def test_without_jitter_the_delay_is_exact() -> None:
    assert [Backoff(base=0.5, factor=3.0, cap=100.0, jitter=0.0).delay(n) for n in (1, 2, 3)] == [0.5, 1.5, 4.5]
