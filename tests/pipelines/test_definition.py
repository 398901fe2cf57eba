"""`.taskmaster.yml` loading: the schema, its defaults, pipeline types, and one exact error line per mistake."""

from __future__ import annotations

import re
import textwrap
from pathlib import Path

import pytest

from taskmaster.core.errors import InvalidInput
from taskmaster.pipelines.definition import (
    MAX_DEFINITION_BYTES,
    DefinitionError,
    PipelineDefinition,
    StepKind,
    StepWhen,
    WorkspaceMode,
    default_validation_definition,
    load_definition,
)
from taskmaster.pipelines.states import PipelineType

DESIGN_EXAMPLE = """\
concurrency: 4
steps:
  install: {run: "pip install -e .[test]", network: true, timeout: 600, retries: 2, retry_on: [infra, timeout]}
  lint:    {run: "ruff check .", needs: [install]}
  test:    {run: "pytest -q", needs: [install], retry_on: [75]}
  review:  {uses: ai_review, needs: [lint, test]}
  notify:  {run: "echo failed", when: on_failure}
"""


def load(text: str) -> PipelineDefinition:
    return load_definition(textwrap.dedent(text))


def problems_of(text: str, *, source: str = ".taskmaster.yml") -> list[str]:
    with pytest.raises(DefinitionError) as caught:
        load_definition(textwrap.dedent(text), source=source)
    return caught.value.detail.splitlines()


def test_design_example_loads_with_its_values_and_defaults() -> None:
    definition = load_definition(DESIGN_EXAMPLE)

    assert definition.concurrency == 4
    assert definition.timeout == 3600
    assert list(definition.steps) == ["install", "lint", "test", "review", "notify"]
    install = definition.steps["install"]
    assert (install.run, install.network, install.timeout, install.retries) == ("pip install -e .[test]", True, 600, 2)
    assert install.retry_on == ("infra", "timeout")
    test = definition.steps["test"]
    assert test.needs == ("install",)
    assert test.retry_on == (75,)
    assert (test.timeout, test.retries, test.network, test.allow_failure) == (1800, 3, False, False)
    assert (test.when, test.workspace, test.env) == (StepWhen.ON_SUCCESS, WorkspaceMode.SHARED, {})
    review = definition.steps["review"]
    assert (review.kind, review.uses, review.run) == (StepKind.USES, "ai_review", None)
    assert definition.steps["notify"].when is StepWhen.ON_FAILURE


@pytest.mark.parametrize(
    ("written", "seconds"),
    [("600", 600), ("10m", 600), ("90s", 90), ("1h", 3600), ("1h30m", 5400), ("2d", 172800), ("45", 45)],
)
def test_durations_read_as_seconds_from_numbers_and_units(written: str, seconds: int) -> None:
    definition = load(f"timeout: {written}\nsteps:\n  a: {{run: x, timeout: {written}}}\n")

    assert definition.timeout == seconds
    assert definition.steps["a"].timeout == seconds


def test_env_values_that_yaml_reads_as_numbers_or_booleans_become_strings() -> None:
    definition = load(
        """
        steps:
          a:
            run: env
            env: {PORT: 8000, DEBUG: true, RATIO: 0.5, NAME: web}
        """
    )

    assert definition.steps["a"].env == {"PORT": "8000", "DEBUG": "true", "RATIO": "0.5", "NAME": "web"}


def test_step_fields_are_read_as_written() -> None:
    definition = load(
        """
        steps:
          build: {run: make, workspace: fresh, allow_failure: true, when: always, retries: 0, retry_on: [75, infra]}
        """
    )

    build = definition.steps["build"]
    assert (build.workspace, build.allow_failure, build.when, build.retries) == (
        WorkspaceMode.FRESH,
        True,
        StepWhen.ALWAYS,
        0,
    )
    assert build.retry_on == (75, "infra")


def test_yaml_anchors_and_merge_keys_share_settings_between_steps() -> None:
    definition = load(
        """
        steps:
          lint: &python {run: "ruff check .", timeout: 5m, env: {PYTHONHASHSEED: "0"}}
          test:
            <<: *python
            run: pytest
        """
    )

    assert definition.steps["test"].run == "pytest"
    assert definition.steps["test"].timeout == 300
    assert definition.steps["test"].env == {"PYTHONHASHSEED": "0"}


