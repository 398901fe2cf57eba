"""The static plan: order, levels, implicit needs of finalizers, ready/skip rules, JSON round trip, random DAGs."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from taskmaster.core.errors import InvalidInput
from taskmaster.pipelines.definition import (
    PipelineDefinition,
    StepKind,
    StepWhen,
    WorkspaceMode,
    default_validation_definition,
    load_definition,
)
from taskmaster.pipelines.plan import (
    Plan,
    RetryOn,
    compile_plan,
    has_failure,
    is_finished,
    ready_steps,
    steps_to_skip,
)
from taskmaster.pipelines.states import FailureReason, PipelineType, StepStatus

from .test_definition import DESIGN_EXAMPLE

S = StepStatus
Outcome = Callable[[str], StepStatus]


def plan_of(steps: Mapping[str, Mapping[str, Any]], **top: Any) -> Plan:
    return compile_plan(PipelineDefinition.model_validate({"steps": steps, **top}))


def run_to_end(plan: Plan, outcomes: Mapping[str, StepStatus] | None = None) -> tuple[dict[str, StepStatus], list[str]]:
    """Drive the plan as an engine would, every ready step finishing at once with its outcome (default success).

    Returns the final statuses and the order steps started in; fails if the pipeline stalls.
    """
    outcomes = outcomes or {}
    statuses: dict[str, StepStatus] = {}
    started: list[str] = []
    while not is_finished(plan, statuses):
        skip = steps_to_skip(plan, statuses)
        statuses.update(dict.fromkeys(skip, S.SKIPPED))
        ready = ready_steps(plan, statuses)
        assert skip or ready, f"stalled with {statuses}"
        for name in ready:
            started.append(name)
            statuses[name] = outcomes.get(name, S.SUCCESS)
    return statuses, started


# --- compiling ---


def test_design_example_compiles_in_file_order_with_levels_and_a_final_notify() -> None:
    plan = compile_plan(load_definition(DESIGN_EXAMPLE))

    assert plan.names == ("install", "lint", "test", "review", "notify")
    assert [step.level for step in plan.steps] == [0, 1, 1, 2, 3]
    assert [step.position for step in plan.steps] == [0, 1, 2, 3, 4]
    assert (plan.pipeline_type, plan.concurrency, plan.timeout) == (PipelineType.VALIDATION, 4, 3600)
    assert plan["install"].dependents == ("lint", "test", "notify")
    assert plan["review"].needs == ("lint", "test")
    # notify was written without needs: as an on_failure step it waits for everything else.
    assert plan["notify"].needs == ("install", "lint", "test", "review")
    install = plan["install"]
    assert (install.kind, install.command, install.uses, install.network, install.timeout) == (
        StepKind.RUN,
        "pip install -e .[test]",
        None,
        True,
        600,
    )
    assert (install.max_retries, install.retry_on) == (2, RetryOn(frozenset(), infra=True, timeout=True))
    assert plan["test"].retry_on == RetryOn(frozenset({75}), infra=False, timeout=False)
    assert (plan["review"].kind, plan["review"].uses, plan["review"].command) == (StepKind.USES, "ai_review", None)


def test_default_pipeline_orders_checkout_install_lint_test_review_by_level() -> None:
    plan = compile_plan(default_validation_definition())

    assert plan.names == ("checkout", "install", "lint", "test", "ai_review")
    assert {step.name: step.level for step in plan.steps} == {
        "checkout": 0,
        "install": 1,
        "lint": 2,
        "test": 2,
        "ai_review": 3,
    }
    assert plan["install"].dependents == ("lint", "test")
    assert plan["ai_review"].needs == ("lint", "test")


def test_a_step_written_before_its_needs_moves_after_them_and_peers_keep_file_order() -> None:
    plan = plan_of(
        {
            "report": {"run": "r", "needs": ["test", "lint"]},
            "test": {"run": "t", "needs": ["setup"]},
            "docs": {"run": "d"},
            "lint": {"run": "l"},
            "setup": {"run": "s"},
        }
    )

    assert plan.names == ("docs", "lint", "setup", "test", "report")
    assert [plan[name].level for name in plan.names] == [0, 0, 0, 1, 2]


def test_steps_carry_env_workspace_network_and_failure_settings() -> None:
    plan = plan_of(
        {
            "build": {"run": "make", "env": {"CC": "clang"}, "workspace": "fresh", "network": True},
            "flaky": {"run": "x", "needs": ["build"], "allow_failure": True, "retries": 0, "timeout": "2m"},
        }
    )

    build, flaky = plan["build"], plan["flaky"]
    assert (dict(build.env), build.workspace, build.network) == ({"CC": "clang"}, WorkspaceMode.FRESH, True)
    assert (flaky.allow_failure, flaky.max_retries, flaky.timeout, flaky.when) == (True, 0, 120, StepWhen.ON_SUCCESS)
    with pytest.raises(TypeError):
        build.env["CC"] = "gcc"  # type: ignore[index]


def test_pipeline_types_compile_to_their_own_steps() -> None:
    definition = load_definition(
        """\
