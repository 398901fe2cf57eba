"""Every AI call is recorded with its tokens and a cost from the price table, and sums come per filter."""

from __future__ import annotations

from taskmaster.config.settings import CostSettings, ModelPrice
from taskmaster.costs.service import CallRecord, price_of, record_call, total
from taskmaster.db.session import Database
from tests.support.factories import make_project

PRICES = CostSettings().prices


def test_a_dated_model_takes_its_family_price() -> None:
    price = price_of(PRICES, "anthropic", "claude-sonnet-4-20250514")
    assert price == ModelPrice(input_per_mtok=3.0, output_per_mtok=15.0)
    assert price_of(PRICES, "openai", "gpt-4o-mini-2024-07-18") == PRICES["openai:gpt-4o-mini"]


def test_unknown_models_have_no_price_and_ollama_is_free() -> None:
    assert price_of(PRICES, "openai", "my-local-model") is None
    assert price_of(PRICES, "ollama", "llama3") == ModelPrice(input_per_mtok=0, output_per_mtok=0)


async def test_calls_are_priced_and_summed_per_project(db: Database) -> None:
    project = await make_project(db)
    other = await make_project(db)
    async with db.transaction() as session:
        row = await record_call(
            session,
            CallRecord(project.id, "review", "openai", "gpt-4o", input_tokens=1_000_000, output_tokens=100_000),
            prices=PRICES,
        )
        await record_call(session, CallRecord(project.id, "codegen", "codegen", cost_usd=0.5), prices=PRICES)
        await record_call(session, CallRecord(other.id, "review", "x", "unpriced", input_tokens=7), prices=PRICES)
        mine = await total(session, project_id=project.id)
        theirs = await total(session, project_id=other.id)
    assert row.cost_usd == 3.5
    assert (mine.calls, mine.input_tokens, mine.output_tokens, mine.cost_usd) == (2, 1_000_000, 100_000, 4.0)
    assert (theirs.calls, theirs.input_tokens, theirs.cost_usd) == (1, 7, 0.0)
