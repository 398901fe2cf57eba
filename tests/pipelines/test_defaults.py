"""The default pipeline of a repository without `.taskmaster.yml`: what detection finds, and its YAML form."""

from __future__ import annotations

import json

import pytest

from taskmaster.pipelines.defaults import detect, files_to_read
from taskmaster.pipelines.definition import load_definition

PYPROJECT = """\
[project]
name = "tiny"
version = "0.1.0"

[project.optional-dependencies]
test = ["pytest"]
docs = ["sphinx"]

[tool.ruff]
line-length = 100
"""


def test_a_python_project_installs_itself_with_its_test_extra_into_a_venv_and_installs_the_tools_it_names() -> None:
    detected = detect(["pyproject.toml", "tiny", "tests"], {"pyproject.toml": PYPROJECT})

    assert detected.kinds == ("python",)
    assert "python3 -m venv .venv" in detected.install and "uv venv" in detected.install
    assert "pip_install -e '.[test]'" in detected.install
    assert "pip_install pytest ruff" in detected.install
    assert "python -m pip" not in detected.install.replace(".venv/bin/python -m pip", "")
    assert " python " not in f" {detected.install} {detected.lint} {detected.test} "
    assert "ruff check ." in detected.lint and "lint skipped: neither ruff nor flake8" in detected.lint
    assert ".venv/bin/python -m pytest -q" in detected.test and "unittest discover" in detected.test


def test_a_pyproject_with_only_tool_settings_is_not_installed_but_its_requirements_are() -> None:
    detected = detect(
        ["pyproject.toml", "requirements.txt", "requirements-dev.txt"],
        {"pyproject.toml": "[tool.black]\n", "requirements-dev.txt": "flake8\n"},
    )

    assert "-e ." not in detected.install
    assert "pip_install -r requirements-dev.txt -r requirements.txt" in detected.install
    assert "pip_install flake8" in detected.install


@pytest.mark.parametrize(
    ("lock", "install"),
    [
        ("package-lock.json", "npm ci"),
        ("yarn.lock", "yarn install --frozen-lockfile"),
        ("pnpm-lock.yaml", "pnpm install --frozen-lockfile"),
        (None, "npm install"),
    ],
)
def test_a_node_project_installs_with_the_manager_of_its_lock_file(lock: str | None, install: str) -> None:
    manifest = json.dumps({"scripts": {"test": "node --test", "lint": "eslint ."}})
    names = ["package.json", *([lock] if lock else [])]

    detected = detect(names, {"package.json": manifest})

    assert detected.kinds == ("node",)
    assert install in detected.install
    manager = install.split()[0]
    assert f"{manager} run lint" in detected.lint and f"{manager} test" in detected.test


def test_a_node_project_without_scripts_skips_lint_and_says_it_has_no_tests() -> None:
    manifest = json.dumps({"scripts": {"test": 'echo "Error: no test specified" && exit 1'}})

    detected = detect(["package.json", "package-lock.json"], {"package.json": manifest})

    assert 'lint skipped: package.json has no \\"lint\\" script' in detected.lint
    assert "nothing to test" in detected.test and detected.test.endswith("exit 1")


def test_go_rust_and_makefile_targets_are_detected_and_the_makefile_wins_for_lint_and_test() -> None:
    makefile = ".PHONY: test lint\nCC := gcc\nlint:\n\tgo vet ./...\ntest: build\n\tgo test ./...\n"

    go = detect(["go.mod", "Makefile"], {"Makefile": makefile})
    rust = detect(["Cargo.toml"], {})

    assert go.kinds == ("go", "make")
    assert "go mod download" in go.install
    assert go.lint.endswith("make lint") and go.test.endswith("make test")
    assert rust.kinds == ("rust",)
    assert "cargo fetch" in rust.install and "clippy is not installed: skipped" in rust.lint
    assert rust.test.endswith("cargo test")


def test_a_repository_with_nothing_known_fails_its_test_step_with_advice() -> None:
    detected = detect(["README.md"], {})

    assert detected.kinds == ()
    assert "taskmaster pipeline init" in detected.test and detected.test.endswith("exit 1")


def test_only_the_files_detection_needs_are_read() -> None:
    names = ["README.md", "package.json", "Makefile", "requirements-test.txt", "src", "pyproject.toml"]

    assert files_to_read(names) == ["Makefile", "package.json", "pyproject.toml", "requirements-test.txt"]


@pytest.mark.parametrize("names", [["pyproject.toml"], ["package.json", "package-lock.json"], ["go.mod"], []])
def test_the_yaml_written_for_people_loads_as_the_same_pipeline(names: list[str]) -> None:
    detected = detect(names, {"pyproject.toml": PYPROJECT, "package.json": '{"scripts": {"test": "jest"}}'})

    text = detected.to_yaml()

    assert text.startswith("# The pipeline Taskmaster runs for this repository")
    assert load_definition(text) == detected.definition()