steps:
  install: {run: pip install .}
  lint: {run: ruff check ., needs: [install]}
  test: {run: pytest, needs: [install]}
  cleanup: {run: rm -rf build, when: always}
types:
  push: {only: [lint, cleanup], timeout: 10m}
"""
    )

    plan = compile_plan(definition, pipeline_type="push")

    assert plan.pipeline_type is PipelineType.PUSH
    assert plan.names == ("install", "lint", "cleanup")
    assert plan["cleanup"].needs == ("install", "lint")
    assert plan.timeout == 600


def test_compiling_an_unknown_pipeline_type_is_invalid_input() -> None:
    with pytest.raises(InvalidInput, match="unknown pipeline type"):
        compile_plan(default_validation_definition(), pipeline_type="release")


def test_a_finalizer_waits_for_neither_other_finalizers_nor_what_runs_after_them() -> None:
    plan = plan_of(
        {
            "build": {"run": "b"},
            "notify": {"run": "n", "when": "on_failure"},
            "after_notify": {"run": "a", "needs": ["notify"], "when": "always"},
            "cleanup": {"run": "c", "when": "always"},
        }
    )

    assert plan["notify"].needs == ("build",)
    assert plan["cleanup"].needs == ("build",)
    assert plan["after_notify"].needs == ("notify",)
    assert plan.names == ("build", "notify", "after_notify", "cleanup")


def test_retry_on_says_which_failures_are_retried() -> None:
    retry_on = RetryOn(frozenset({75}), infra=True, timeout=False)

    assert retry_on.allows(FailureReason.INFRA)
    assert not retry_on.allows(FailureReason.TIMEOUT)
    assert retry_on.allows("code", 75)
    assert not retry_on.allows(FailureReason.CODE, 1)
    assert not retry_on.allows(FailureReason.CODE)


# --- an 8-step diamond with a side branch, an allowed failure and an on_failure finalizer ---

DIAMOND: dict[str, dict[str, Any]] = {
    "checkout": {"uses": "checkout"},
    "build": {"run": "make", "needs": ["checkout"]},
    "unit": {"run": "make unit", "needs": ["build"]},
    "integration": {"run": "make it", "needs": ["build"]},
    "docs": {"run": "make docs", "needs": ["checkout"], "allow_failure": True},
    "package": {"run": "make dist", "needs": ["unit", "integration"]},
    "publish": {"run": "make publish", "needs": ["package", "docs"]},
    "report": {"run": "report", "when": "on_failure"},
}


def test_diamond_plan_order_levels_and_edges() -> None:
    plan = plan_of(DIAMOND)

    assert plan.names == ("checkout", "build", "unit", "integration", "docs", "package", "publish", "report")
    assert [step.level for step in plan.steps] == [0, 1, 2, 2, 1, 3, 4, 5]
    assert plan["build"].dependents == ("unit", "integration", "report")
    assert plan["checkout"].dependents == ("build", "docs", "report")
    assert plan["report"].needs == plan.names[:-1]


def test_diamond_all_green_runs_everything_and_skips_the_failure_report() -> None:
    plan = plan_of(DIAMOND)

    statuses, started = run_to_end(plan)

    assert started == ["checkout", "build", "docs", "unit", "integration", "package", "publish"]
    assert statuses["report"] is S.SKIPPED
    assert not has_failure(plan, statuses)


def test_diamond_failure_skips_only_what_depends_on_it_and_runs_the_report() -> None:
    plan = plan_of(DIAMOND)

    statuses, started = run_to_end(plan, {"unit": S.FAILED})

    assert statuses == {
        "checkout": S.SUCCESS,
        "build": S.SUCCESS,
        "unit": S.FAILED,
        "integration": S.SUCCESS,
        "docs": S.SUCCESS,
        "package": S.SKIPPED,
        "publish": S.SKIPPED,
        "report": S.SUCCESS,
    }
    assert started[-1] == "report"


def test_diamond_allowed_failure_lets_dependents_run_and_is_not_a_pipeline_failure() -> None:
    plan = plan_of(DIAMOND)

    statuses, _ = run_to_end(plan, {"docs": S.FAILED})

    assert statuses["publish"] is S.SUCCESS
    assert statuses["report"] is S.SKIPPED
    assert not has_failure(plan, statuses)


def test_diamond_step_by_step_while_one_branch_is_still_running() -> None:
    plan = plan_of(DIAMOND)
    statuses = {
        "checkout": S.SUCCESS,
        "build": S.SUCCESS,
        "docs": S.RUNNING,
        "unit": S.FAILED,
        "integration": S.RUNNING,
    }

    assert steps_to_skip(plan, statuses) == ["package", "publish"]
    assert ready_steps(plan, statuses) == []  # report waits for the running steps, even with a failure known

    statuses.update(package=S.SKIPPED, publish=S.SKIPPED, docs=S.SUCCESS, integration=S.SUCCESS)
    assert ready_steps(plan, statuses) == ["report"]
    assert steps_to_skip(plan, statuses) == []
    assert not is_finished(plan, statuses)


# --- ready and skip rules on small graphs ---


def test_steps_in_flight_are_neither_ready_nor_skipped() -> None:
    plan = plan_of({"a": {"run": "a"}, "b": {"run": "b"}, "c": {"run": "c"}, "d": {"run": "d"}})
    statuses = {"a": S.QUEUED, "b": S.RUNNING, "c": S.RETRY_SCHEDULED, "d": S.WAITING}

    assert ready_steps(plan, statuses) == ["d"]
    assert steps_to_skip(plan, statuses) == []


def test_statuses_may_be_plain_strings_as_stored() -> None:
    plan = plan_of({"a": {"run": "a"}, "b": {"run": "b", "needs": ["a"]}})

    assert ready_steps(plan, {"a": "success"}) == ["b"]
    assert steps_to_skip(plan, {"a": "failed"}) == ["b"]
    assert is_finished(plan, {"a": "success", "b": "skipped"})


@pytest.mark.parametrize("outcome", [S.FAILED, S.ERROR, S.TIMED_OUT, S.CANCELED, S.SKIPPED])
def test_an_unsuccessful_need_skips_on_success_dependents_transitively(outcome: StepStatus) -> None:
    plan = plan_of(
        {
            "a": {"run": "a"},
            "b": {"run": "b", "needs": ["a"]},
            "c": {"run": "c", "needs": ["b"]},
            "other": {"run": "o"},
        }
    )

    assert steps_to_skip(plan, {"a": outcome}) == ["b", "c"]
    assert ready_steps(plan, {"a": outcome}) == ["other"]


@pytest.mark.parametrize("outcome", [S.FAILED, S.ERROR, S.TIMED_OUT])
def test_an_allowed_failure_satisfies_its_dependents(outcome: StepStatus) -> None:
    plan = plan_of({"a": {"run": "a", "allow_failure": True}, "b": {"run": "b", "needs": ["a"]}})

    assert ready_steps(plan, {"a": outcome}) == ["b"]
    assert steps_to_skip(plan, {"a": outcome}) == []
    assert not has_failure(plan, {"a": outcome})


def test_an_allowed_failure_that_was_skipped_still_blocks_its_dependents() -> None:
    plan = plan_of(
        {
            "a": {"run": "a"},
            "b": {"run": "b", "needs": ["a"], "allow_failure": True},
            "c": {"run": "c", "needs": ["b"]},
        }
    )

    assert steps_to_skip(plan, {"a": S.FAILED}) == ["b", "c"]


def test_an_always_step_runs_after_its_needs_whatever_they_did() -> None:
    plan = plan_of({"a": {"run": "a"}, "b": {"run": "b", "needs": ["a"], "when": "always"}})

    assert ready_steps(plan, {"a": S.RUNNING}) == []
    for outcome in (S.SUCCESS, S.FAILED, S.SKIPPED, S.CANCELED):
        assert ready_steps(plan, {"a": outcome}) == ["b"]
        assert steps_to_skip(plan, {"a": outcome}) == []


def test_an_on_failure_step_runs_on_any_failure_once_its_needs_are_done() -> None:
    plan = plan_of(
        {
            "a": {"run": "a"},
            "b": {"run": "b"},
            "debug": {"run": "d", "needs": ["a"], "when": "on_failure"},
        }
    )

    assert ready_steps(plan, {"a": S.SUCCESS, "b": S.RUNNING}) == []
    assert steps_to_skip(plan, {"a": S.SUCCESS, "b": S.RUNNING}) == []
    assert ready_steps(plan, {"a": S.SUCCESS, "b": S.FAILED}) == ["debug"]
    assert ready_steps(plan, {"a": S.ERROR, "b": S.RUNNING}) == ["debug"]
    assert steps_to_skip(plan, {"a": S.SUCCESS, "b": S.SUCCESS}) == ["debug"]


def test_skipping_an_on_failure_step_skips_its_on_success_dependents_but_not_always_ones() -> None:
    plan = plan_of(
        {
            "a": {"run": "a"},
            "notify": {"run": "n", "when": "on_failure"},
            "after": {"run": "x", "needs": ["notify"]},
            "cleanup": {"run": "c", "needs": ["notify"], "when": "always"},
        }
    )

    statuses, started = run_to_end(plan)

    assert statuses == {"a": S.SUCCESS, "notify": S.SKIPPED, "after": S.SKIPPED, "cleanup": S.SUCCESS}
    assert started == ["a", "cleanup"]


def test_on_failure_steps_waiting_on_each_other_through_always_steps_do_not_stall() -> None:
    plan = plan_of(
        {
            "a": {"run": "a"},
            "x": {"run": "x", "needs": ["a"], "when": "on_failure"},
            "y": {"run": "y", "needs": ["a"], "when": "on_failure"},
            "after_y": {"run": "d", "needs": ["y"], "when": "always"},
            "after_x": {"run": "e", "needs": ["x"], "when": "always"},
        }
    )

    green, _ = run_to_end(plan)
    red, _ = run_to_end(plan, {"after_x": S.FAILED})

    assert (green["x"], green["y"], green["after_x"], green["after_y"]) == (S.SKIPPED, S.SKIPPED, S.SUCCESS, S.SUCCESS)
    assert (red["x"], red["y"], red["after_x"]) == (S.SKIPPED, S.SKIPPED, S.FAILED)


def test_is_finished_only_when_every_step_is_terminal() -> None:
    plan = plan_of({"a": {"run": "a"}, "b": {"run": "b"}})

    assert not is_finished(plan, {})
    assert not is_finished(plan, {"a": S.SUCCESS, "b": S.RETRY_SCHEDULED})
    assert is_finished(plan, {"a": S.SUCCESS, "b": S.CANCELED})


# --- JSON ---


def test_plan_round_trips_through_json_unchanged() -> None:
    for plan in (
        compile_plan(load_definition(DESIGN_EXAMPLE)),
        compile_plan(default_validation_definition()),
        plan_of({**DIAMOND, "build": {"run": "make", "needs": ["checkout"], "env": {"A": "1"}, "retry_on": [3, 75]}}),
    ):
        stored = json.loads(json.dumps(plan.to_json()))

        again = Plan.from_json(stored)

        assert again == plan
        assert again.to_json() == plan.to_json()
        assert [again[name].dependents for name in again.names] == [plan[name].dependents for name in plan.names]


@pytest.mark.parametrize(
    "damage",
    [
        lambda data: data.pop("steps"),
        lambda data: data.update(format=99),
        lambda data: data["steps"][0].update(timeout="soon"),
        lambda data: data["steps"][0].update(timeout=True),
        lambda data: data["steps"][0].update(when="sometimes"),
        lambda data: data["steps"].reverse(),
    ],
    ids=["no-steps", "future-format", "bad-timeout", "bool-timeout", "bad-when", "out-of-order"],
)
def test_a_damaged_stored_plan_is_invalid_input(damage: Callable[[dict[str, Any]], object]) -> None:
    data = compile_plan(default_validation_definition()).to_json()
    damage(data)

    with pytest.raises(InvalidInput, match="stored pipeline plan is not valid"):
        Plan.from_json(data)


# --- random DAGs ---


@st.composite
def random_plans(draw: st.DrawFn) -> Plan:
    count = draw(st.integers(min_value=1, max_value=12))
    names = [f"s{i}" for i in range(count)]
    steps: dict[str, dict[str, Any]] = {}
    for i, name in enumerate(names):
        # Needs point to steps earlier in this list, so the graph is acyclic; the file order is then shuffled.
        needs = draw(st.lists(st.sampled_from(names[:i]), unique=True, max_size=3)) if i else []
        when = draw(st.sampled_from(["on_success", "on_success", "on_failure", "always"]))
        steps[name] = {"run": name, "needs": needs, "when": when, "allow_failure": draw(st.booleans())}
    written = draw(st.permutations(names))
    return compile_plan(PipelineDefinition.model_validate({"steps": {name: steps[name] for name in written}}))


@pytest.mark.slow
@settings(max_examples=300, deadline=None)
@given(plan=random_plans(), data=st.data())
def test_random_dags_order_topologically_and_run_to_the_end_only_after_needs(plan: Plan, data: st.DataObject) -> None:
    position = {name: i for i, name in enumerate(plan.names)}
    for step in plan.steps:
        assert all(position[need] < step.position for need in step.needs)
        assert step.level == 1 + max((plan[need].level for need in step.needs), default=-1)
        assert all(step.name in plan[need].dependents for need in step.needs)

    outcome = st.sampled_from([S.SUCCESS, S.SUCCESS, S.FAILED, S.ERROR, S.TIMED_OUT])
    statuses: dict[str, StepStatus] = {}
    running: set[str] = set()
    for _ in range(4 * len(plan.steps) + 4):
        if is_finished(plan, statuses):
            break
        skip = steps_to_skip(plan, statuses)
        ready = ready_steps(plan, statuses)
        assert not set(skip) & set(ready)
        assert skip or ready or running, f"stalled with {statuses}"
        for name in ready:
            assert all(StepStatus(statuses.get(need, S.PENDING)).is_terminal for need in plan[name].needs)
        statuses.update(dict.fromkeys(skip, S.SKIPPED))
        # Start some of the ready steps, finish some of the running ones: any interleaving must reach the end.
        started = []
        if ready:
            started = data.draw(st.lists(st.sampled_from(ready), unique=True, min_size=0 if running else 1))
        for name in started:
            statuses[name] = S.RUNNING
            running.add(name)
        if running:
            done = data.draw(st.sampled_from(sorted(running)))
            running.discard(done)
            statuses[done] = data.draw(outcome)
    assert is_finished(plan, statuses)
