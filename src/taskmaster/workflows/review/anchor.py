"""Anchoring: a finding is placed on the changed lines its quote matches in its file's hunks; one that matches
nothing changed stays unanchored (counted in the summary, never posted on a line)."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence

from taskmaster.workflows.review.schemas import AnchoredFinding, DiffLine, FileDiff, Finding


def anchor_all(findings: Iterable[Finding], files: Sequence[FileDiff]) -> tuple[list[AnchoredFinding], list[Finding]]:
    """The findings placed on changed lines, and those that could not be (in their order)."""
    by_path = {diff.path: diff for diff in files}
    anchored: list[AnchoredFinding] = []
    unanchored: list[Finding] = []
    seen: set[str] = set()
    for finding in findings:
        placed = anchor(finding, by_path.get(finding.file.removeprefix("./")))
        if placed is None:
            unanchored.append(finding)
        elif placed.fingerprint not in seen:  # the same finding from two chunks or two rules counts once
            seen.add(placed.fingerprint)
            anchored.append(placed)
    return anchored, unanchored


def anchor(finding: Finding, diff: FileDiff | None) -> AnchoredFinding | None:
    """`finding` on the lines its quote matches (the match nearest its stated line), or None when the quote matches
    no span of the new file's hunks that holds an added line. Without a quote, its stated lines are kept only when
    they lie within one hunk and cover an added line."""
    if diff is None:
        return None
    quote = [_norm(line) for line in finding.quote.splitlines() if _norm(line)]
    best: tuple[int, int, int] | None = None  # (distance, start, end)
    for hunk in diff.hunks:
        new_side = [line for line in hunk.lines if line.kind != "-"]
        if not quote:
            numbers = {line.new_line for line in new_side}
            if (
                finding.start_line in numbers
                and finding.end_line in numbers
                and _covers_added(new_side, finding.start_line, finding.end_line)
            ):
                best = (0, finding.start_line, finding.end_line)
            continue
        for start in range(len(new_side) - len(quote) + 1):
            window = new_side[start : start + len(quote)]
            if not all(
                _matches(q, line.text, i, len(quote)) for i, (q, line) in enumerate(zip(quote, window, strict=False))
            ):
                continue
            if not any(line.kind == "+" for line in window):
                continue
            first, last = window[0].new_line, window[-1].new_line
            assert first is not None and last is not None
            distance = abs(first - finding.start_line)
            if best is None or distance < best[0]:
                best = (distance, first, last)
    if best is None:
        return None
    _, start_line, end_line = best
    return AnchoredFinding(
        **finding.model_dump(exclude={"start_line", "end_line", "file"}),
        file=diff.path,
        start_line=start_line,
        end_line=end_line,
        fingerprint=fingerprint(diff.path, finding),
    )


def fingerprint(path: str, finding: Finding) -> str:
    """What identifies a finding across pushes: its file, category and the code it quotes (not its line numbers,
    which move when code is added above it, nor its wording, which a model varies)."""
    quote = "\n".join(_norm(line) for line in finding.quote.splitlines() if _norm(line))
    basis = quote or f"{finding.message.strip().lower()}"
    digest = hashlib.sha256("\0".join([path, finding.category.strip().lower(), basis]).encode()).hexdigest()
    return digest[:40]


def _norm(text: str) -> str:
    return " ".join(text.split())


def _matches(quote: str, line: str, index: int, count: int) -> bool:
    """A quoted line matches a diff line equal to it, or, at the ends of the quote, one holding it (a quote may
    start or end mid-line)."""
    text = _norm(line)
    if quote == text:
        return True
    if count == 1:
        return quote in text
    if index == 0:
        return text.endswith(quote)
    if index == count - 1:
        return text.startswith(quote)
    return False


def _covers_added(lines: Sequence[DiffLine], start: int, end: int) -> bool:
    return any(line.kind == "+" and line.new_line is not None and start <= line.new_line <= end for line in lines)