def test_keys_stay_text_even_when_yaml_would_read_them_as_booleans() -> None:
    definition = load("steps:\n  on: {run: x}\n  yes: {run: y, needs: [on]}\n")

    assert list(definition.steps) == ["on", "yes"]
    assert definition.steps["yes"].needs == ("on",)


def test_types_select_steps_with_their_needs_or_replace_them() -> None:
    definition = load(
        """
        concurrency: 2
        timeout: 1h
        steps:
          install: {run: pip install .}
          lint: {run: ruff check ., needs: [install]}
          test: {run: pytest, needs: [install]}
          review: {uses: ai_review, needs: [lint, test]}
        types:
          push: {only: [test], concurrency: 1}
          codegen:
            timeout: 10m
            steps:
              generate: {run: make gen}
        """
    )

    validation = definition.for_type("validation")
    assert list(validation.steps) == ["install", "lint", "test", "review"]
    assert (validation.concurrency, validation.timeout) == (2, 3600)
    push = definition.for_type(PipelineType.PUSH)
    assert list(push.steps) == ["install", "test"]
    assert (push.concurrency, push.timeout) == (1, 3600)
    codegen = definition.for_type("codegen")
    assert list(codegen.steps) == ["generate"]
    assert (codegen.concurrency, codegen.timeout) == (2, 600)


def test_an_unknown_pipeline_type_is_invalid_input() -> None:
    with pytest.raises(InvalidInput, match="unknown pipeline type 'nightly'"):
        default_validation_definition().for_type("nightly")


def test_default_validation_pipeline_is_checkout_install_lint_and_test_then_review() -> None:
    definition = default_validation_definition()

    steps = definition.steps
    assert list(steps) == ["checkout", "install", "lint", "test", "ai_review"]
    assert (steps["checkout"].uses, steps["ai_review"].uses) == ("checkout", "ai_review")
    assert steps["install"].needs == ("checkout",)
    assert steps["install"].network is True
    assert steps["lint"].needs == steps["test"].needs == ("install",)
    assert steps["ai_review"].needs == ("lint", "test")
    assert "pip install" in (steps["install"].run or "")
    assert "pytest" in (steps["test"].run or "")


def test_default_validation_commands_can_be_overridden() -> None:
    definition = default_validation_definition(install="npm ci", lint="npm run lint", test="npm test")

    commands = [definition.steps[name].run for name in ("install", "lint", "test")]
    assert commands == ["npm ci", "npm run lint", "npm test"]


# --- mistakes: each gives one line naming the file, the line, the key path and what was expected ---

