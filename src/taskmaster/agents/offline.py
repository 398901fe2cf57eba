"""The offline coding agent: deterministic, no model. It applies what the task's details carry (a unified diff, or
fenced file blocks), and otherwise records the task in `docs/tasks/` without claiming to implement anything.

Accepted forms in `CodingJob.details` (see docs/architecture.md, "The offline agent"):
- a unified diff: the whole details (starting with `diff --git` or `--- `), or a fenced block whose info string is
  `diff` or `patch`; applied with `git apply` in the checkout;
- a file block: a fenced block whose info string carries `path=<relative path>` (```` ```python path=src/x.py ````),
  or a fence right after a line `path: <relative path>` (or `file: ...`, the path optionally in backticks); the
  block's text becomes the whole file.
A path that is absolute, climbs with `..`, names `.git`, or leads through a symlink out of the checkout is refused
(`failure="refused"`) and nothing is written.
"""

from __future__ import annotations

import asyncio
import os
import re
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from taskmaster.agents.base import AgentKind, AgentResult, CodingJob, StartedCallback
from taskmaster.core.text import slug

_FENCE = re.compile(r"^(?P<indent> {0,3})(?P<fence>`{3,}|~{3,})(?P<info>[^`]*)$")
_PATH_LINE = re.compile(r"^\s*(?:path|file)\s*:\s*`?(?P<path>[^`\s]+)`?\s*$", re.IGNORECASE)
_PATH_INFO = re.compile(r"""(?:^|\s)path=(?:"(?P<quoted>[^"]+)"|(?P<bare>\S+))""")
_DIFF_PATHS = re.compile(r"^(?:(?:---|\+\+\+) (?P<file>\S+)|(?:rename|copy) (?:from|to) (?P<moved>.+))$")
_GIT_HEADER = re.compile(r"^diff --git (?P<a>\S+) (?P<b>\S+)$")
MAX_FILE_BYTES = 5 * 1024 * 1024


class Refused(Exception):
    """A path the agent will not write (outside the checkout)."""


@dataclass(frozen=True, slots=True)
class FileBlock:
    path: str
    text: str


@dataclass(frozen=True, slots=True)
class Carried:
    """What a task's details carry for the offline agent."""

    diffs: tuple[str, ...]
    files: tuple[FileBlock, ...]

    @property
    def empty(self) -> bool:
        return not self.diffs and not self.files


def parse_details(details: str | None) -> Carried:
    """The diffs and file blocks in `details`, in the accepted forms (module docstring); prose is ignored."""
    text = (details or "").replace("\r\n", "\n")
    stripped = text.lstrip()
    if stripped.startswith(("diff --git ", "--- ")) and "\n+++ " in stripped:
        return Carried((stripped if stripped.endswith("\n") else stripped + "\n",), ())
    diffs: list[str] = []
    files: list[FileBlock] = []
    lines = text.split("\n")
    index, previous = 0, ""
    while index < len(lines):
        opening = _FENCE.match(lines[index])
        if opening is None:
            if lines[index].strip():
                previous = lines[index]
            index += 1
            continue
        fence, info = opening["fence"], opening["info"].strip()
        body: list[str] = []
        index += 1
        while index < len(lines):
            closing = lines[index].strip()
            if closing.startswith(fence[0] * len(fence)) and not closing.strip(fence[0]):
                break
            body.append(lines[index])
            index += 1
        index += 1
        content = "\n".join(body) + "\n" if body else ""
        language = info.split()[0].lower() if info else ""
        in_info = _PATH_INFO.search(info)
        by_line = _PATH_LINE.match(previous)
        if in_info is not None:
            files.append(FileBlock(in_info["quoted"] or in_info["bare"], content))
        elif language in ("diff", "patch"):
            diffs.append(content)
        elif by_line is not None:
            files.append(FileBlock(by_line["path"], content))
        previous = ""
    return Carried(tuple(diffs), tuple(files))


def diff_paths(diff: str) -> list[str]:
    """Every path a unified diff names (old and new sides, renames), without git's `a/` `b/` prefixes."""
    paths: list[str] = []
    for line in diff.split("\n"):
        header = _GIT_HEADER.match(line)
        if header is not None:
            paths += [_strip_prefix(header["a"]), _strip_prefix(header["b"])]
            continue
        named = _DIFF_PATHS.match(line)
        if named is None:
            continue
        if named["file"] is not None:
            if named["file"] != "/dev/null":
                paths.append(_strip_prefix(named["file"]))
        else:
            paths.append(named["moved"].strip())
    return paths


def _strip_prefix(path: str) -> str:
    path = path.strip('"')
    return path.split("/", 1)[1] if "/" in path else path


