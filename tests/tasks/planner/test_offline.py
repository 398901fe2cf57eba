"""The offline planner reads a PRD's structure into a sensible task graph: on the examples, inline PRDs, a large
generated PRD and arbitrary text."""

from __future__ import annotations

import re
import time
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from taskmaster.core.errors import InvalidInput
from taskmaster.tasks.planner.offline import parse_prd
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


# --- the three examples -----------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def billing() -> list[PlannedTask]:
    return parse_prd((EXAMPLES / "prd-saas-billing.md").read_text(), source="prd-saas-billing.md")


@pytest.fixture(scope="module")
def mobile() -> list[PlannedTask]:
    return parse_prd((EXAMPLES / "prd-mobile-app.txt").read_text())


@pytest.fixture(scope="module")
def cli() -> list[PlannedTask]:
    return parse_prd((EXAMPLES / "prd-cli-tool.md").read_text())


def test_billing_prd_becomes_one_task_per_feature_section_with_requirements_as_subtasks(
    billing: list[PlannedTask],
) -> None:
    assert_valid_graph(billing)
    assert 9 <= len(billing) <= 16
    assert [t.key for t in billing] == [str(n) for n in range(1, len(billing) + 1)]
    invoicing = by_title(billing, r"^Implement invoicing$")
    assert invoicing.source_section == "Ledgerly Billing — Product Requirements > 6. Requirements > 6.4 Invoicing"
    assert invoicing.key == "4" and [s.key for s in invoicing.subtasks] == ["4.1", "4.2", "4.3", "4.4", "4.5"]
    assert by_title(invoicing.subtasks, r"^Issue credit notes").priority == 2
    assert by_title(invoicing.subtasks, r"VAT per line").priority == 3  # SHOULD
    assert by_title(billing, r"update their billing contact").priority == 4  # MAY
    assert by_title(billing, r"chart of their spend").priority == 4  # nice to have
    assert by_title(billing, r"dashboard of failed payments").priority == 4  # [P3]
    assert all(t.extra.get("prd_source") == "prd-saas-billing.md" for t in billing)


def test_billing_dependencies_follow_the_wording_and_foundations_come_first(billing: list[PlannedTask]) -> None:
    key = {t.title: t.key for t in billing}
    foundations, plans = key["Implement foundations"], key["Implement plans and pricing"]
    subscriptions, invoicing = key["Implement subscriptions"], key["Implement invoicing"]
    payments, tax, reporting = (
        key["Implement payments and dunning"],
        key["Implement tax"],
        key["Implement finance reporting"],
    )
    deps = {t.key: set(t.dependencies) for t in billing}
    assert plans in deps[subscriptions]  # "Depends on: 6.2 Plans and pricing"
    assert invoicing in deps[subscriptions]  # "Once the invoicing engine is done" in one of its requirements (forward)
    assert invoicing in deps[payments]  # "Requires the invoicing engine (6.4)"
    assert tax in deps[invoicing]  # "this builds on the tax calculation requirement" (forward)
    assert {subscriptions, payments} <= deps[reporting]  # "After subscriptions and payments are live"
    assert deps[foundations] == set()
    assert foundations in deps[plans] and foundations in deps[tax]  # the setup section goes first


def test_billing_acceptance_criteria_become_test_strategies_and_context_sections_no_tasks(
    billing: list[PlannedTask],
) -> None:
    payments = by_title(billing, r"^Implement payments and dunning$")
    assert payments.test_strategy is not None
    assert "Replaying the same webhook twice creates one payment" in payments.test_strategy
    portal = by_title(billing, r"^Implement customer portal$")
    assert "their own invoices" in (portal.test_strategy or "")
    sections = {t.source_section or "" for t in flatten(billing)}
    for context in ("Overview", "Background", "Goals", "Non-goals", "Glossary", "Open questions", "Appendix"):
        assert not any(context in s for s in sections), context
    assert not any(re.search(r"usage-based|purchase orders", t.title, re.I) for t in flatten(billing))
    # the glossary enriches the details of the tasks using its terms
    dunning = by_title(billing, r"start dunning")
    assert "Dunning: the sequence of retries and reminders" in (dunning.details or "")