MISTAKES = [
    pytest.param(
        """\
        steps:
          test:
            run: pytest
            network: "sometimes"
        """,
        ['.taskmaster.yml:4: steps.test.network: expected true or false, got "sometimes"'],
        id="wrong-type",
    ),
    pytest.param(
        """\
        steps:
          test: pytest -q
        """,
        ['.taskmaster.yml:2: steps.test: expected a mapping, got "pytest -q"'],
        id="step-not-a-mapping",
    ),
    pytest.param(
        """\
        steps:
          test:
            run: pytest
            retrys: 2
        """,
        ['.taskmaster.yml:4: steps.test.retrys: unknown key "retrys" (did you mean "retries"?)'],
        id="unknown-key-misspelt",
    ),
    pytest.param(
        """\
        steps:
          test: {run: pytest, depends_on: [lint]}
        """,
        ['.taskmaster.yml:2: steps.test.depends_on: unknown key "depends_on" (did you mean "needs"?)'],
        id="unknown-key-from-another-ci",
    ),
    pytest.param(
        """\
        image: python:3.11
        steps:
          a: {run: x}
        """,
        ['.taskmaster.yml:1: image: unknown key "image" (expected one of: concurrency, timeout, steps, types)'],
        id="unknown-top-level-key",
    ),
    pytest.param(
        """\
        steps:
          install: {run: pip install .}
          test:
            run: pytest
            needs: [instal]
        """,
        ['.taskmaster.yml:5: steps.test.needs[0]: unknown step "instal" (did you mean "install"?)'],
        id="unknown-needs-close",
    ),
    pytest.param(
        """\
        steps:
          install: {run: pip install .}
          test:
            run: pytest
            needs:
              - install
              - build
        """,
        ['.taskmaster.yml:7: steps.test.needs[1]: unknown step "build" (steps: install, test)'],
        id="unknown-needs-far",
    ),
    pytest.param(
        """\
        steps:
          install: {run: pip install .}
          lint: {run: ruff check ., needs: [install, test]}
          test: {run: pytest, needs: [lint]}
        """,
        [".taskmaster.yml:3: steps.lint.needs[1]: circular dependency: lint -> test -> lint"],
        id="cycle",
    ),
    pytest.param(
        """\
        steps:
          test: {run: pytest, needs: [test]}
        """,
        [".taskmaster.yml:2: steps.test.needs[0]: circular dependency: test -> test"],
        id="needs-itself",
    ),
    pytest.param(
        """\
        steps:
          a: {run: x}
          b: {run: y, needs: [a, a]}
        """,
        ['.taskmaster.yml:3: steps.b.needs[1]: "a" is listed twice'],
        id="need-listed-twice",
    ),
    pytest.param(
        """\
        steps:
          checkout:
            run: git clone
            uses: checkout
        """,
        ['.taskmaster.yml:2: steps.checkout: expected one of "run" or "uses", got both'],
        id="both-run-and-uses",
    ),
    pytest.param(
        """\
        steps:
          test:
            needs: []
        """,
        [
            '.taskmaster.yml:2: steps.test: expected "run" (a shell command) or "uses" '
            "(a built-in step: checkout, ai_review)"
        ],
        id="neither-run-nor-uses",
    ),
    pytest.param(
        """\
        steps:
          test:
            run:
        """,
        [".taskmaster.yml:3: steps.test.run: expected a shell command (a non-empty string), got an empty value"],
        id="empty-run",
    ),
    pytest.param(
        """\
        steps:
          review: {uses: aireview}
        """,
        [
            '.taskmaster.yml:2: steps.review.uses: expected one of checkout, ai_review, got "aireview" '
            '(did you mean "ai_review"?)'
        ],
        id="unknown-builtin",
    ),
    pytest.param(
        """\
        steps:
          install: {run: pip install .}
          test:
            run: pytest
            timeout: soon
        """,
        ['.taskmaster.yml:5: steps.test.timeout: expected a duration (seconds or "10m"), got "soon"'],
        id="bad-duration",
    ),
    pytest.param(
        """\
        timeout: 0
        steps:
          a: {run: x}
        """,
        [".taskmaster.yml:1: timeout: expected a duration from 1 second to 7 days, got 0"],
        id="zero-duration",
    ),
    pytest.param(
        """\
        steps:
          test:
            run: pytest
            retry_on: [infra, 75, flaky]
        """,
        [
            ".taskmaster.yml:4: steps.test.retry_on[2]: expected an exit code (1 to 255) or one of infra, timeout, "
            'got "flaky"'
        ],
        id="bad-retry-on-word",
    ),
    pytest.param(
        """\
        steps:
          test:
            run: pytest
            retry_on:
              - 0
        """,
        [".taskmaster.yml:5: steps.test.retry_on[0]: expected an exit code (1 to 255) or one of infra, timeout, got 0"],
        id="bad-retry-on-code",
    ),
    pytest.param(
        """\
        steps:
          test:
            run: pytest
            retries: -1
        """,
        [".taskmaster.yml:4: steps.test.retries: expected a whole number from 0 to 10, got -1"],
        id="negative-retries",
    ),
    pytest.param(
        """\
        concurrency: 0
        steps:
          a: {run: x}
        """,
        [".taskmaster.yml:1: concurrency: expected a whole number from 1 to 64, got 0"],
        id="zero-concurrency",
    ),
    pytest.param(
        """\
        steps:
          test: {run: pytest, when: onfailure}
        """,
        [
            '.taskmaster.yml:2: steps.test.when: expected one of on_success, on_failure, always, got "onfailure" '
            '(did you mean "on_failure"?)'
        ],
        id="bad-when",
    ),
    pytest.param(
        """\
        steps:
          lint: {run: ruff check .}
          test: {run: pytest}
          lint: {run: flake8}
        """,
        ['.taskmaster.yml:4: steps.lint: duplicate step "lint" (first at line 2)'],
        id="duplicate-step",
    ),
    pytest.param(
        """\
        steps:
          test:
            run: pytest
            timeout: 60
            timeout: 120
        """,
        ['.taskmaster.yml:5: steps.test.timeout: duplicate key "timeout" (first at line 4)'],
        id="duplicate-key",
    ),
    pytest.param(
        """\
        steps:
          test: {run: pytest
          lint: {run: ruff}
        """,
        [".taskmaster.yml:3:7: invalid YAML: while parsing a flow mapping, expected ',' or '}', but got ':'"],
        id="yaml-syntax",
    ),
    pytest.param(
        """\
        - install
        - test
        """,
        [".taskmaster.yml:1: expected a mapping (concurrency, timeout, steps, types) at the top level, got a list"],
        id="top-level-list",
    ),
    pytest.param(
        """\
        concurrency: 2
        """,
        ['.taskmaster.yml:1: missing required key "steps"'],
        id="no-steps",
    ),
    pytest.param(
        """\
        concurrency: 2
        steps: {}
        """,
        [".taskmaster.yml:2: steps: expected at least one step"],
        id="empty-steps",
    ),
    pytest.param(
        """\
        steps:
          unit tests: {run: pytest}
        """,
        [
            '.taskmaster.yml:2: steps.unit tests: expected a step name (letters, digits, "_" and "-", at most 64 '
            'characters), got "unit tests"'
        ],
        id="bad-step-name",
    ),
    pytest.param(
        """\
        steps:
          test:
            run: pytest
            env:
              "MY-VAR": x
        """,
        [
            ".taskmaster.yml:5: steps.test.env.MY-VAR: expected an environment variable name (letters, digits and _), "
            'got "MY-VAR"'
        ],
        id="bad-env-name",
    ),
    pytest.param(
        """\
        steps:
          test: {run: pytest}
        types:
          pull_request: {only: [test]}
          push: {only: [tests]}
        """,
        [
            '.taskmaster.yml:4: types.pull_request: expected one of validation, push, codegen, got "pull_request"',
            '.taskmaster.yml:5: types.push.only[0]: unknown step "tests" (did you mean "test"?)',
        ],
        id="bad-types",
    ),
    pytest.param(
        """\
        steps:
          test: {run: pytest}
        types:
          push:
            only: [test]
            steps: {lint: {run: ruff}}
        """,
        ['.taskmaster.yml:4: types.push: expected one of "steps" or "only", got both'],
        id="type-with-steps-and-only",
    ),
    pytest.param(
        """\
        steps:
          a: {run: "x\a"}
        """,
        [".taskmaster.yml:2: invalid YAML: the character U+0007 is not allowed"],
        id="unprintable-character",
    ),
    pytest.param(
        """\
        steps:
          "a\\0": {run: x}
          b: {run: "echo \\0", needs: ["a\\0"], env: {"K\\0": "v\\0", L: "\\0"}}
        "types\\0": {}
        """,
        [
            ".taskmaster.yml:2: steps.a\\0: the character U+0000 (NUL) is not allowed",
            ".taskmaster.yml:3: steps.b.run: the character U+0000 (NUL) is not allowed",
            ".taskmaster.yml:3: steps.b.needs[0]: the character U+0000 (NUL) is not allowed",
            ".taskmaster.yml:3: steps.b.env.K\\0: the character U+0000 (NUL) is not allowed",
            ".taskmaster.yml:3: steps.b.env.L: the character U+0000 (NUL) is not allowed",
            ".taskmaster.yml:4: types\\0: the character U+0000 (NUL) is not allowed",
        ],
        id="nul-characters",
    ),
    pytest.param(
        """\
        steps:
          a: {run: x, limits: {memory: 0, tmp: 0.1b, cpu: 0}}
        """,
        [
            ".taskmaster.yml:2: steps.a.limits.memory: Input should be greater than 0",
            ".taskmaster.yml:2: steps.a.limits.tmp: Input should be greater than 0",
            ".taskmaster.yml:2: steps.a.limits.cpu: Input should be greater than 0",
        ],
        id="zero-limits",
    ),
    pytest.param(
        """\
        steps:
          a: {run: x, limits: {memroy: 1GiB, swap: 1GiB}}
        """,
        [
            '.taskmaster.yml:2: steps.a.limits.memroy: unknown key "memroy" (did you mean "memory"?)',
            '.taskmaster.yml:2: steps.a.limits.swap: unknown key "swap" '
            "(expected one of: cpu, memory, processes, disk, tmp)",
        ],
        id="unknown-limit",
    ),
    pytest.param(
        "",
        [".taskmaster.yml: the file is empty: expected a mapping with steps"],
        id="empty-file",
    ),
    pytest.param(
        """\
        steps:
          a: !!python/object:os.system {run: x}
        """,
        [
            ".taskmaster.yml:2:6: invalid YAML: could not determine a constructor for the tag "
            "'tag:yaml.org,2002:python/object:os.system'"
        ],
        id="unsafe-tag",
    ),
]


