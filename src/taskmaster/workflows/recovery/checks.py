"""Checks on a proposed patch before it is tried: it must not delete or skip tests, nor weaken CI, lint or test
configuration (unless the project allows configuration changes). Pure functions over the unified diff's text."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from fnmatch import fnmatch
from pathlib import PurePosixPath

MAX_PATCH_BYTES = 512 * 1024

_TEST_FILE_PATTERNS = (
    "test_*.py", "*_test.py", "tests.py", "*.test.*", "*.spec.*", "*_test.go", "*Test.java", "*_spec.rb",
)  # fmt: skip
_TEST_DIRS = {"test", "tests", "__tests__", "spec", "specs"}

_CONFIG_FILES = (
    ".taskmaster.yml", ".taskmaster.yaml", ".gitlab-ci.yml", ".github/workflows/*", ".circleci/*", "Jenkinsfile",
    "azure-pipelines.yml", ".travis.yml", "pytest.ini", "tox.ini", "noxfile.py", "conftest.py", "*/conftest.py",
    ".coveragerc", "mypy.ini", ".mypy.ini", "ruff.toml", ".ruff.toml", ".flake8", ".pylintrc", "pylintrc",
    ".eslintrc", ".eslintrc.*", "eslint.config.*", "jest.config.*", "vitest.config.*", "karma.conf.*",
    ".pre-commit-config.yaml", "phpunit.xml", "phpunit.xml.dist", ".golangci.yml", ".golangci.yaml", "clippy.toml",
)  # fmt: skip
# Shared files where only some sections configure the checks: a change is refused when it touches those sections.
_SHARED_CONFIG = {"pyproject.toml", "setup.cfg", "package.json", "Cargo.toml"}
_CHECK_WORDS = re.compile(
    r"pytest|ruff|mypy|flake8|pylint|coverage|eslint|jest|vitest|mocha|addopts|filterwarnings|\blint\b|\"test\"|"
    r"tool\.|\bignore|\bselect\b|exclude|strict|clippy|deny|warn",
    re.IGNORECASE,
)

_SKIP_MARKERS = re.compile(
    r"pytest\.mark\.(skip|skipif|xfail)|pytest\.(skip|xfail)\(|unittest\.skip|@skip\b|\.skipTest\(|"
    r"\b(it|test|describe|context)\.(skip|todo)\(|\bx(it|describe|test)\(|\b(it|test|describe)\.only\(|"
    r"\bt\.Skip(Now|f)?\(|#\[ignore\]|@Disabled\b|@Ignore\b|\bpending\(|\bskip\s*\(",
)
_TEST_FUNCTION = re.compile(
    r"^\s*(?:async\s+)?def\s+(test\w*)\s*\(|^\s*func\s+(Test\w*)\s*\(|^\s*(?:it|test)\(\s*['\"`]([^'\"`]+)|"
    r"^\s*fn\s+(test_\w+)\s*\("
)
_DIFF_HEADER = re.compile(r"^diff --git a/(.+?) b/(.+)$")


@dataclass
class FilePatch:
    """One file's part of a unified diff."""

    old_path: str | None
    new_path: str | None
    deleted: bool = False
    new_mode: str | None = None
    binary: bool = False
    added: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    hunk_headers: list[str] = field(default_factory=list)

    @property
    def path(self) -> str:
        return self.new_path or self.old_path or ""

    @property
    def paths(self) -> set[str]:
        return {p for p in (self.old_path, self.new_path) if p}


