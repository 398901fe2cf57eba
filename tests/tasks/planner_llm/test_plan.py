"""PRD -> plan through the real SDKs and fake model servers: storing, repair, a 200-page PRD in parallel, merging."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from taskmaster.agents.llm import LlmProvider, ProviderError, provider_from_settings
from taskmaster.core import graph
from taskmaster.core.errors import InvalidInput
from taskmaster.db.models import Task
from taskmaster.db.session import Database
from taskmaster.projects import service as projects
from taskmaster.projects.schemas import ProjectCreate
from taskmaster.secrets.box import SecretBox, new_key
from taskmaster.tasks import service
from taskmaster.tasks.planner.chunking import chunk_document
from taskmaster.tasks.planner.llm import PlanIssue, plan_with_llm
from tests.agents.llm.fakes import ANTHROPIC_KEY, OPENAI_KEY, FakeLlm, Status, turns, user_prompt
from tests.conftest import make_settings

SMALL_PRD = """\
# Shop

An online shop for used books.

## Accounts

Users MUST be able to sign up with an email address and a password.

## Checkout

Users MUST be able to pay by card. Checkout requires an account.
"""


def llm_for(kind: str, url: str, state_dir: Path) -> LlmProvider:
    if kind == "anthropic":
        settings = make_settings(state_dir, ANTHROPIC_API_KEY=ANTHROPIC_KEY, ANTHROPIC_BASE_URL=url)
        return provider_from_settings(settings, "anthropic", "test-model")
    settings = make_settings(state_dir, OPENAI_API_KEY=OPENAI_KEY, OPENAI_BASE_URL=url)
    return provider_from_settings(settings, "openai", "test-model")


@pytest.fixture(params=["anthropic", "openai"])
def kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def fake(kind: str, request: pytest.FixtureRequest) -> tuple[str, FakeLlm]:
    server: tuple[str, FakeLlm] = request.getfixturevalue(f"{kind}_fake")
    return server


def chunk_text(body: dict[str, Any]) -> str:
    """The PRD text the default prompt carries between its markers."""
    prompt = user_prompt(body)
    return prompt[prompt.index("<<<\n") + 4 : prompt.rindex("\n>>>")]


def task(
    id: str, title: str, *, deps: tuple[str, ...] = (), priority: int = 2, section: str | None = None
) -> dict[str, Any]:
    return {
        "id": id,
        "title": title,
        "description": f"{title}.",
        "details": None,
        "test_strategy": "unit tests",
        "priority": priority,
        "type": "feature",
        "complexity": 3,
        "dependencies": list(deps),
        "section": section,
    }


def small_brain(body: dict[str, Any]) -> dict[str, Any]:
    """Answers per section of SMALL_PRD; the first answer of each conversation has an out-of-range priority."""
    text = chunk_text(body)
    tasks = []
    if "## Accounts" in text:
        tasks += [task("t1", "Create account sign-up", section="Accounts"), task("t2", "Test sign-up", deps=("t1",))]
    if "## Checkout" in text:
        tasks += [task("t3", "Card payment at checkout", deps=("Create account sign-up",), section="Checkout")]
    if turns(body) == 1:
        tasks[0]["priority"] = 7
    return {"tasks": tasks}


async def test_parsing_sends_a_schema_constrained_request_recovers_from_an_invalid_answer_and_stores_the_tasks(
    kind: str, fake: tuple[str, FakeLlm], state_dir: Path, db: Database
) -> None:
    url, server = fake
    server.reset(small_brain)
    llm = llm_for(kind, url, state_dir)
    issues: list[PlanIssue] = []
    plan = await plan_with_llm(llm, SMALL_PRD, issues=issues)
    await llm.aclose()

    first, repaired = server.requests  # the whole PRD fits one chunk: one answer, one repair
    if kind == "anthropic":
        assert first.body["tool_choice"]["name"] == "chunk_plan"
        assert first.body["tools"][0]["input_schema"]["properties"]["tasks"]["type"] == "array"
        assert "priority" in repaired.body["messages"][-1]["content"][0]["content"]
    else:
        assert first.body["response_format"]["json_schema"]["name"] == "chunk_plan"
        assert first.body["response_format"]["json_schema"]["strict"] is True
        # Strict mode refuses `default`; the response model is written so that the strict schema has none.
        assert '"default"' not in json.dumps(first.body["response_format"])
        assert "priority" in repaired.body["messages"][-1]["content"]
    assert [t.title for t in plan] == ["Create account sign-up", "Test sign-up", "Card payment at checkout"]
    assert [t.key for t in plan] == ["1", "2", "3"]
    assert plan[1].dependencies == ["1"] and plan[2].dependencies == ["1"]
    assert [t.source_section for t in plan] == ["Shop > Accounts", "Shop", "Shop > Checkout"]
    assert issues == []

    async with db.transaction() as session:
        project = await projects.create_project(
            session, spec=ProjectCreate(name="shop", repository="/r"), box=SecretBox([new_key()])
        )
        await service.lock_project(session, project.id)
        result = await service.import_planned(session, project, plan)
    assert result.created == 3 and result.unresolved == []
    async with db.transaction() as session:
        rows = (await session.scalars(select(Task).where(Task.project_id == project.id).order_by(Task.number))).all()
        by_title = {row.title: row for row in rows}
        checkout = by_title["Card payment at checkout"]
        assert checkout.dependencies == [str(by_title["Create account sign-up"].id)]
        assert checkout.source_section == "Shop > Checkout"
        assert by_title["Create account sign-up"].priority == 2


# ---------------------------------------------------------------------------------------------- a 200-page PRD

SECTIONS = 200
FILLER = (
    "The system MUST handle this capability for every tenant, log each change for audit, and expose it through "
    "the public API with pagination, filtering and sorting; errors are reported with a stable code. "
)


def big_prd() -> str:
    """About 500 KB: 200 sections of six paragraphs under one title."""
    parts = ["# Big PRD", "A product with two hundred capabilities."]
    for n in range(1, SECTIONS + 1):
        parts.append(f"## Feature {n}: Capability {n}")
        parts += [f"Paragraph {p} of feature {n}. " + FILLER * 2 for p in range(6)]
    return "\n\n".join(parts)


DB_TITLES = ["Set up the database", "Set up database", "Set up databases"]


def big_brain(body: dict[str, Any]) -> dict[str, Any]:
    """Tasks per feature heading in the chunk, with local ids that restart in every chunk (t1, t2, ...)."""
    text = chunk_text(body)
    numbers = [int(n) for n in re.findall(r"^## Feature (\d+):", text, flags=re.MULTILINE)]
    db_title = DB_TITLES[numbers[0] % 3]
    tasks = [task("db", db_title, priority=1 + numbers[0] % 4)]
    for i, n in enumerate(numbers):
        section = f"Feature {n}: Capability {n}"
        build, test = f"t{2 * i + 1}", f"t{2 * i + 2}"
        deps = ["db"] + ([f"Build feature {n - 1}"] if n > 1 else [])
        if n == 7:
            deps.append("Quantum flux capacitor")
        if n == 50:
            deps.append("Build feature 120")  # closes a loop through the chain 120 -> 119 -> ... -> 50
        tasks.append(task(build, f"Build feature {n}", deps=tuple(deps), section=section))
        tasks.append(task(test, f"Test feature {n}", deps=(build,), section=section))
        if n % 10 == 0 and n < SECTIONS:
            tasks.append(task(f"d{n}", f"Document feature {n}", deps=(f"Build feature {n + 1}",), section=section))
    return {"tasks": tasks}


async def test_a_200_page_prd_is_chunked_parsed_in_parallel_and_merged_into_one_sound_graph(
    kind: str, fake: tuple[str, FakeLlm], state_dir: Path
) -> None:
    url, server = fake
    server.reset(big_brain, delay=0.02)
    text = big_prd()
    assert len(text) > 450_000
    chunks = chunk_document(text)
    progress: list[tuple[int, int]] = []
    issues: list[PlanIssue] = []
    llm = llm_for(kind, url, state_dir)
    plan = await plan_with_llm(llm, text, concurrency=4, progress=lambda done, total: progress.append((done, total)),
                               issues=issues)  # fmt: skip
    await llm.aclose()

    # Every chunk asked once, several at a time but never more than allowed.
    assert len(chunks) > 30
    assert len(server.requests) == len(chunks)
    assert 1 < server.max_in_flight <= 4
    assert progress[0] == (0, len(chunks)) and progress[-1] == (len(chunks), len(chunks))
    assert [done for done, _ in progress] == list(range(len(chunks) + 1))

    # Every chunk's tasks arrived, with their own section.
    by_title = {t.title: t for t in plan}
    for n in range(1, SECTIONS + 1):
        for title in (f"Build feature {n}", f"Test feature {n}"):
            assert by_title[title].source_section == f"Big PRD > Feature {n}: Capability {n}"
    assert len(plan) == 2 * SECTIONS + 19 + 1
    assert [t.key for t in plan] == [str(i) for i in range(1, len(plan) + 1)]

    # Duplicates merged: one database task, the highest priority, the other sections remembered.
    firsts = [int(re.search(r"## Feature (\d+):", c.text).group(1)) for c in chunks]  # type: ignore[union-attr]
    [database] = [t for t in plan if "database" in t.title]
    assert database.title == DB_TITLES[1 % 3]  # the first one keeps its title and key
    assert database.priority == min(1 + n % 4 for n in firsts)
    assert len(database.extra["merged_from"]) == len(chunks) - 1
    assert sum(i.kind == "duplicate_merged" for i in issues) == len(chunks) - 1

    # Local ids stayed local: each test depends on its own build, never on a namesake from another chunk.
    for n in range(1, SECTIONS + 1):
        assert by_title[f"Test feature {n}"].dependencies == [by_title[f"Build feature {n}"].key]
    # Dependencies across chunks resolved by title, backwards and forwards; every build waits for the database.
    for n in firsts[1:]:  # the first feature of each chunk after the first depends on the chunk before
        build = by_title[f"Build feature {n}"]
        assert by_title[f"Build feature {n - 1}"].key in build.dependencies, n
        assert database.key in build.dependencies
    for n in range(10, SECTIONS, 10):
        assert by_title[f"Document feature {n}"].dependencies == [by_title[f"Build feature {n + 1}"].key]

    # Nothing dangling, nothing circular; what was dropped is reported.
    keys = [t.key for t in plan]
    edges = [(t.key, d) for t in plan for d in t.dependencies]
    assert graph.validate(keys, edges) == []
    [unresolved] = [i for i in issues if i.kind == "unresolved_dependency"]
    assert unresolved.ref == "Quantum flux capacitor" and unresolved.key == by_title["Build feature 7"].key
    [broken] = [i for i in issues if i.kind == "cycle_broken"]
    assert "circular" in broken.message or "cycle" in broken.message or "->" in broken.message
    chain = sum(
        1
        for n in range(2, SECTIONS + 1)
        if by_title[f"Build feature {n - 1}"].key in by_title[f"Build feature {n}"].dependencies
    )
    assert chain + (by_title["Build feature 120"].key in by_title["Build feature 50"].dependencies) == SECTIONS - 1

    # Later prompts list titles found in other chunks, so the model can name them.
    assert any("- Build feature 1\n" in user_prompt(r.body) for r in server.requests)


# ---------------------------------------------------------------------------------------------- details


async def test_a_section_named_as_a_dependency_stands_for_its_final_tasks(
    anthropic_fake: tuple[str, FakeLlm], state_dir: Path
) -> None:
    url, server = anthropic_fake

    def brain(body: dict[str, Any]) -> dict[str, Any]:
        text = chunk_text(body)
        if "## Accounts" in text:
            return {
                "tasks": [
                    task("a", "Sign-up form", section="Accounts"),
                    task("b", "Email verification", deps=("a",), section="Accounts"),
                ]
            }
        return {"tasks": [task("c", "Card payment", deps=("Accounts",))]}

    server.reset(brain)
    llm = llm_for("anthropic", url, state_dir)
    plan = await plan_with_llm(llm, SMALL_PRD, max_chunk_chars=150)
    await llm.aclose()

    by_title = {t.title: t for t in plan}
    # Email verification already waits for the form: depending on it covers the whole section.
    assert by_title["Card payment"].dependencies == [by_title["Email verification"].key]


async def test_a_stored_prompt_template_is_used_and_a_broken_one_is_refused(
    openai_fake: tuple[str, FakeLlm], state_dir: Path
) -> None:
    url, server = openai_fake
    server.reset(lambda body: {"tasks": [task("t1", "Only task")]})
    llm = llm_for("openai", url, state_dir)
    template = (
        "v2 template. Section {{ heading_path }}, target {{ target_tasks }}.\n<<<\n{{ chunk_text }}\n>>>\nCost: $5"
    )
    plan = await plan_with_llm(llm, SMALL_PRD, num_tasks=3, prompt_template=template)
    prompt = user_prompt(server.requests[0].body)
    assert prompt.startswith("v2 template. Section Shop, target about 3 task(s)")
    assert prompt.endswith("Cost: $5") and "Users MUST be able to pay by card." in prompt
    assert [t.title for t in plan] == ["Only task"]

    for broken, complaint in [
        ("Parse {{ chunk_txt }}", "unknown variables: chunk_txt"),
        ("Parse {{ heading_path }}", "lacks {{ chunk_text }}"),
        ("Parse\n{{ chunk_text }\n", "line 2: unexpected '}'"),
    ]:
        with pytest.raises(InvalidInput, match=re.escape(complaint)):
            await plan_with_llm(llm, SMALL_PRD, prompt_template=broken)
    await llm.aclose()
    assert len(server.requests) == 1  # refused before any call


async def test_a_chunk_that_fails_fails_the_parse_with_the_provider_error(
    anthropic_fake: tuple[str, FakeLlm], state_dir: Path
) -> None:
    url, server = anthropic_fake

    def brain(body: dict[str, Any]) -> Any:
        return Status(400, "prompt is too long") if "## Checkout" in chunk_text(body) else {"tasks": []}

    server.reset(brain)
    llm = llm_for("anthropic", url, state_dir)
    with pytest.raises(ProviderError, match="prompt is too long"):
        await plan_with_llm(llm, SMALL_PRD, max_chunk_chars=150)
    await llm.aclose()


async def test_an_empty_prd_is_refused(state_dir: Path) -> None:
    llm = provider_from_settings(make_settings(state_dir), "ollama", base_url="http://127.0.0.1:9/v1")
    with pytest.raises(InvalidInput, match="no text"):
        await plan_with_llm(llm, "  \n\n ")
