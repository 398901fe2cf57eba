"""`taskmaster metrics`, run as the real command on the embedded database."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

from taskmaster.db.session import Database
from tests.cli.conftest import Runner
from tests.conftest import make_settings
from tests.pipelines.test_metrics import ALL_VALIDATION, ALPHA_VALIDATION, PUSH, Seeded, seed


async def _seed(state: Path) -> Seeded:
    db = Database.from_settings(make_settings(state))
    try:
        return await seed(db)
    finally:
        await db.dispose()


def test_metrics_prints_the_figures_as_json_and_as_tables(taskmaster_cli: Runner, workdir: Path) -> None:
    assert taskmaster_cli("db", "migrate").returncode == 0
    seeded = asyncio.run(_seed(workdir / ".taskmaster"))

    everything = taskmaster_cli("metrics", "--json")
    assert everything.returncode == 0, everything.stderr
    body = json.loads(everything.stdout)
    assert body["by_type"] == {"push": PUSH, "validation": ALL_VALIDATION}
    assert [(s["step_name"], s["failures"]) for s in body["failing_steps"]] == [("unit-tests", 3), ("lint", 2)]
    assert [p["id"] for p in body["stuck"]] == [str(seeded.ids[k]) for k in ("b2", "r1", "q1")]

    alpha = json.loads(taskmaster_cli("metrics", "-p", "alpha", "--window", "24h", "--top", "1", "--json").stdout)
    assert alpha["project_id"] == str(seeded.alpha)
    assert alpha["by_type"]["validation"] == ALPHA_VALIDATION
    assert [s["step_name"] for s in alpha["failing_steps"]] == ["lint"]
    assert json.loads(taskmaster_cli("metrics", "--window", "90m", "--json").stdout)["overall"]["total"] == 5

    table = taskmaster_cli("metrics", env={"COLUMNS": "80"})
    assert table.returncode == 0, table.stderr
    lines = table.stdout.splitlines()
    assert max(len(line) for line in lines) <= 80
    header = next(line for line in lines if "validation" in line and "push" in line)
    assert header.index("push") < header.index("validation") < header.index("all")
    rate = next(line for line in lines if line.lstrip("│ ").startswith("success rate"))
    assert rate.index("66.7%") < rate.index("60.0%")
    average = next(line for line in lines if line.lstrip("│ ").startswith("average time"))
    assert "5.3 s" in average and "4.0 s" in average
    assert any("unit-tests" in line for line in lines) and "assertion failed: 1 != 2" in table.stdout
    assert str(seeded.ids["b2"])[:13] in table.stdout and "3h 00m" in table.stdout
    assert "Stuck pipelines: running over 1h 00m, pending or" in table.stdout


def test_metrics_refuses_a_bad_window_and_an_unknown_project(taskmaster_cli: Runner) -> None:
    soon = taskmaster_cli("metrics", "--window", "soon")
    assert soon.returncode == 2
    assert soon.stderr.strip() == (
        "taskmaster: --window must be a whole number followed by m, h, d or w (like 90m, 24h, 7d), not 'soon'"
    )
    assert taskmaster_cli("db", "migrate").returncode == 0
    nowhere = taskmaster_cli("metrics", "-p", "nowhere")
    assert nowhere.returncode == 1 and "project nowhere does not exist" in nowhere.stderr
    empty = taskmaster_cli("metrics")
    assert empty.returncode == 0, empty.stderr
    assert "No failing steps in the window." in empty.stdout and "No stuck pipelines." in empty.stdout