def parse_patch(patch: str) -> list[FilePatch]:
    """The files of a unified diff (git's format, or plain `---`/`+++` headers)."""
    files: list[FilePatch] = []
    current: FilePatch | None = None
    in_hunk = False
    for line in patch.splitlines():
        header = _DIFF_HEADER.match(line)
        if header:
            current = FilePatch(header.group(1), header.group(2))
            files.append(current)
            in_hunk = False
            continue
        if line.startswith("--- ") and not in_hunk:
            old = _strip_prefix(line[4:])
            if current is None or (current.old_path is None and current.new_path is None):
                current = FilePatch(old, None)
                files.append(current)
            if old is None:
                current.old_path = None
            continue
        if line.startswith("+++ ") and current is not None and not in_hunk:
            new = _strip_prefix(line[4:])
            if new is None:
                current.deleted = True
                current.new_path = None
            else:
                current.new_path = new
            continue
        if current is None:
            continue
        if line.startswith("deleted file mode"):
            current.deleted = True
        elif line.startswith(("new file mode ", "new mode ")):
            current.new_mode = line.split()[-1]
        elif line.startswith(("GIT binary patch", "Binary files ")):
            current.binary = True
        elif line.startswith("@@"):
            in_hunk = True
            current.hunk_headers.append(line)
        elif in_hunk and line.startswith("+"):
            current.added.append(line[1:])
        elif in_hunk and line.startswith("-"):
            current.removed.append(line[1:])
        elif line.startswith("diff "):
            in_hunk = False
    return files


def check_patch(patch: str, *, allow_config_changes: bool = False) -> list[str]:
    """The reasons to refuse `patch`, one line each; empty when it may be tried."""
    if not patch.strip():
        return ["the patch is empty"]
    if len(patch.encode()) > MAX_PATCH_BYTES:
        return [f"the patch is larger than {MAX_PATCH_BYTES // 1024} KiB"]
    files = parse_patch(patch)
    if not files:
        return ["the patch is not a unified diff (no file headers)"]
    problems: list[str] = []
    for item in files:
        for path in item.paths:
            if path.startswith("/") or ".." in PurePosixPath(path).parts or path.startswith(".git/") or path == ".git":
                problems.append(f"{path}: a path outside the repository or inside .git")
        if item.new_mode == "120000":
            problems.append(f"{item.path}: the patch makes a symbolic link")
        if item.binary:
            problems.append(f"{item.path}: the patch changes a binary file")
        if item.old_path and is_test_file(item.old_path):
            if item.deleted:
                problems.append(f"{item.old_path}: the patch deletes a test file")
            elif item.new_path and item.new_path != item.old_path and not is_test_file(item.new_path):
                problems.append(f"{item.old_path}: the patch moves a test file out of the tests")
        skips = [line for line in item.added if _SKIP_MARKERS.search(line)]
        if skips:
            problems.append(f"{item.path}: the patch adds a skip or xfail marker ({skips[0].strip()[:80]})")
        if is_test_file(item.path):
            removed = _test_names(item.removed) - _test_names(item.added)
            if removed:
                problems.append(f"{item.path}: the patch removes test functions ({', '.join(sorted(removed))})")
        if not allow_config_changes and (reason := _config_change(item)):
            problems.append(f"{item.path}: {reason}")
    return problems


def is_test_file(path: str) -> bool:
    """Whether `path` looks like a test file (by name or by a test directory among its parents)."""
    pure = PurePosixPath(path)
    if any(part in _TEST_DIRS for part in pure.parts[:-1]):
        return True
    return any(fnmatch(pure.name, pattern) for pattern in _TEST_FILE_PATTERNS)


def is_check_config(path: str) -> bool:
    """Whether `path` is a file that configures CI, lint or tests as a whole."""
    return any(fnmatch(path, pattern) for pattern in _CONFIG_FILES)


def _config_change(item: FilePatch) -> str | None:
    for path in item.paths:
        if is_check_config(path):
            return "the patch changes CI, lint or test configuration (the project does not allow it)"
        if PurePosixPath(path).name in _SHARED_CONFIG:
            touched = [*item.added, *item.removed, *item.hunk_headers]
            if any(_CHECK_WORDS.search(line) for line in touched):
                return "the patch changes the lint or test sections of a configuration file (not allowed)"
    return None


def _test_names(lines: list[str]) -> set[str]:
    names: set[str] = set()
    for line in lines:
        match = _TEST_FUNCTION.match(line)
        if match:
            names.add(next(group for group in match.groups() if group))
    return names


def _strip_prefix(name: str) -> str | None:
    name = name.split("\t", 1)[0].strip()
    if name == "/dev/null":
        return None
    if name.startswith(("a/", "b/")):
        return name[2:]
    return name