def test_plain_text_mobile_prd_phases_priorities_and_phrasing(mobile: list[PlannedTask]) -> None:
    assert_valid_graph(mobile)
    assert 15 <= len(mobile) <= 25
    key = {t.title: t for t in mobile}
    setup = key["Set up the mobile project"]
    assert setup.priority == 1 and setup.type == "chore" and setup.source_section == "PHASE 1: FOUNDATIONS"
    accounts, storage = key["Implement user accounts"], key["Implement local storage for routes"]
    offline_maps, follow = key["Implement offline maps"], key["Implement follow mode"]
    groups, live, alarm = key["Implement groups"], key["Implement live positions"], key["Implement safety alarm"]
    assert accounts.dependencies == [setup.key]  # "Requires the mobile project setup."
    assert offline_maps.dependencies == [storage.key]  # "after the local storage is done"
    assert follow.dependencies == [offline_maps.key]  # "Depends on offline maps."
    assert set(live.dependencies) == {groups.key, follow.key}  # "Builds on groups and follow mode."
    assert alarm.dependencies == [live.key] and alarm.priority == 1  # "once live positions is done", (P0)
    # phases in order: a phase-2 task with no stated dependency waits for the end of phase 1
    planner = key["Implement route planner"]
    assert planner.source_section == "PHASE 2: ROUTES AND NAVIGATION"
    assert set(planner.dependencies) == {
        accounts.key,
        storage.key,
        key["Implement crash and error reporting in every build"].key,
    }
    feed = by_title(mobile, r"social feed")
    assert feed.priority == 5 and feed.status == "deferred"  # WON'T
    bugs = [t for t in mobile if t.source_section == "KNOWN BUGS IN THE PROTOTYPE"]
    assert len(bugs) == 3 and all(t.type == "bug" and t.title.startswith("Fix ") for t in bugs)
    assert not any(t.source_section in {"OVERVIEW", "TARGET USERS", "OUT OF SCOPE", "OPEN QUESTIONS"} for t in mobile)
    assert not any("turn-by-turn" in (t.details or "").lower() for t in mobile)


def test_informal_cli_prd_bug_list_priorities_and_docs(cli: list[PlannedTask]) -> None:
    assert_valid_graph(cli)
    assert 10 <= len(cli) <= 16
    key = {t.title: t for t in cli}
    scan, clean = key["Make tidyup scan PATH list what it would delete"], key["Make tidyup clean PATH delete it"]
    assert clean.dependencies == [scan.key]  # "only after `scan` works"
    trash = by_title(cli, r"system trash")
    assert by_title(cli, r"undo command").dependencies == [trash.key]  # "needs the trash support"
    symlinks = by_title(cli, r"symlinks")
    assert symlinks.type == "bug" and symlinks.priority == 1  # "critical"
    assert by_title(cli, r"crash when tidyup.toml is empty").type == "bug"
    assert {t.priority for t in cli if t.source_section and t.source_section.endswith("Nice to have")} == {4}
    assert {t.type for t in cli if t.source_section and t.source_section.endswith("Docs")} == {"docs"}
    assert not any(re.search(r"\bGUI\b|Windows", t.title) for t in cli)  # "Not doing"


@pytest.mark.parametrize("name", ["prd-saas-billing.md", "prd-mobile-app.txt", "prd-cli-tool.md"])
def test_same_document_same_plan(name: str) -> None:
    text = (EXAMPLES / name).read_text()
    first = [t.model_dump() for t in parse_prd(text)]
    assert first == [t.model_dump() for t in parse_prd(text)]


@pytest.mark.parametrize("name", ["prd-saas-billing.md", "prd-mobile-app.txt", "prd-cli-tool.md"])
@pytest.mark.parametrize("wanted", [1, 3, 5, 8])
def test_num_tasks_merges_without_dropping_requirements(name: str, wanted: int) -> None:
    text = (EXAMPLES / name).read_text()
    full = parse_prd(text)
    merged = parse_prd(text, num_tasks=wanted)
    assert_valid_graph(merged)
    assert len(merged) == min(wanted, len(full))
    merged_text = all_text(merged)
    for task in full:
        # every requirement is still there: as a task, a subtask, or folded into the details of a merged task
        assert task.title in merged_text or (task.details or "")[:60] in merged_text, task.title


