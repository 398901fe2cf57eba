"""The pipeline of a repository without `.taskmaster.yml`: detected from its top-level files, and written out as YAML.

Detection reads only names and a few small files (`package.json`, the Makefile, Python metadata), so it runs on a
commit in the mirror as well as on a working directory. The commands decide at run time what the machine has.
"""

from __future__ import annotations

import json
import re
import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from taskmaster.pipelines.definition import PipelineDefinition, default_validation_definition

PYTHON_FILES = ("pyproject.toml", "setup.cfg", "setup.py")
NODE_LOCKS = {"package-lock.json": "npm", "npm-shrinkwrap.json": "npm", "yarn.lock": "yarn", "pnpm-lock.yaml": "pnpm"}
MAKEFILES = ("GNUmakefile", "makefile", "Makefile")
MAX_READ = 256 * 1024
"""Files larger than this are not read for detection."""
_REQUIREMENTS = re.compile(r"requirements[\w.-]*\.txt")
_MAKE_TARGET = re.compile(r"^([A-Za-z0-9_.-]+(?:[ \t]+[A-Za-z0-9_.-]+)*)[ \t]*::?(?!=)", re.MULTILINE)
_TEST_EXTRAS = ("test", "tests", "testing", "dev")
_NPM_NO_TEST = "no test specified"
# Lint and test commands of every ecosystem run in the step's own directory, with the Python venv first on PATH.
_PREAMBLE = "set -e"
_VENV_PATH = 'export PATH="$PWD/.venv/bin:$PATH"'


def files_to_read(names: Iterable[str]) -> list[str]:
    """Which of the top-level `names` detection reads (the caller passes their text to `detect`)."""
    wanted = {"package.json", "pyproject.toml", "setup.cfg", "tox.ini", *MAKEFILES}
    return sorted(n for n in names if n in wanted or _REQUIREMENTS.fullmatch(n))


@dataclass(frozen=True, slots=True)
class Detected:
    """What a repository is, and the commands of its default pipeline. `kinds` lists what was recognised, e.g.
    ``("python", "make")``; `install`, `lint`, `test` are shell scripts (run by `/bin/sh -c`)."""

    kinds: tuple[str, ...]
    install: str
    lint: str
    test: str
    notes: tuple[str, ...] = field(default=())

    def definition(self) -> PipelineDefinition:
        """`checkout → install → (lint ∥ test) → ai_review` with these commands."""
        return default_validation_definition(install=self.install, lint=self.lint, test=self.test)

    def to_yaml(self) -> str:
        """The pipeline as a `.taskmaster.yml` a person can edit; loading it gives `definition()`."""
        what = ", ".join(self.kinds) if self.kinds else "nothing known"
        lines = [
            "# The pipeline Taskmaster runs for this repository; edit it to suit.",
            f"# Detected: {what}. Reference: docs/pipelines.md",
            "steps:",
        ]
        for name, step in self.definition().steps.items():
            lines.append(f"  {name}:")
            if step.uses is not None:
                lines.append(f"    uses: {step.uses}")
            else:
                lines.append("    run: |-")
                lines += [f"      {line}" if line else "" for line in (step.run or "").splitlines()]
            if step.needs:
                lines.append(f"    needs: [{', '.join(step.needs)}]")
            if step.network:
                lines.append("    network: true")
            lines.append(f"    timeout: {step.timeout}")
        return "\n".join(lines) + "\n"


