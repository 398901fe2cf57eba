"""The pull request's diff: `git diff base...head` computed in the runtime's mirror of the repository, parsed into
files and hunks whose lines carry their new-file numbers (binary and renamed files included)."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path

from taskmaster.core.errors import InvalidInput
from taskmaster.workflows.review.schemas import DiffLine, FileDiff, FileStatus, Hunk

_HUNK = re.compile(r"^@@ -(?P<old>\d+)(?:,\d+)? \+(?P<new>\d+)(?:,\d+)? @@ ?(?P<header>.*)$")
_SHA = re.compile(r"^[0-9a-fA-F]{4,64}$")
_ESCAPES = {"n": "\n", "t": "\t", '"': '"', "\\": "\\", "a": "\a", "b": "\b", "f": "\f", "r": "\r", "v": "\v"}
MAX_DIFF_BYTES = 200 * 1024 * 1024
"""A diff larger than this is refused rather than read into memory."""


class DiffError(InvalidInput):
    """The diff could not be computed (unknown commit, git failed)."""


async def git_diff(git_dir: Path, base: str, head: str, *, git: str = "git") -> str:
    """`git diff base...head` (changes on head since the merge base) in the repository at `git_dir`."""
    for name, sha in (("base", base), ("head", head)):
        if not _SHA.match(sha):
            raise DiffError(f"the {name} commit {sha!r} is not a commit id")
    args = [
        git, f"--git-dir={git_dir}", "-c", "core.quotePath=false", "diff", "--no-color", "--no-ext-diff",
        "--no-textconv", "--find-renames", "--unified=3", f"{base}...{head}", "--",
    ]  # fmt: skip
    process = await asyncio.create_subprocess_exec(
        *args, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, env={"GIT_TERMINAL_PROMPT": "0"}
    )
    out, err = await process.communicate()
    if process.returncode != 0:
        message = err.decode("utf-8", "replace").strip().splitlines()
        raise DiffError(f"git diff {base[:12]}...{head[:12]} failed: {message[-1] if message else process.returncode}")
    if len(out) > MAX_DIFF_BYTES:
        raise DiffError(f"the diff is {len(out):,} bytes, over the {MAX_DIFF_BYTES:,} bytes a review reads")
    return out.decode("utf-8", "replace")


async def git_show(git_dir: Path, sha: str, path: str, *, git: str = "git", limit: int = 64_000) -> str | None:
    """The text of `path` at commit `sha` (at most `limit` characters), or None when there is no such file."""
    process = await asyncio.create_subprocess_exec(
        git, f"--git-dir={git_dir}", "show", f"{sha}:{path}",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL, env={"GIT_TERMINAL_PROMPT": "0"},
    )  # fmt: skip
    out, _ = await process.communicate()
    if process.returncode != 0:
        return None
    return out.decode("utf-8", "replace")[:limit]


def parse_diff(text: str) -> list[FileDiff]:
    """The files of a unified `git diff`, in order."""
    files: list[FileDiff] = []
    current: _File | None = None
    for line in text.splitlines():
        if line.startswith("diff --git "):
            if current is not None:
                files.append(current.done())
            current = _File(line)
            continue
        if current is not None:
            current.feed(line)
    if current is not None:
        files.append(current.done())
    return files


class _File:
    def __init__(self, header: str) -> None:
        self.old_path, self.new_path = _header_paths(header)
        self.status: FileStatus = "modified"
        self.binary = False
        self.hunks: list[Hunk] = []
        self.lines: list[DiffLine] = []
        self.hunk: tuple[int, int, str] | None = None
        self.next_new = 0

    def feed(self, line: str) -> None:
        if self.hunk is not None and line[:1] in ("+", "-", " ", "\\") and not line.startswith("@@"):
            if line.startswith("\\"):
                return  # "\ No newline at end of file"
            kind = line[0]
            if kind == "-":
                self.lines.append(DiffLine(kind="-", new_line=None, text=line[1:]))
            else:
                self.lines.append(DiffLine(kind=kind, new_line=self.next_new, text=line[1:]))
                self.next_new += 1
            return
        if match := _HUNK.match(line):
            self._close_hunk()
            self.hunk = (int(match["old"]), int(match["new"]), match["header"])
            self.next_new = int(match["new"])
            return
        if line.startswith("new file mode"):
            self.status = "added"
        elif line.startswith("deleted file mode"):
            self.status = "deleted"
        elif line.startswith("rename from "):
            self.status, self.old_path = "renamed", _unquote(line.removeprefix("rename from "))
        elif line.startswith("rename to "):
            self.new_path = _unquote(line.removeprefix("rename to "))
        elif line.startswith("Binary files ") or line == "GIT binary patch":
            self.binary = True
        elif line.startswith("--- ") and line != "--- /dev/null":
            self.old_path = _strip_prefix(_unquote(line[4:]), "a/")
        elif line.startswith("+++ ") and line != "+++ /dev/null":
            self.new_path = _strip_prefix(_unquote(line[4:]), "b/")

    def _close_hunk(self) -> None:
        if self.hunk is not None:
            old, new, header = self.hunk
            self.hunks.append(Hunk(old_start=old, new_start=new, header=header, lines=tuple(self.lines)))
        self.hunk, self.lines = None, []

    def done(self) -> FileDiff:
        self._close_hunk()
        path = self.old_path if self.status == "deleted" else self.new_path
        return FileDiff(
            path=path,
            old_path=self.old_path if self.status == "renamed" else None,
            status=self.status,
            binary=self.binary,
            hunks=tuple(self.hunks),
        )


def _header_paths(header: str) -> tuple[str, str]:
    rest = header.removeprefix("diff --git ")
    if rest.startswith('"'):
        # Quoted names: `"a/x y" "b/x y"` (or a mix); the ---/+++ or rename lines that follow correct them.
        parts = re.findall(r'"(?:[^"\\]|\\.)*"|\S+', rest)
        if len(parts) == 2:
            return _strip_prefix(_unquote(parts[0]), "a/"), _strip_prefix(_unquote(parts[1]), "b/")
    # `a/<path> b/<path>`: with equal paths (no rename) the split is at the middle.
    half = len(rest) // 2
    if rest[half : half + 3] == " b/":
        old, new = rest[:half], rest[half + 1 :]
    else:
        old, _, new = rest.partition(" b/")
        new = "b/" + new
    return _strip_prefix(old, "a/"), _strip_prefix(new, "b/")


def _strip_prefix(path: str, prefix: str) -> str:
    return path[len(prefix) :] if path.startswith(prefix) else path


def _unquote(text: str) -> str:
    """A path as git writes it: C-quoted (octal bytes as UTF-8) when it holds unusual characters."""
    text = text.rstrip("\t")
    if not (len(text) >= 2 and text.startswith('"') and text.endswith('"')):
        return text
    body, out, index = text[1:-1], bytearray(), 0
    while index < len(body):
        char = body[index]
        if char == "\\" and index + 1 < len(body):
            nxt = body[index + 1]
            if nxt in "01234567" and re.match(r"[0-7]{3}", body[index + 1 : index + 4]):
                out.append(int(body[index + 1 : index + 4], 8))
                index += 4
                continue
            out.extend(_ESCAPES.get(nxt, nxt).encode())
            index += 2
            continue
        out.extend(char.encode())
        index += 1
    return out.decode("utf-8", "replace")
