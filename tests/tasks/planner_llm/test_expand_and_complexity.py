"""Subtasks and complexity scores through the real SDKs and fake model servers."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from taskmaster.agents.llm import provider_from_settings
from taskmaster.tasks.planner.llm import analyze_complexity_with_llm, expand_with_llm
from taskmaster.tasks.schemas import PlannedTask
from tests.agents.llm.fakes import ANTHROPIC_KEY, OPENAI_KEY, FakeLlm, user_prompt
from tests.conftest import make_settings


def sub(id: str, title: str, deps: list[str]) -> dict[str, Any]:
    return {
        "id": id,
        "title": title,
        "description": f"{title}.",
        "priority": 2,
        "type": "feature",
        "complexity": 2,
        "dependencies": deps,
    }


async def test_expand_returns_keyed_subtasks_depending_only_on_their_siblings(
    anthropic_fake: tuple[str, FakeLlm], state_dir: Path
) -> None:
    url, server = anthropic_fake
    server.reset(
        lambda body: {
            "subtasks": [
                sub("s1", "Schema for sessions", []),
                sub("s2", "Login endpoint", ["s1", "Some other task"]),
                sub("s3", "Login form", ["s2", "s3"]),
                sub("s4", "One too many", ["s1"]),
            ]
        }
    )
    settings = make_settings(state_dir, ANTHROPIC_API_KEY=ANTHROPIC_KEY, ANTHROPIC_BASE_URL=url)
    llm = provider_from_settings(settings, "anthropic")
    parent = PlannedTask(
        key="7",
        title="User login",
        description="Sign in with email and password.",
        details="Use argon2 for hashes.",
        source_section="Shop > Accounts",
    )
    subtasks = await expand_with_llm(llm, parent, 3, context="Python, FastAPI", key_prefix="7.")
    await llm.aclose()

    [sent] = server.requests
    assert sent.body["tool_choice"]["name"] == "subtask_plan"
    prompt = user_prompt(sent.body)
    assert "into 3 subtasks" in prompt and "User login" in prompt and "argon2" in prompt and "FastAPI" in prompt
    assert [(t.key, t.title, t.dependencies) for t in subtasks] == [
        ("7.1", "Schema for sessions", []),
        ("7.2", "Login endpoint", ["7.1"]),
        ("7.3", "Login form", ["7.2"]),
    ]
    assert {t.source_section for t in subtasks} == {"Shop > Accounts"}


async def test_complexity_scores_every_task_in_batches_asking_again_for_skipped_ones(
    openai_fake: tuple[str, FakeLlm], state_dir: Path
) -> None:
    url, server = openai_fake
    skipped_once: set[str] = set()

    def brain(body: dict[str, Any]) -> dict[str, Any]:
        listed = re.findall(r"^\[(t\d+)\] (.+)$", user_prompt(body), flags=re.MULTILINE)
        scores = []
        for local_id, title in listed:
            if title == "Task c" and title not in skipped_once:
                skipped_once.add(title)  # the model forgets one task the first time
                continue
            number = ord(title[-1]) - ord("a") + 1
            scores.append({"id": local_id, "score": number, "reasoning": f"{title} is level {number}"})
        scores.append({"id": "t99", "score": 5, "reasoning": "an id that was never asked"})
        return {"scores": scores}

    server.reset(brain)
    settings = make_settings(state_dir, OPENAI_API_KEY=OPENAI_KEY, OPENAI_BASE_URL=url)
    llm = provider_from_settings(settings, "openai")
    tasks = [PlannedTask(key=f"k-{letter}", title=f"Task {letter}", description="d") for letter in "abcde"]
    progress: list[tuple[int, int]] = []
    scores = await analyze_complexity_with_llm(
        llm, tasks, batch_size=3, progress=lambda done, total: progress.append((done, total))
    )
    await llm.aclose()

    assert [(s.key, s.score, s.reasoning) for s in scores] == [
        (f"k-{letter}", number, f"Task {letter} is level {number}") for number, letter in enumerate("abcde", start=1)
    ]
    assert len(server.requests) == 3  # two batches, and one follow-up for the skipped task
    assert server.requests[0].body["response_format"]["json_schema"]["name"] == "complexity_answer"
    follow_up = [r for r in server.requests if "Task c" in user_prompt(r.body) and "Task a" not in user_prompt(r.body)]
    assert len(follow_up) == 1
    assert sorted(progress) == [(0, 2), (1, 2), (2, 2)]


async def test_complexity_accepts_a_mapping_of_existing_tasks(
    openai_fake: tuple[str, FakeLlm], state_dir: Path
) -> None:
    url, server = openai_fake
    server.reset(lambda body: {"scores": [{"id": "t1", "score": 8, "reasoning": "distributed locking"}]})
    settings = make_settings(state_dir, OPENAI_API_KEY=OPENAI_KEY, OPENAI_BASE_URL=url)
    llm = provider_from_settings(settings, "openai")
    scores = await analyze_complexity_with_llm(llm, {"42": PlannedTask(key="x", title="Atomic claim")})
    await llm.aclose()
    assert scores == [("42", 8, "distributed locking")]