def detect(names: Iterable[str], texts: Mapping[str, str]) -> Detected:
    """The default pipeline for a repository whose top level holds `names`, given the text of the
    `files_to_read(names)` that could be read."""
    present = set(names)
    installs: list[str] = []
    lints: list[str] = []
    tests: list[str] = []
    kinds: list[str] = []
    python = _python(present, texts)
    if python is not None:
        kinds.append("python")
        installs.append(python[0])
        lints.append(python[1])
        tests.append(python[2])
    node = _node(present, texts)
    if node is not None:
        kinds.append("node")
        installs.append(node[0])
        lints.append(node[1])
        tests.append(node[2])
    if "go.mod" in present:
        kinds.append("go")
        installs.append(_GO_INSTALL)
        lints.append(_GO_LINT)
        tests.append(_GO_TEST)
    if "Cargo.toml" in present:
        kinds.append("rust")
        installs.append(_RUST_INSTALL)
        lints.append(_RUST_LINT)
        tests.append(_RUST_TEST)
    targets = _make_targets(present, texts)
    if targets & {"lint", "test"}:
        # The repository's own words win over a guess: its Makefile knows how it wants to be linted and tested.
        kinds.append("make")
        if "lint" in targets:
            lints = [_need("make", "") + "\nmake lint"]
        if "test" in targets:
            tests = [_need("make", "") + "\nmake test"]
    if not installs:
        installs = ['echo "nothing to install: no pyproject.toml, setup.py, package.json, go.mod or Cargo.toml"']
    if not lints:
        lints = ['echo "lint skipped: no linter known for this repository (write a .taskmaster.yml to add one)"']
    if not tests:
        tests = [
            'echo "no tests found: no Python, Node, Go or Rust project and no Makefile test target;'
            ' write a .taskmaster.yml (taskmaster pipeline init)" >&2\nexit 1'
        ]
    venv = [_VENV_PATH] if python is not None else []
    return Detected(
        kinds=tuple(kinds),
        install="\n".join([_PREAMBLE, *installs]),
        lint="\n".join([_PREAMBLE, *venv, *lints]),
        test="\n".join([_PREAMBLE, *venv, *tests]),
    )


def detect_directory(path: Path) -> Detected:
    """`detect` on a working directory (for `taskmaster pipeline init`)."""
    names = [entry.name for entry in path.iterdir()]
    texts: dict[str, str] = {}
    for name in files_to_read(names):
        file = path / name
        if file.is_file() and file.stat().st_size <= MAX_READ:
            texts[name] = file.read_text(errors="replace")
    return detect(names, texts)


def _need(tool: str, hint: str) -> str:
    """A line that stops the step with a plain message when `tool` is not installed."""
    extra = f" ({hint})" if hint else ""
    return (
        f"command -v {tool} >/dev/null 2>&1 || "
        f'{{ echo "{tool} is not installed on this machine{extra}" >&2; exit 127; }}'
    )


# --- Python: a virtual environment in the workspace, made with uv when installed, else python3 -m venv + pip ---

_PY_VENV = """\
if command -v uv >/dev/null 2>&1; then
  echo "making .venv with uv"
  uv venv --quiet .venv
  export VIRTUAL_ENV="$PWD/.venv"
  pip_install() { uv pip install "$@"; }
else
  command -v python3 >/dev/null 2>&1 || { echo "python3 is not installed on this machine" >&2; exit 127; }
  echo "making .venv with python3 -m venv (uv is not installed)"
  python3 -m venv .venv
  pip_install() { .venv/bin/python -m pip install --disable-pip-version-check --no-input "$@"; }
fi"""

_PY_LINT = """\
if command -v ruff >/dev/null 2>&1; then
  ruff check .
elif command -v flake8 >/dev/null 2>&1; then
  echo "ruff is not installed: linting with flake8"
  flake8 --extend-exclude .venv .
else
  echo "lint skipped: neither ruff nor flake8 is installed (add one to the project's dev dependencies)"
fi"""

_PY_TEST = """\
if .venv/bin/python -c "import pytest" 2>/dev/null; then
  .venv/bin/python -m pytest -q
else
  echo "pytest is not installed in .venv: running unittest"
  if [ -d tests ] && [ ! -f tests/__init__.py ]; then set -- -s tests; fi
  .venv/bin/python -m unittest discover -v "$@"
fi"""


def _python(present: set[str], texts: Mapping[str, str]) -> tuple[str, str, str] | None:
    requirements = sorted(n for n in present if _REQUIREMENTS.fullmatch(n))
    if not (present & set(PYTHON_FILES)) and not requirements:
        return None
    mentions = "\n".join(texts.get(n, "") for n in files_to_read(present) if n != "package.json")
    packages: list[str] = []
    if _is_python_project(present, texts.get("pyproject.toml")):
        extras = _extras(texts.get("pyproject.toml"), texts.get("setup.cfg"))
        packages.append(f"-e '.[{','.join(extras)}]'" if extras else "-e .")
    packages += [f"-r {name}" for name in requirements]
    tools = [
        tool
        for tool in ("pytest", "ruff", "flake8")
        if re.search(rf"\b{tool}\b", mentions) or (tool == "pytest" and "conftest.py" in present)
    ]
    if "ruff.toml" in present or ".ruff.toml" in present:
        tools.append("ruff")
    if ".flake8" in present:
        tools.append("flake8")
    install = [_PY_VENV]
    if packages:
        install.append("pip_install " + " ".join(packages))
    if tools:
        install.append("pip_install " + " ".join(dict.fromkeys(tools)))
    return "\n".join(install), _PY_LINT, _PY_TEST