@pytest.mark.parametrize(("text", "expected"), MISTAKES)
def test_each_mistake_is_reported_with_its_line_and_key_path(text: str, expected: list[str]) -> None:
    assert problems_of(text) == expected


def test_every_problem_in_a_file_is_reported_in_line_order() -> None:
    lines = problems_of(
        """\
        concurency: 4
        steps:
          install: {run: pip install ., timeout: soon}
          lint: {run: ruff check ., needs: [instal]}
          test: {run: pytest, needs: [review], retries: -1}
          review: {uses: ai_review, needs: [test]}
          lint: {run: flake8, needs: [install]}
        """,
        source="repo/.taskmaster.yml",
    )

    assert lines == [
        'repo/.taskmaster.yml:1: concurency: unknown key "concurency" (did you mean "concurrency"?)',
        'repo/.taskmaster.yml:3: steps.install.timeout: expected a duration (seconds or "10m"), got "soon"',
        "repo/.taskmaster.yml:5: steps.test.needs[0]: circular dependency: test -> review -> test",
        "repo/.taskmaster.yml:5: steps.test.retries: expected a whole number from 0 to 10, got -1",
        'repo/.taskmaster.yml:7: steps.lint: duplicate step "lint" (first at line 4)',
    ]


def test_definition_error_is_invalid_input_carrying_each_problem() -> None:
    with pytest.raises(DefinitionError) as caught:
        load_definition("steps:\n  a: {run: x, timeout: soon}\n")

    error = caught.value
    assert isinstance(error, InvalidInput)
    assert error.code == "invalid_pipeline_definition"
    [problem] = error.problems
    assert (problem.line, problem.path, problem.loc) == (2, "steps.a.timeout", ("steps", "a", "timeout"))
    assert error.extra["problems"] == [
        {"line": 2, "column": None, "path": "steps.a.timeout", "message": problem.message}
    ]


