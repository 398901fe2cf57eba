"""A diff cut into chunks under a token budget: files a project's rules skip (lock, vendored, generated) are left
out, a file too large for one chunk is clipped to the hunks that fit, and every file gets its coverage line."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from fnmatch import fnmatchcase

from taskmaster.workflows.review.schemas import FileCoverage, FileDiff, Hunk

DEFAULT_SKIP: tuple[str, ...] = (
    # lock files
    "*.lock", "**/package-lock.json", "package-lock.json", "**/pnpm-lock.yaml", "pnpm-lock.yaml", "**/go.sum",
    "go.sum", "**/npm-shrinkwrap.json", "npm-shrinkwrap.json",
    # vendored
    "vendor/**", "**/vendor/**", "third_party/**", "**/third_party/**", "node_modules/**", "**/node_modules/**",
    # generated
    "*.min.js", "*.min.css", "*.map", "*_pb2.py", "*_pb2.pyi", "*.pb.go", "*.generated.*", "*_generated.*",
    "dist/**", "build/**",
)  # fmt: skip
"""What `review.skip` means when a project has not set it."""
CHARS_PER_TOKEN = 4
"""The estimate of tokens in code (about four characters each for common tokenizers)."""
FILE_OVERHEAD_TOKENS = 12


def estimate_tokens(text: str) -> int:
    return (len(text) + CHARS_PER_TOKEN - 1) // CHARS_PER_TOKEN


def skip_reason(path: str, patterns: Sequence[str]) -> str | None:
    """Which skip pattern `path` matches (`fnmatch`, where `*` crosses `/` too), if any."""
    name = path.rsplit("/", 1)[-1]
    for pattern in patterns:
        if fnmatchcase(path, pattern) or ("/" not in pattern and fnmatchcase(name, pattern)):
            return f"matches review.skip pattern {pattern!r}"
    return None


def render_file(diff: FileDiff, hunks: Sequence[Hunk] | None = None) -> str:
    """A file's diff as a reviewer reads it: a header, then each hunk's lines with their new-file numbers."""
    title = diff.path if diff.old_path is None else f"{diff.path} (renamed from {diff.old_path})"
    lines = [f"### {title} [{diff.status}]"]
    for hunk in diff.hunks if hunks is None else hunks:
        lines.append(f"@@ {hunk.header}".rstrip())
        for line in hunk.lines:
            number = "" if line.new_line is None else str(line.new_line)
            lines.append(f"{number:>5} {line.kind} {line.text}")
    return "\n".join(lines) + "\n"


@dataclass
class Chunk:
    """Files (or parts of files) reviewed in one request; `text` is what is sent."""

    files: list[FileDiff] = field(default_factory=list)
    parts: list[str] = field(default_factory=list)
    tokens: int = 0

    @property
    def text(self) -> str:
        return "\n".join(self.parts)


@dataclass
class ChunkPlan:
    chunks: list[Chunk]
    coverage: list[FileCoverage]


def plan_chunks(files: Sequence[FileDiff], *, budget: int, skip: Sequence[str] = DEFAULT_SKIP) -> ChunkPlan:
    """Pack the reviewable files into chunks of at most `budget` tokens each, in diff order (first fit)."""
    chunks: list[Chunk] = []
    coverage: list[FileCoverage] = []
    for diff in files:
        reason = _not_reviewed(diff, skip)
        if reason is not None:
            coverage.append(FileCoverage(path=diff.path, status="skipped", reason=reason))
            continue
        text = render_file(diff)
        tokens = estimate_tokens(text) + FILE_OVERHEAD_TOKENS
        clipped: FileDiff | None = None
        if tokens > budget:
            kept, used = _fitting_hunks(diff, budget)
            if not kept:
                coverage.append(
                    FileCoverage(
                        path=diff.path,
                        status="skipped",
                        reason=f"its first hunk alone is over the budget of {budget:,} tokens per chunk",
                    )
                )
                continue
            clipped = diff.model_copy(update={"hunks": tuple(kept)})
            text, tokens = render_file(clipped), used
            coverage.append(
                FileCoverage(
                    path=diff.path,
                    status="clipped",
                    reason=f"{_lines(kept)} of {_lines(diff.hunks)} diff lines ({len(kept)} of {len(diff.hunks)} "
                    f"hunks) reviewed: the diff is over the budget of "
                    f"{budget:,} tokens per chunk (review.max_tokens_per_chunk)",
                )
            )
        else:
            coverage.append(FileCoverage(path=diff.path, status="reviewed"))
        target = next((chunk for chunk in chunks if chunk.tokens + tokens <= budget), None)
        if target is None:
            target = Chunk()
            chunks.append(target)
        target.files.append(clipped or diff)
        target.parts.append(text)
        target.tokens += tokens
    return ChunkPlan(chunks, coverage)


def _not_reviewed(diff: FileDiff, skip: Sequence[str]) -> str | None:
    if diff.binary:
        return "binary file"
    if diff.status == "deleted":
        return "deleted: no new lines to review"
    if not diff.hunks:
        return "no changed lines (mode or rename only)"
    return skip_reason(diff.path, skip)


def _fitting_hunks(diff: FileDiff, budget: int) -> tuple[list[Hunk], int]:
    kept: list[Hunk] = []
    used = FILE_OVERHEAD_TOKENS + estimate_tokens(render_file(diff, []))
    for hunk in diff.hunks:
        cost = _hunk_tokens(diff, hunk)
        if used + cost > budget:
            if not kept:  # one hunk larger than a chunk: its first lines, rather than nothing of the file
                lines = list(hunk.lines)
                while lines and used + _hunk_tokens(diff, hunk.model_copy(update={"lines": tuple(lines)})) > budget:
                    lines = lines[: len(lines) * 3 // 4]
                if lines:
                    part = hunk.model_copy(update={"lines": tuple(lines)})
                    kept.append(part)
                    used += _hunk_tokens(diff, part)
            break
        kept.append(hunk)
        used += cost
    return kept, used


def _lines(hunks: Sequence[Hunk]) -> int:
    return sum(len(hunk.lines) for hunk in hunks)


def _hunk_tokens(diff: FileDiff, hunk: Hunk) -> int:
    return estimate_tokens(render_file(diff, [hunk])) - estimate_tokens(render_file(diff, []))
