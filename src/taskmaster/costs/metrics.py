"""Prometheus counters of AI calls (calls, tokens, cost) by purpose and provider, read from `ai_calls` at scrape
time so that every process (API, workers, CLI runs) counts; labels are bounded vocabularies, never project names."""

from __future__ import annotations

import time
from collections.abc import Iterable
from datetime import timedelta

from prometheus_client.metrics_core import CounterMetricFamily, Metric
from sqlalchemy.ext.asyncio import AsyncSession

from taskmaster.costs.service import CostTotal, totals_by_purpose

MAX_AGE = timedelta(seconds=30)
"""How long one read of the sums serves scrapes: the counters lag the table by at most this."""


class AiCallCollector:
    """A `prometheus_client` collector over the last `refresh`ed sums of `ai_calls`."""

    def __init__(self, *, max_age: timedelta = MAX_AGE) -> None:
        self.max_age = max_age
        self.totals: list[tuple[str, str, CostTotal]] = []
        self._read_at: float | None = None

    async def refresh(self, session: AsyncSession) -> None:
        """Read the sums again when the last read is older than `max_age`."""
        if self._read_at is None or time.monotonic() - self._read_at >= self.max_age.total_seconds():
            self.totals = await totals_by_purpose(session)
            self._read_at = time.monotonic()

    def describe(self) -> Iterable[Metric]:
        return self._families([])

    def collect(self) -> Iterable[Metric]:
        return self._families(self.totals)

    def _families(self, totals: list[tuple[str, str, CostTotal]]) -> list[Metric]:
        calls = CounterMetricFamily(
            "taskmaster_ai_calls", "Calls to models and coding agents, by purpose and provider.",
            labels=["purpose", "provider"],
        )  # fmt: skip
        tokens = CounterMetricFamily(
            "taskmaster_ai_tokens", "Tokens sent (input) and received (output), by purpose and provider.",
            labels=["purpose", "provider", "direction"],
        )  # fmt: skip
        cost = CounterMetricFamily(
            "taskmaster_ai_cost_usd", "Cost in US dollars from the price table (unpriced calls count 0).",
            labels=["purpose", "provider"],
        )  # fmt: skip
        for purpose, provider, total in totals:
            calls.add_metric([purpose, provider], total.calls)
            tokens.add_metric([purpose, provider, "input"], total.input_tokens)
            tokens.add_metric([purpose, provider, "output"], total.output_tokens)
            cost.add_metric([purpose, provider], total.cost_usd)
        return [calls, tokens, cost]