def test_a_file_over_the_size_limit_is_refused_before_parsing() -> None:
    text = "steps:\n  a: {run: x}\n" + "#" * MAX_DEFINITION_BYTES

    expected = r"^\.taskmaster\.yml: the file is \d+ bytes, more than the 262144 allowed$"
    with pytest.raises(DefinitionError, match=expected):
        load_definition(text)


def test_aliases_that_expand_without_bound_are_refused() -> None:
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    lines += [f"a{i}: &a{i} [*a{i - 1}, *a{i - 1}, *a{i - 1}, *a{i - 1}, *a{i - 1}]" for i in range(1, 12)]

    with pytest.raises(DefinitionError, match="expands to more than 20000 values"):
        load_definition("\n".join(lines) + "\nsteps: {a: {run: x}}\n")


def test_building_a_definition_in_code_checks_the_step_graph_too() -> None:
    with pytest.raises(DefinitionError) as caught:
        PipelineDefinition.model_validate(
            {"steps": {"a": {"run": "x", "needs": ["b"]}, "b": {"run": "y", "needs": ["a"]}}}
        )

    assert caught.value.detail == ".taskmaster.yml: steps.a.needs[0]: circular dependency: a -> b -> a"


def test_the_yaml_examples_of_docs_pipelines_md_load_as_documented() -> None:
    docs = (Path(__file__).parents[2] / "docs" / "pipelines.md").read_text()
    examples = [load_definition(block) for block in re.findall(r"```yaml\n(.*?)```", docs, flags=re.S)]

    assert len(examples) >= 2
    limits = next(e.steps["build"].limits for e in examples if "build" in e.steps)
    assert (limits.cpu, limits.memory, limits.processes, limits.disk, limits.tmp) == (
        1200, 6 * 1024**3, 256, 20 * 10**9, 512 * 1024**2,
    )  # fmt: skip