def _is_python_project(present: set[str], pyproject: str | None) -> bool:
    """Whether `pip install .` can build the repository (a pyproject with only tool settings cannot)."""
    if "setup.py" in present or "setup.cfg" in present:
        return True
    if pyproject is None:
        return False
    try:
        data = tomllib.loads(pyproject)
    except tomllib.TOMLDecodeError:
        return True  # let pip say what is wrong with it
    return "project" in data or "build-system" in data


def _extras(pyproject: str | None, setup_cfg: str | None) -> list[str]:
    """The optional-dependency groups that hold test or dev tools."""
    names: set[str] = set()
    if pyproject:
        try:
            data: dict[str, Any] = tomllib.loads(pyproject)
        except tomllib.TOMLDecodeError:
            data = {}
        optional = data.get("project", {}).get("optional-dependencies", {})
        names |= set(optional) if isinstance(optional, dict) else set()
    if setup_cfg:
        section = re.search(r"^\[options\.extras_require\]\n((?:[^\[\n].*\n|\n)*)", setup_cfg + "\n", re.MULTILINE)
        if section:
            names |= set(re.findall(r"^([A-Za-z0-9_.-]+)\s*=", section.group(1), re.MULTILINE))
    return [name for name in _TEST_EXTRAS if name in names]


# --- Node: the lock file says which package manager; scripts say how to lint and test ---


def _node(present: set[str], texts: Mapping[str, str]) -> tuple[str, str, str] | None:
    if "package.json" not in present:
        return None
    try:
        manifest = json.loads(texts.get("package.json", "{}"))
    except json.JSONDecodeError:
        manifest = {}
    scripts = manifest.get("scripts") if isinstance(manifest, dict) else None
    scripts = scripts if isinstance(scripts, dict) else {}
    manager = next((m for lock, m in NODE_LOCKS.items() if lock in present), None)
    if manager == "npm":
        install = _need("npm", "install Node.js and npm") + "\nnpm ci"
    elif manager in ("yarn", "pnpm"):
        install = (
            f"if command -v {manager} >/dev/null 2>&1; then {manager} install --frozen-lockfile\n"
            f"elif command -v corepack >/dev/null 2>&1; then corepack {manager} install --frozen-lockfile\n"
            f'else echo "{manager} is not installed on this machine (nor corepack)" >&2; exit 127; fi'
        )
    else:
        manager = "npm"
        install = (
            _need("npm", "install Node.js and npm")
            + '\necho "no lock file: npm install (commit package-lock.json for repeatable installs)"\nnpm install'
        )
    run = manager
    lint = f"{run} run lint" if "lint" in scripts else 'echo "lint skipped: package.json has no \\"lint\\" script"'
    test_script = scripts.get("test")
    if isinstance(test_script, str) and _NPM_NO_TEST not in test_script:
        test = f"{run} test"
    else:
        test = 'echo "package.json has no \\"test\\" script: nothing to test" >&2\nexit 1'
    return install, lint, test


# --- Go and Rust ---

_GO_INSTALL = _need("go", "install Go") + "\ngo mod download"
_GO_LINT = """\
go vet ./...
unformatted="$(gofmt -l .)"
if [ -n "$unformatted" ]; then echo "not formatted with gofmt:"; echo "$unformatted"; exit 1; fi"""
_GO_TEST = "go test ./..."
_RUST_INSTALL = _need("cargo", "install Rust") + "\ncargo fetch"
_RUST_LINT = """\
if cargo fmt --version >/dev/null 2>&1; then cargo fmt --check; else echo "rustfmt is not installed: skipped"; fi
if cargo clippy --version >/dev/null 2>&1; then cargo clippy -- -D warnings
else echo "clippy is not installed: skipped"; fi"""
_RUST_TEST = "cargo test"


def _make_targets(present: set[str], texts: Mapping[str, str]) -> set[str]:
    for name in MAKEFILES:  # make's own order of preference
        if name in present:
            found: set[str] = set()
            for match in _MAKE_TARGET.finditer(texts.get(name, "")):
                found |= set(match.group(1).split())
            return found
    return set()