def inside(checkout: Path, relative: str) -> Path:
    """`relative` resolved in `checkout`; `Refused` when it is absolute, climbs out, names `.git`, or leads out of
    the checkout through a symlink."""
    pure = PurePosixPath(relative)
    if not relative or "\0" in relative or pure.is_absolute() or relative.startswith("~"):
        raise Refused(f"path {relative!r} is not relative to the checkout")
    if ".." in pure.parts:
        raise Refused(f"path {relative!r} climbs out of the checkout with '..'")
    if pure.parts and pure.parts[0] == ".git":
        raise Refused(f"path {relative!r} is inside git's own directory")
    root = checkout.resolve()
    target = (root / pure).resolve()
    if target != root and root not in target.parents:
        raise Refused(f"path {relative!r} leads out of the checkout through a symbolic link")
    return target


class OfflineCodingAgent:
    """A `CodingAgent` without a model (kind "offline"); see the module docstring for what it does."""

    def __init__(self, *, git: str = "git") -> None:
        self._git = git

    @property
    def kind(self) -> AgentKind:
        return "offline"

    @property
    def label(self) -> str:
        return "offline"

    async def run(self, job: CodingJob, *, on_started: StartedCallback | None = None) -> AgentResult:
        try:
            return await asyncio.wait_for(self._run(job), timeout=job.timeout)
        except TimeoutError:
            return AgentResult(ok=False, failure="timeout", error=f"the offline agent took over {job.timeout:g} s")

    async def aclose(self) -> None:
        return None

    async def _run(self, job: CodingJob) -> AgentResult:
        carried = parse_details(job.details)
        try:
            for diff in carried.diffs:
                for path in diff_paths(diff):
                    inside(job.checkout, path)
            for block in carried.files:
                inside(job.checkout, block.path)
        except Refused as exc:
            return AgentResult(ok=False, failure="refused", error=f"refused the task's details: {exc}")
        if carried.empty:
            return await asyncio.to_thread(self._record, job)
        for number, diff in enumerate(carried.diffs, 1):
            error = await self._apply(job.checkout, diff)
            if error is not None:
                where = f" (diff {number} of {len(carried.diffs)})" if len(carried.diffs) > 1 else ""
                return AgentResult(ok=False, failure="failed", error=f"the diff in the task's details{where} does "
                                   f"not apply: {error}")  # fmt: skip
        try:
            await asyncio.to_thread(_write_files, job.checkout, carried.files)
        except Refused as exc:
            return AgentResult(ok=False, failure="refused", error=f"refused the task's details: {exc}")
        parts = []
        if carried.diffs:
            parts.append(f"applied {len(carried.diffs)} diff(s) from the task's details")
        if carried.files:
            parts.append(f"wrote {', '.join(b.path for b in carried.files)} from the task's details")
        summary = "The offline agent " + " and ".join(parts) + "."
        return AgentResult(ok=True, summary=summary, transcript=summary)

    async def _apply(self, checkout: Path, diff: str) -> str | None:
        """Apply `diff` with `git apply` (which also refuses paths beyond a symlink); its error, or None."""
        env = {**os.environ, "GIT_TERMINAL_PROMPT": "0"}
        process = await asyncio.create_subprocess_exec(
            self._git, "apply", "--whitespace=nowarn", "-", cwd=checkout, env=env,
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        _, stderr = await process.communicate(diff.encode())
        if process.returncode != 0:
            return stderr.decode(errors="replace").strip()[-1000:] or f"git apply exited {process.returncode}"
        return None

    def _record(self, job: CodingJob) -> AgentResult:
        number = job.task_number if job.task_number is not None else 0
        relative = f"docs/tasks/{number}-{slug(job.title)}.md"
        target = inside(job.checkout, relative)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(record_text(job), encoding="utf-8")
        summary = (
            f"The offline agent recorded the task in {relative}; it implemented no feature (the task's details "
            "carry no diff or file blocks to apply)."
        )
        return AgentResult(ok=True, summary=summary, transcript=summary, claims_implementation=False)


def record_text(job: CodingJob) -> str:
    """The Markdown that records a task the offline agent could not implement."""
    number = f"#{job.task_number} " if job.task_number is not None else ""
    lines = [f"# Task {number}{job.title}".rstrip(), ""]
    lines += [
        "Recorded by Taskmaster's offline agent. No feature was implemented: this file keeps the task, its",
        "acceptance criteria and its test strategy next to the code for whoever implements it.",
        "",
    ]
    if job.details:
        lines += ["## Details", "", job.details.strip(), ""]
    lines += ["## Acceptance criteria", ""]
    lines += [f"- {item}" for item in job.acceptance] or ["- (none given)"]
    lines += ["", "## Test strategy", "", (job.test_strategy or "(none given)").strip(), ""]
    return "\n".join(lines)


def _write_files(checkout: Path, files: tuple[FileBlock, ...]) -> None:
    for block in files:
        data = block.text.encode("utf-8")
        if len(data) > MAX_FILE_BYTES:
            raise Refused(f"file block {block.path!r} is larger than {MAX_FILE_BYTES} bytes")
        target = inside(checkout, block.path)
        if target.is_dir():
            raise Refused(f"path {block.path!r} is a directory in the checkout")
        target.parent.mkdir(parents=True, exist_ok=True)
        inside(checkout, block.path)  # the directories just made must not have changed where it leads
        target.write_bytes(data)
