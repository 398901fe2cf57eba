"""Expand a task into subtasks and score complexity: offline, and through a real SDK against a fake server."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import select

from taskmaster.agents.llm.anthropic import AnthropicProvider
from taskmaster.agents.llm.base import ProviderOutputError
from taskmaster.config.settings import ModelPrice
from taskmaster.core.errors import InvalidInput
from taskmaster.db.models import AiCall, Project
from taskmaster.db.session import Database
from taskmaster.projects import service as projects
from taskmaster.projects.schemas import ProjectCreate
from taskmaster.secrets.box import SecretBox, new_key
from taskmaster.tasks import refine, service
from taskmaster.tasks.schemas import TaskCreate
from taskmaster.templates import service as templates
from tests.agents.llm.fakes import ANTHROPIC_KEY, FakeLlm, user_prompt

PRICE = ModelPrice(input_per_mtok=3.0, output_per_mtok=15.0)
STEPS = "Read the ledger for the period. Convert amounts to the reporting currency. Write one CSV per entity."


async def _project_with_task(db: Database, details: str) -> Project:
    async with db.transaction() as session:
        project = await projects.create_project(
            session, spec=ProjectCreate(name="p", repository="/r"), box=SecretBox([new_key()])
        )
        locked = await service.lock_project(session, project.id)
        await service.create_task(session, project=locked, spec=TaskCreate(title="Export the ledger", details=details))
    return project


async def test_offline_expand_makes_ordered_subtasks_and_refuses_a_single_point(db: Database) -> None:
    project = await _project_with_task(db, STEPS)
    created = await refine.expand_task(db, project.id, "1")
    assert [t.title for t in created] == [
        "Read the ledger for the period",
        "Convert amounts to the reporting currency",
        "Write one CSV per entity",
    ]
    assert all(t.parent_task_id is not None for t in created)
    assert created[1].dependencies == [str(created[0].id)] and created[0].dependencies == []
    async with db.transaction() as session:
        locked = await service.lock_project(session, project.id)
        await service.create_task(session, project=locked, spec=TaskCreate(title="Tiny", details="Just one thing."))
    with pytest.raises(InvalidInput, match="single point"):
        await refine.expand_task(db, project.id, "5")


async def test_offline_complexity_is_stored_with_its_reasoning(db: Database) -> None:
    project = await _project_with_task(db, STEPS)
    scores = await refine.analyze_complexity(db, project.id)
    assert [(s.number, 1 <= s.complexity <= 10) for s in scores] == [(1, True)]
    async with db.session() as session:
        task = await service.get_task(session, project.id, 1)
    assert task.complexity == scores[0].complexity
    assert "offline estimate" in task.extra[refine.REASONING_FIELD]


async def test_llm_expand_through_the_anthropic_sdk(db: Database, anthropic_fake: tuple[str, FakeLlm]) -> None:
    url, fake = anthropic_fake
    project = await _project_with_task(db, STEPS)

    def brain(body: dict[str, Any]) -> dict[str, Any]:
        assert "Export the ledger" in user_prompt(body)
        return {"subtasks": [
            {"id": "a", "title": "Read ledger", "description": "d", "priority": 2, "type": "feature",
             "dependencies": []},
            {"id": "b", "title": "Write CSVs", "description": "d", "priority": 2, "type": "feature",
             "dependencies": ["a"]},
        ]}  # fmt: skip

    fake.reset(brain, api_key=ANTHROPIC_KEY)
    model = AnthropicProvider(api_key=ANTHROPIC_KEY, model="claude-test", base_url=url)
    try:
        created = await refine.expand_task(db, project.id, "1", model=model)
        assert [t.title for t in created] == ["Read ledger", "Write CSVs"]
        assert created[1].dependencies == [str(created[0].id)]
        sent = fake.requests[0].body
        assert sent["tool_choice"]["type"] == "tool"
    finally:
        await model.aclose()


async def test_offline_expand_follows_acceptance_criteria_and_the_work_they_imply(db: Database) -> None:
    async with db.transaction() as session:
        project = await projects.create_project(
            session, spec=ProjectCreate(name="inv", repository="/r"), box=SecretBox([new_key()])
        )
        locked = await service.lock_project(session, project.id)
        spec = TaskCreate(
            title="Let members accept an invite link",
            description="An invite link is stored with its expiry; the API redeems it and the screen shows the team.",
            test_strategy="- the invite link works once per person\n- an expired link shows a clear error",
        )
        await service.create_task(session, project=locked, spec=spec)
    created = await refine.expand_task(db, project.id, "1", num=10)
    titles = [t.title for t in created]
    assert titles == [
        "Model and store the data for members accept an invite link",
        "Expose members accept an invite link through the API",
        "Build the screens for members accept an invite link",
        "Ensure the invite link works once per person",
        "Ensure an expired link shows a clear error",
    ]
    assert not any(t.startswith("Acceptance") for t in titles)


async def test_offline_complexity_comes_from_structure_not_word_count(db: Database) -> None:
    project = await _project_with_task(db, "Export it.")
    async with db.transaction() as session:
        locked = await service.lock_project(session, project.id)
        long_words = " ".join(["words"] * 300)
        await service.create_task(session, project=locked, spec=TaskCreate(title="Wordy", details=long_words))
        rich = TaskCreate(
            title="Sync invoices", details="Store invoices in the database, expose an API and show a screen.",
            test_strategy="- one\n- two\n- three",
        )  # fmt: skip
        await service.create_task(session, project=locked, spec=rich)
    scores = {s.number: s for s in await refine.analyze_complexity(db, project.id)}
    assert scores[2].complexity == 1  # many words, no structure
    assert scores[3].complexity > scores[2].complexity
    assert "3 acceptance criteria" in scores[3].reasoning and "data, API, UI" in scores[3].reasoning


async def test_llm_expand_renders_the_active_template_version_and_records_its_tokens_and_cost(
    db: Database, anthropic_fake: tuple[str, FakeLlm]
) -> None:
    url, fake = anthropic_fake
    project = await _project_with_task(db, STEPS)
    async with db.transaction() as session:
        await templates.add_version(session, "task.expand", "Split {{ title }} into {{ num }} parts{{ context }}.")
    subtask = {"id": "a", "title": "Only", "description": "d", "priority": 2, "type": "feature", "dependencies": []}
    fake.reset(lambda body: {"subtasks": [subtask]}, api_key=ANTHROPIC_KEY)
    model = AnthropicProvider(api_key=ANTHROPIC_KEY, model="claude-sonnet-4-test", base_url=url)
    try:
        await refine.expand_task(db, project.id, "1", model=model, num=2, prices={"claude-sonnet-4": PRICE})
    finally:
        await model.aclose()

    assert user_prompt(fake.requests[0].body) == "Split Export the ledger into 2 parts."
    async with db.session() as session:
        (call,) = (await session.scalars(select(AiCall))).all()
    # Version 1 is the shipped default, kept in the history; the edit is version 2.
    assert (call.purpose, call.provider, call.model) == ("task.expand", "anthropic", "claude-sonnet-4-test")
    assert (call.template_name, call.template_version, call.project_id) == ("task.expand", 2, project.id)
    assert (call.input_tokens, call.output_tokens, call.requests) == (10, 20, 1)
    assert call.cost_usd == pytest.approx((10 * 3 + 20 * 15) / 1_000_000)


async def test_a_failed_llm_expand_still_records_the_tokens_it_spent(
    db: Database, anthropic_fake: tuple[str, FakeLlm]
) -> None:
    url, fake = anthropic_fake
    project = await _project_with_task(db, STEPS)
    fake.reset(lambda body: {"subtasks": [{"id": "a"}]}, api_key=ANTHROPIC_KEY)  # never valid
    model = AnthropicProvider(api_key=ANTHROPIC_KEY, model="claude-test", base_url=url, output_retries=1)
    try:
        with pytest.raises(ProviderOutputError):
            await refine.expand_task(db, project.id, "1", model=model)
    finally:
        await model.aclose()
    async with db.session() as session:
        (call,) = (await session.scalars(select(AiCall))).all()
    assert (call.requests, call.input_tokens, call.template_version, call.cost_usd) == (2, 20, 1, None)
