"""`taskmaster prd parse --provider anthropic|openai` with the real SDKs against fake servers on loopback."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from tests.agents.llm.fakes import ANTHROPIC_KEY, OPENAI_KEY, serve, user_prompt
from tests.cli.conftest import Runner

PRD = """# Shop

## Catalogue
The catalogue MUST list products with prices.

## Checkout
Checkout MUST take card payments once the catalogue is done.
"""


def _brain(body: dict[str, Any]) -> dict[str, Any]:
    prompt = user_prompt(body)
    tasks = []
    if "Catalogue" in prompt:
        tasks.append({"id": "t1", "title": "List products", "description": "Show products.", "priority": 1,
                      "type": "feature", "dependencies": [], "section": "Catalogue"})  # fmt: skip
    if "Checkout" in prompt:
        tasks.append({"id": "t2", "title": "Take card payments", "description": "Pay by card.", "priority": 2,
                      "type": "feature", "dependencies": ["List products"], "section": "Checkout"})  # fmt: skip
    return {"tasks": tasks}


@pytest.mark.parametrize("kind", ["anthropic", "openai"])
def test_prd_parse_with_a_provider_stores_the_models_plan(kind: str, taskmaster_cli: Runner, workdir: Path) -> None:
    prd = workdir / "shop.md"
    prd.write_text(PRD)
    assert taskmaster_cli("db", "migrate").returncode == 0
    assert taskmaster_cli("project", "add", "shop", "--repo", ".").returncode == 0
    with serve(kind) as (url, fake):
        fake.reset(_brain)
        env = (
            {"ANTHROPIC_BASE_URL": url, "ANTHROPIC_API_KEY": ANTHROPIC_KEY}
            if kind == "anthropic"
            else {"OPENAI_BASE_URL": url, "OPENAI_API_KEY": OPENAI_KEY}
        )
        result = taskmaster_cli("prd", "parse", str(prd), "-p", "shop", "--provider", kind, "--json", env=env)
    assert result.returncode == 0, result.stderr
    tasks = {t["title"]: t for t in json.loads(result.stdout)}
    assert set(tasks) == {"List products", "Take card payments"}
    assert tasks["Take card payments"]["dependencies"] == [tasks["List products"]["id"]]
    assert tasks["List products"]["priority"] == 1
    assert fake.requests, "the provider was never called"
    sent = fake.requests[0].body
    if kind == "anthropic":
        assert sent["tool_choice"]["type"] == "tool" and sent["tools"][0]["input_schema"]["properties"]["tasks"]
    else:
        assert sent["response_format"]["type"] == "json_schema"
    assert "card payments" in json.dumps(sent)
    with sqlite3.connect(workdir / ".taskmaster" / "taskmaster.db") as conn:
        templates = conn.execute("select name, version, is_active from templates where name = 'prd.parse'").fetchall()
        calls = conn.execute(
            "select purpose, provider, template_name, template_version, requests, input_tokens, output_tokens"
            " from ai_calls"
        ).fetchall()
    assert templates == [("prd.parse", 1, 1)]  # seeded by the migration, rendered as it is
    assert calls == [("prd.parse", kind, "prd.parse", 1, 1, 10, 20)]
    assert ANTHROPIC_KEY not in result.stdout + result.stderr and OPENAI_KEY not in result.stdout + result.stderr


def test_unknown_provider_and_missing_key_are_clear(taskmaster_cli: Runner, workdir: Path) -> None:
    prd = workdir / "shop.md"
    prd.write_text(PRD)
    assert taskmaster_cli("db", "migrate").returncode == 0
    assert taskmaster_cli("project", "add", "shop", "--repo", ".").returncode == 0
    unknown = taskmaster_cli("prd", "parse", str(prd), "-p", "shop", "--provider", "gpt")
    assert unknown.returncode == 2 and "--provider must be one of" in unknown.stderr
    no_key = taskmaster_cli("prd", "parse", str(prd), "-p", "shop", "--provider", "anthropic")
    assert no_key.returncode == 1 and "ANTHROPIC_API_KEY" in no_key.stderr
