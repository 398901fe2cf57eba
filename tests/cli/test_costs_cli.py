"""Tokens and cost of AI calls in `taskmaster metrics` (per project and purpose) and `taskmaster pipeline show`."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

from taskmaster.db.session import Database
from tests.cli.conftest import Runner
from tests.conftest import make_settings
from tests.costs.seeding import Calls, seed_calls


async def _seed(state: Path) -> Calls:
    db = Database.from_settings(make_settings(state))
    try:
        return await seed_calls(db)
    finally:
        await db.dispose()


def test_metrics_and_pipeline_show_print_tokens_and_cost(taskmaster_cli: Runner, workdir: Path) -> None:
    assert taskmaster_cli("db", "migrate").returncode == 0
    calls = asyncio.run(_seed(workdir / ".taskmaster"))

    week = taskmaster_cli("metrics", "--window", "7d", "--json")
    assert week.returncode == 0, week.stderr
    costs = json.loads(week.stdout)["costs"]
    assert costs["total"]["calls"] == 5 and round(costs["total"]["cost_usd"], 4) == 4.5045
    day = json.loads(taskmaster_cli("metrics", "-p", "beta", "--json").stdout)["costs"]
    assert [(r["project"], r["purpose"], r["unpriced_calls"]) for r in day["rows"]] == [("beta", "codegen", 1)]

    table = taskmaster_cli("metrics")
    assert table.returncode == 0, table.stderr
    assert "AI calls in the last 24h" in table.stdout
    line = next(row for row in table.stdout.splitlines() if "review" in row)
    assert "alpha" in line and "1,001,000" in line and "3.5045" in line
    assert "(+1 unpriced)" in table.stdout

    shown = taskmaster_cli("pipeline", "show", str(calls.pipeline))
    assert shown.returncode == 0, shown.stderr
    assert "AI: 2 calls, 1,001,000 tokens in, 100,200 out, $3.5045" in shown.stdout
    as_json = json.loads(taskmaster_cli("pipeline", "show", str(calls.pipeline), "--json").stdout)
    assert as_json["ai"]["calls"] == 2 and as_json["ai"]["output_tokens"] == 100_200
