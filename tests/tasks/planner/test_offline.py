"""The offline planner end to end: the examples, inline PRDs of common shapes, num_tasks shaping, a large
generated PRD and arbitrary text."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from taskmaster.core.errors import InvalidInput
from taskmaster.tasks.planner.offline import parse_prd, plan_prd
from taskmaster.tasks.schemas import PlannedTask

EXAMPLES = Path(__file__).resolve().parents[3] / "examples"


def flatten(tasks: list[PlannedTask]) -> list[PlannedTask]:
    out: list[PlannedTask] = []
    for task in tasks:
        out.append(task)
        out.extend(flatten(task.subtasks))
    return out


def assert_valid_graph(tasks: list[PlannedTask]) -> None:
    """Keys unique; every dependency names a key of the plan, never itself, an ancestor or a descendant; no cycle."""
    every = flatten(tasks)
    keys = [t.key for t in every]
    assert len(keys) == len(set(keys)), "duplicate keys"
    by_key = {t.key: t for t in every}
    lineage: dict[str, set[str]] = {}

    def walk(task: PlannedTask, ancestors: list[str]) -> set[str]:
        below: set[str] = set()
        for child in task.subtasks:
            below |= {child.key} | walk(child, [*ancestors, task.key])
        lineage[task.key] = set(ancestors) | below
        return below

    for task in tasks:
        walk(task, [])
    for task in every:
        assert len(task.dependencies) == len(set(task.dependencies)), f"{task.key}: duplicate dependency"
        for dep in task.dependencies:
            assert dep in by_key, f"{task.key} depends on unknown {dep}"
            assert dep != task.key, f"{task.key} depends on itself"
            assert dep not in lineage[task.key], f"{task.key} depends on its own ancestor or descendant {dep}"
    state: dict[str, int] = {}
    for start in keys:
        if state.get(start):
            continue
        stack = [(start, iter(by_key[start].dependencies))]
        state[start] = 1
        while stack:
            node, deps = stack[-1]
            nxt = next(deps, None)
            if nxt is None:
                state[node] = 2
                stack.pop()
            elif state.get(nxt) == 1:
                raise AssertionError(f"cycle through {nxt}")
            elif not state.get(nxt):
                state[nxt] = 1
                stack.append((nxt, iter(by_key[nxt].dependencies)))


def by_title(tasks: list[PlannedTask], pattern: str) -> PlannedTask:
    found = [t for t in flatten(tasks) if re.search(pattern, t.title, re.I)]
    assert found, f"no task titled like {pattern!r}: {[t.title for t in flatten(tasks)]}"
    return found[0]


def all_text(tasks: list[PlannedTask]) -> str:
    return "\n".join(f"{t.title}\n{t.description}\n{t.details}" for t in flatten(tasks))


# --- the examples -----------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def billing() -> list[PlannedTask]:
    return parse_prd((EXAMPLES / "prd-saas-billing.md").read_text(), source="prd-saas-billing.md")


@pytest.fixture(scope="module")
def mobile() -> list[PlannedTask]:
    return parse_prd((EXAMPLES / "prd-mobile-app.txt").read_text())


def test_billing_groups_requirements_by_feature_area_and_keeps_metadata_and_context_out(
    billing: list[PlannedTask],
) -> None:
    assert_valid_graph(billing)
    titles = [t.title for t in flatten(billing)]
    assert not any(re.search(r"priya|approved|version|overview|glossary|open questions|goals", t, re.I) for t in titles)
    invoicing = by_title(billing, r"^Implement invoicing$")
    assert invoicing.source_section is not None and invoicing.source_section.endswith("6.4 Invoicing")
    assert [s.key for s in invoicing.subtasks] == [f"{invoicing.key}.{n}" for n in range(1, 6)]
    assert by_title(billing, r"credit notes").priority == 1  # MUST
    assert by_title(billing, r"VAT per line").priority == 2  # SHOULD
    assert by_title(billing, r"update their billing contact").priority == 3  # MAY
    assert by_title(billing, r"dashboard of failed payments").priority == 4  # [P3]
    assert by_title(billing, r"free-trial length").priority == 2  # "Priority: high" for its section
    assert all(t.extra.get("prd_source") == "prd-saas-billing.md" for t in flatten(billing))


def test_billing_section_level_dependencies_wait_for_the_whole_named_section(billing: list[PlannedTask]) -> None:
    invoicing = by_title(billing, r"^Implement invoicing$").key
    charge = by_title(billing, r"Charge the stored card")
    assert invoicing in charge.dependencies  # "Requires the invoicing engine (6.4)." under 6.5
    plans = by_title(billing, r"^Implement plans and pricing$").key
    assert plans in by_title(billing, r"start a subscription").dependencies  # "Depends on: 6.2 Plans and pricing"
    proration = by_title(billing, r"proration line")
    assert proration.title.startswith("Let a plan change produce")  # the "Once …," clause is a dependency
    assert invoicing in proration.dependencies
    why = proration.extra["why"]["dependencies"]
    assert any("Once the invoicing engine is done" in d["why"] for d in why)


def test_mobile_phases_become_parents_that_wait_for_the_phase_before(mobile: list[PlannedTask]) -> None:
    assert_valid_graph(mobile)
    phases = [t for t in mobile if t.title.lower().startswith("implement phase")]
    assert len(phases) == 3
    second = phases[1]
    assert any(phases[0].key in s.dependencies for s in second.subtasks)
    assert by_title(mobile, r"Set up the mobile project").priority == 1  # (P0)
    assert by_title(mobile, r"crash and error reporting").priority == 2  # (P1)
    assert not any("social feed" in t.title for t in flatten(mobile))  # WON'T (this release)
    assert by_title(mobile, r"elevation gain is doubled").type == "bug"
    follow = by_title(mobile, r"follow mode$")
    assert by_title(mobile, r"offline maps$").key in follow.dependencies  # "Depends on offline maps."


@pytest.mark.parametrize("name", ["prd-saas-billing.md", "prd-mobile-app.txt", "prd-cli-tool.md"])
def test_same_document_same_plan(name: str) -> None:
    text = (EXAMPLES / name).read_text()
    assert parse_prd(text) == parse_prd(text)


def _requirement_titles(tasks: list[PlannedTask]) -> set[str]:
    return {t.title for t in flatten(tasks) if not t.subtasks}


@pytest.mark.parametrize("name", ["prd-saas-billing.md", "prd-mobile-app.txt", "prd-cli-tool.md"])
@pytest.mark.parametrize("wanted", [1, 3, 5, 8, 40])
def test_num_tasks_reshapes_the_top_level_and_keeps_one_task_per_requirement(name: str, wanted: int) -> None:
    text = (EXAMPLES / name).read_text()
    full = parse_prd(text)
    shaped = parse_prd(text, num_tasks=wanted)
    assert_valid_graph(shaped)
    assert _requirement_titles(shaped) == _requirement_titles(full)
    natural = len(full)
    if wanted <= natural:
        assert len(shaped) == wanted
    else:
        assert natural <= len(shaped) <= wanted or len(shaped) == len(_requirement_titles(full))


def test_num_tasks_must_be_positive() -> None:
    with pytest.raises(InvalidInput, match="num_tasks"):
        parse_prd("- do a thing", num_tasks=0)


# --- shapes -----------------------------------------------------------------------------------------------------------


def test_a_story_paragraph_is_one_task_per_story_with_its_needs() -> None:
    text = (
        "Stories\n\n"
        "As a host I want to create an event with a date and a venue.\n"
        "As a guest I want to RSVP from the invite link. Needs the event creation story.\n"
        "As a host I want a reminder sent a day before the event.\n"
    )
    tasks = parse_prd(text)
    assert [t.title for t in tasks] == [
        "Create an event with a date and a venue",
        "RSVP from the invite link",
        "Provide a reminder sent a day before the event",
    ]


def test_checked_items_are_done_and_indented_blocked_by_resolves_issue_numbers() -> None:
    text = (
        "# Invoicing epic\n\n## Tasks\n\n"
        "- [x] #4 Store invoices in the database\n"
        "- [ ] #5 Number invoices without gaps\n"
        "- [ ] #6 Email invoices as PDF\n"
        "    - Blocked by: #5, #4\n"
    )
    tasks = parse_prd(text)
    store, number, email = tasks
    assert store.status == "done" and number.status == "pending"
    assert email.title == "Email invoices as PDF"
    assert set(email.dependencies) == {store.key, number.key}


def test_ids_go_to_their_own_field_never_into_the_title() -> None:
    tasks = parse_prd(
        "## Requirements\n\n- R1 Members sign in with a magic link\n- R2 Members see their bookings. Needs R1.\n"
    )
    first, second = tasks
    assert first.title == "Let members sign in with a magic link"
    assert first.extra["requirement_id"] == "R1" and first.description == "R1: Members sign in with a magic link"
    assert second.dependencies == [first.key]


def test_a_cycle_in_the_text_is_reported_with_the_phrases_that_made_it() -> None:
    plan = plan_prd(
        "## Requirements\n\n- A1 Build the importer. Depends on A2.\n- A2 Build the exporter. Depends on A1.\n"
    )
    first, second = plan.tasks
    assert first.dependencies == [second.key] and second.dependencies == []
    assert len(plan.warnings) == 1
    assert '"Depends on A1."' in plan.warnings[0] or '"Depends on A1"' in plan.warnings[0]
    assert "Depends on A2" in plan.warnings[0]


def test_acceptance_criteria_are_kept_as_a_list_for_code_generation() -> None:
    text = (
        "# Invoices\n\n## Requirements\n\n- Export an invoice as a PDF\n"
        "  - Acceptance criteria: the PDF shows the invoice number\n"
        "  - Acceptance criteria: the PDF opens in any reader\n- Email an invoice to its customer\n"
    )
    export, email = parse_prd(text)
    criteria = ["the PDF shows the invoice number", "the PDF opens in any reader"]
    assert export.extra["acceptance_criteria"] == criteria
    assert export.test_strategy == "\n".join(f"- {c}" for c in criteria)
    assert "acceptance_criteria" not in email.extra and email.test_strategy is None


def test_a_document_without_requirements_says_what_it_saw() -> None:
    with pytest.raises(InvalidInput) as caught:
        parse_prd("# Ideas\n\n## Background\n\nWe talked.\n\n## Open questions\n\n- Who pays?\n", source="n.md")
    assert caught.value.detail == (
        "n.md: found no requirement items; sections seen: Ideas (requirement), Background (context), "
        "Open questions (context)"
    )


def test_a_one_line_prd_is_one_task_titled_by_its_line() -> None:
    tasks = parse_prd("Build a command-line tool that converts CSV files to JSON lines.\n")
    assert [t.title for t in tasks] == ["Build a command-line tool that converts CSV files to JSON lines"]


def test_a_long_prd_keeps_every_requirement() -> None:
    parts = ["# Platform PRD\n\n## Overview\n\nA long document.\n\n## Requirements\n"]
    markers: list[str] = []
    for section in range(1, 121):
        parts.append(f"\n### {section}. Area {section} capabilities\n\nArea {section} covers several needs.\n\n")
        for item in range(1, 6):
            marker = f"zq{section}x{item}"
            markers.append(marker)
            modal = ("MUST", "SHOULD", "MAY")[item % 3]
            parts.append(f"- The service {modal} handle the {marker} workflow for area {section} customers.\n")
    text = "".join(parts)
    tasks = parse_prd(text)
    assert_valid_graph(tasks)
    body = all_text(tasks)
    assert all(marker in body for marker in markers)
    assert len(tasks) == 120
    shaped = parse_prd(text, num_tasks=25)
    assert len(shaped) == 25
    assert_valid_graph(shaped)
    assert all(marker in all_text(shaped) for marker in markers)


# --- arbitrary text ---------------------------------------------------------------------------------------------------

_LINES = st.sampled_from(
    [
        "# Title",
        "## Requirements",
        "### Setup",
        "## Glossary",
        "- Term: a definition",
        "- The system MUST do the thing",
        "  - nested item that depends on the thing",
        "1. First step",
        "2) Second step after the first step",
        "PHASE 1: START",
        "Phase 2: Next",
        "ALL CAPS HEADING",
        "| Requirement | Priority |",
        "|---|---|",
        "| do x | high |",
        "```",
        "Priority: P0",
        "Depends on: Phase 1",
        "**Bold label**",
        "===",
        "---",
        "",
        "As a user, I want a thing",
        "FR-1: build it",
        "- FR-2: requires FR-1",
        "## Acceptance criteria",
        "- Given a thing when x then y",
        "> quoted",
        "\t- tabbed item",
        "- [ ] checkbox item before the first step",
    ]
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(_LINES | st.text(max_size=60), max_size=30), st.none() | st.integers(min_value=1, max_value=6))
def test_arbitrary_text_gives_a_valid_graph_or_says_it_found_no_requirement(
    lines: list[str], wanted: int | None
) -> None:
    text = "\n".join(lines)
    try:
        tasks = parse_prd(text, num_tasks=wanted)
    except InvalidInput as exc:
        problem = exc.detail
    else:
        problem = ""
    if problem:
        assert "found no requirement items; sections seen:" in problem
        return
    assert_valid_graph(tasks)
    if wanted is not None:
        assert len(tasks) <= max(wanted, 1) or all(not t.subtasks for t in tasks)
    for task in flatten(tasks):
        assert task.title.strip() and 1 <= task.priority <= 5
        assert task.complexity is None or 1 <= task.complexity <= 10
