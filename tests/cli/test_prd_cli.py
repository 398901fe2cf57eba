"""`taskmaster prd parse` through the real command: other file formats, --explain, and what a second parse does."""

from __future__ import annotations

import json
from pathlib import Path

from tests.cli.conftest import Runner

PRDS = Path(__file__).parents[1] / "tasks" / "prds"


def test_prd_parse_explains_refuses_a_second_copy_and_reads_word_files(taskmaster_cli: Runner, workdir: Path) -> None:
    assert taskmaster_cli("db", "migrate").returncode == 0
    assert taskmaster_cli("project", "add", "returns", "--repo", ".").returncode == 0
    docx = str(PRDS / "warehouse-returns.docx")
    parsed = taskmaster_cli("prd", "parse", docx, "-p", "returns", "--explain")
    assert parsed.returncode == 0, parsed.stderr
    lines = parsed.stdout.splitlines()
    assert lines[0] == "6 tasks from warehouse-returns.docx (#1–#6); 0 replaced"
    refund = lines.index(next(line for line in lines if "Trigger a refund" in line))
    assert lines[refund + 1].strip().startswith("from line") and "(RT-4)" in lines[refund + 1]
    assert lines[refund + 2].strip() == 'depends on #2: "Depends on RT-2" (line 23)'
    assert lines[refund + 3].strip() == 'priority: "P0" in the row' or "P0" in lines[refund + 3]
    again = taskmaster_cli("prd", "parse", docx, "-p", "returns")
    assert again.returncode == 1 and "already parsed into project returns (tasks #1–#6)" in again.stderr
    both = taskmaster_cli("prd", "parse", docx, "-p", "returns", "--replace", "--append")
    assert both.returncode == 2 and "exclude each other" in both.stderr
    replaced = taskmaster_cli("prd", "parse", docx, "-p", "returns", "--replace", "--json")
    assert replaced.returncode == 0 and len(json.loads(replaced.stdout)) == 6
    appended = taskmaster_cli("prd", "parse", docx, "-p", "returns", "--append")
    assert appended.returncode == 0 and "(#7–#12)" in appended.stdout
    odt = workdir / "prd.odt"
    odt.write_bytes(b"PK")
    refused = taskmaster_cli("prd", "parse", str(odt), "-p", "returns")
    assert refused.returncode == 1 and "cannot read .odt files" in refused.stderr