def test_num_tasks_above_the_natural_count_splits_feature_sections() -> None:
    text = (EXAMPLES / "prd-saas-billing.md").read_text()
    natural = parse_prd(text)
    more = parse_prd(text, num_tasks=len(natural) + 6)
    assert_valid_graph(more)
    assert len(natural) < len(more) <= len(natural) + 6
    assert by_title(more, r"^Issue credit notes").subtasks == []


def test_num_tasks_must_be_positive() -> None:
    with pytest.raises(InvalidInput):
        parse_prd("# A\n- do x", num_tasks=0)


# --- inline PRDs ------------------------------------------------------------------------------------------------------

REQUIREMENT_TABLE = """\
Payroll export
==============

Background
----------
Accountants retype payroll totals by hand.

Requirements
------------

| ID   | Requirement                                              | Priority    | Depends on |
|------|----------------------------------------------------------|-------------|------------|
| FR-1 | Export the monthly payroll totals as CSV                 | Must have   |            |
| FR-2 | Send the export to the accountant by email every month   | Should have | FR-1       |
| FR-3 | Let the accountant choose the CSV delimiter              | Could have  |            |
| FR-4 | Sync totals to the LedgerOne accounting API              | P0          | FR-1       |

Known issues
------------

- Bug: totals are rounded twice for part-time staff
- Fix the date format in exported file names
"""


def test_setext_headings_tables_and_requirement_ids() -> None:
    tasks = parse_prd(REQUIREMENT_TABLE)
    assert_valid_graph(tasks)
    assert [t.title for t in tasks] == [
        "Export the monthly payroll totals as CSV",
        "Send the export to the accountant by email every month",
        "Let the accountant choose the CSV delimiter",
        "Sync totals to the LedgerOne accounting API",
        "Fix totals being rounded twice for part-time staff",
        "Fix the date format in exported file names",
    ]
    export, email, delimiter, sync = tasks[:4]
    assert [export.priority, email.priority, delimiter.priority, sync.priority] == [2, 3, 4, 1]
    assert email.dependencies == [export.key] and sync.dependencies == [export.key]
    assert all(t.source_section == "Payroll export > Requirements" for t in tasks[:4])
    assert [t.type for t in tasks[4:]] == ["bug", "bug"]
    assert not any("retype" in t.title for t in tasks)


USER_STORIES = """\
# Team calendar

## Stories

As a team lead, I want to see everyone's leave on one calendar so that I can plan sprints.

As an employee, I want to request leave from the calendar.

As an HR manager, I want to approve or reject leave requests, once requesting leave from the calendar is done.

## Testing

- Add end-to-end tests for the leave request flow
"""


def test_user_stories_become_tasks_and_testing_items_are_test_tasks() -> None:
    tasks = parse_prd(USER_STORIES)
    assert_valid_graph(tasks)
    titles = [t.title for t in tasks]
    assert titles[:3] == [
        "Let the team lead see everyone's leave on one calendar",
        "Request leave from the calendar",
        "Approve or reject leave requests",
    ]
    assert tasks[3].type == "test"
    assert tasks[2].dependencies == [tasks[1].key]


PLAIN_NUMBERED = """\
INVENTORY SYNC SERVICE

1. Overview

The warehouse and the web shop disagree about stock several times a day.

2. Requirements

1) The service must poll the warehouse API every minute.
2) It must publish stock changes to the shop within 5 seconds (critical).
3) It should keep a history of changes for 30 days.
4) A dashboard may show the last sync time. (optional)

3. Non-goals

Price synchronisation.
"""


def test_plain_text_numbered_sections_and_items() -> None:
    tasks = parse_prd(PLAIN_NUMBERED)
    assert_valid_graph(tasks)
    assert [t.title for t in tasks] == [
        "Poll the warehouse API every minute",
        "Publish stock changes to the shop within 5 seconds",
        "Keep a history of changes for 30 days",
        "Make a dashboard show the last sync time",
    ]
    assert [t.priority for t in tasks] == [2, 1, 3, 4]
    assert {t.source_section for t in tasks} == {"Requirements"}


