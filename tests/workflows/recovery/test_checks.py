"""The checks a patch passes before it is tried: no deleted or skipped tests, no removed test functions, no weaker
CI, lint or test configuration (unless the project allows it), nothing outside the repository."""

from __future__ import annotations

import pytest

from taskmaster.workflows.recovery.checks import check_patch, is_test_file, parse_patch


def _diff(path: str, removed: list[str], added: list[str], *, header: str = "") -> str:
    lines = [f"diff --git a/{path} b/{path}", *([header] if header else []), f"--- a/{path}", f"+++ b/{path}"]
    lines.append(f"@@ -1,{len(removed)} +1,{len(added)} @@")
    lines += [f"-{line}" for line in removed] + [f"+{line}" for line in added]
    return "\n".join(lines) + "\n"


def test_a_plain_code_fix_passes() -> None:
    assert check_patch(_diff("src/app.py", ["    return a - b"], ["    return a + b"])) == []


@pytest.mark.parametrize(
    "marker",
    [
        "@pytest.mark.skip(reason='flaky')",
        "@pytest.mark.xfail",
        "    pytest.skip('later')",
        "@unittest.skip('no')",
        "it.skip('adds', () => {})",
        "xit('adds', () => {})",
        "    t.Skip()",
        "#[ignore]",
    ],
)
def test_an_added_skip_or_xfail_marker_is_refused(marker: str) -> None:
    problems = check_patch(_diff("tests/test_app.py", [], [marker]))
    assert len(problems) == 1 and "adds a skip or xfail marker" in problems[0]


def test_a_removed_test_function_is_refused_but_a_renamed_body_is_not() -> None:
    removed = _diff("tests/test_app.py", ["def test_adds():", "    assert add(1, 2) == 3"], [])
    assert check_patch(removed) == ["tests/test_app.py: the patch removes test functions (test_adds)"]
    edited = _diff("tests/test_app.py", ["def test_adds():"], ["def test_adds():  # the same test"])
    assert check_patch(edited) == []


def test_a_deleted_or_moved_away_test_file_is_refused() -> None:
    deleted = (
        "diff --git a/tests/test_app.py b/tests/test_app.py\ndeleted file mode 100644\n"
        "--- a/tests/test_app.py\n+++ /dev/null\n@@ -1 +0,0 @@\n-x = 1\n"
    )
    assert check_patch(deleted) == ["tests/test_app.py: the patch deletes a test file"]
    moved = (
        "diff --git a/tests/test_app.py b/old/app.py\nsimilarity index 100%\n"
        "rename from tests/test_app.py\nrename to old/app.py\n"
    )
    assert check_patch(moved) == ["tests/test_app.py: the patch moves a test file out of the tests"]


@pytest.mark.parametrize(
    "path", [".taskmaster.yml", ".github/workflows/ci.yml", ".gitlab-ci.yml", "pytest.ini", "tox.ini", "conftest.py",
             "tests/conftest.py", "ruff.toml", ".eslintrc.json", "eslint.config.js", "mypy.ini"],
)  # fmt: skip
def test_ci_lint_and_test_configuration_may_change_only_when_the_project_allows_it(path: str) -> None:
    patch = _diff(path, ["strict: true"], ["strict: false"])
    assert check_patch(patch) == [
        f"{path}: the patch changes CI, lint or test configuration (the project does not allow it)"
    ]
    assert check_patch(patch, allow_config_changes=True) == []


def test_pyproject_is_refused_only_where_it_configures_the_checks() -> None:
    lint = _diff("pyproject.toml", ['select = ["E", "F"]'], ['select = ["E"]'])
    assert check_patch(lint) == [
        "pyproject.toml: the patch changes the lint or test sections of a configuration file (not allowed)"
    ]
    assert check_patch(_diff("pyproject.toml", ['version = "1.0"'], ['version = "1.1"'])) == []


def test_paths_outside_the_repository_symlinks_binaries_and_non_diffs_are_refused() -> None:
    assert check_patch(_diff("../etc/passwd", ["a"], ["b"])) == [
        "../etc/passwd: a path outside the repository or inside .git"
    ]
    assert check_patch(_diff(".git/config", ["a"], ["b"])) == [
        ".git/config: a path outside the repository or inside .git"
    ]
    link = "diff --git a/leak b/leak\nnew file mode 120000\n--- /dev/null\n+++ b/leak\n@@ -0,0 +1 @@\n+/etc/passwd\n"
    assert check_patch(link) == ["leak: the patch makes a symbolic link"]
    binary = "diff --git a/logo.png b/logo.png\nindex 1..2 100644\nGIT binary patch\nliteral 1\n"
    assert check_patch(binary) == ["logo.png: the patch changes a binary file"]
    assert check_patch("please add one") == ["the patch is not a unified diff (no file headers)"]
    assert check_patch("  ") == ["the patch is empty"]


def test_plain_unified_diffs_without_git_headers_are_read() -> None:
    [item] = parse_patch("--- a/src/app.py\n+++ b/src/app.py\n@@ -1 +1 @@\n-x\n+y\n")
    assert (item.old_path, item.new_path, item.added, item.removed) == ("src/app.py", "src/app.py", ["y"], ["x"])


def test_test_files_are_known_by_name_or_directory() -> None:
    assert all(map(is_test_file, ["tests/util.py", "src/app_test.go", "web/a.spec.ts", "test_x.py", "__tests__/a.js"]))
    assert not any(map(is_test_file, ["src/app.py", "docs/testing.md", "contest.py"]))