def test_nested_bullets_become_subtasks_or_details_and_verify_bullets_test_strategy() -> None:
    text = """\
# Search

## Requirements

- Users MUST be able to search orders by customer name.
  - Add a trigram index on customer names.
  - Return results within 300 ms for 1M orders.
  - Verify with the seeded 1M-order data set that p95 stays under 300 ms.
- Search SHOULD highlight the matched words.
  - bold
  - case-insensitive
"""
    tasks = parse_prd(text)
    assert_valid_graph(tasks)
    search, highlight = tasks
    assert [s.title for s in search.subtasks] == [
        "Add a trigram index on customer names",
        "Return results within 300 ms for 1M orders",
    ]
    assert "p95 stays under 300 ms" in (search.test_strategy or "")
    assert highlight.subtasks == [] and "- case-insensitive" in (highlight.details or "")
    assert [search.priority, highlight.priority] == [2, 3]


def test_cycles_in_the_wording_are_broken_and_forward_references_kept() -> None:
    text = """\
# Plan

## Work

- Build the importer after the validator is done.
- Build the validator after the importer is done.
- Write the docs for the exporter.
- Build the exporter.
"""
    tasks = parse_prd(text)
    assert_valid_graph(tasks)
    importer, validator = tasks[0], tasks[1]
    assert importer.dependencies == [validator.key]  # forward reference, kept
    assert validator.dependencies == []  # the reverse edge would close a cycle


def test_a_dependencies_section_links_whole_sections() -> None:
    text = """\
# Shop

## Requirements

### Catalogue
- Products MUST have a name, price and stock count.
- Admins MUST be able to import products from CSV.

### Checkout
- Customers MUST be able to pay by card.
- Orders SHOULD be confirmed by email.

## Dependencies

- Checkout depends on Catalogue.
"""
    tasks = parse_prd(text)
    assert_valid_graph(tasks)
    catalogue = [t.key for t in tasks if (t.source_section or "").endswith("Catalogue")]
    checkout = [t for t in tasks if (t.source_section or "").endswith("Checkout")]
    assert len(catalogue) == 2 and len(checkout) == 2
    assert all(t.dependencies == catalogue for t in checkout)
    assert not any("Dependencies" in (t.source_section or "") for t in tasks)


def test_document_without_structure_still_yields_tasks() -> None:
    tasks = parse_prd(
        "The app must let users log in. It should remember the last user.\n\nIt must log out after 30 minutes."
    )
    assert_valid_graph(tasks)
    assert 1 <= len(tasks) <= 3
    assert parse_prd("") == [] and parse_prd("   \n\n") == []


# --- a large document -------------------------------------------------------------------------------------------------


def test_a_long_prd_keeps_every_sections_requirements_and_parses_quickly() -> None:
    parts = ["# Platform PRD\n\n## Overview\n\nA long document.\n\n## Requirements\n"]
    markers: list[str] = []
    for section in range(1, 121):
        parts.append(f"\n### {section}. Area {section} capabilities\n\nArea {section} covers several needs.\n\n")
        for item in range(1, 6):
            marker = f"zq{section}x{item}"
            markers.append(marker)
            modal = ("MUST", "SHOULD", "MAY")[item % 3]
            parts.append(f"- The service {modal} handle the {marker} workflow for area {section} customers.\n")
        if section % 10 == 0:
            parts.append(f"- Area {section} reporting depends on area {section - 1} capabilities.\n")
    text = "".join(parts)
    started = time.perf_counter()
    tasks = parse_prd(text)
    elapsed = time.perf_counter() - started
    assert_valid_graph(tasks)
    body = all_text(tasks)
    assert all(marker in body for marker in markers)
    sections = {t.source_section for t in tasks}
    assert len(sections) == 120
    assert elapsed < 3.0  # about 0.1 s on a laptop; generous for loaded CI machines
    merged = parse_prd(text, num_tasks=25)
    assert len(merged) == 25
    assert_valid_graph(merged)
    merged_body = all_text(merged)
    assert all(marker in merged_body for marker in markers)


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
def test_arbitrary_text_never_raises_and_gives_a_valid_graph(lines: list[str], wanted: int | None) -> None:
    tasks = parse_prd("\n".join(lines), num_tasks=wanted)
    assert_valid_graph(tasks)
    if wanted is not None:
        assert len(tasks) <= wanted
    for task in flatten(tasks):
        assert task.title.strip() and 1 <= task.priority <= 5
        assert task.complexity is None or 1 <= task.complexity <= 10
