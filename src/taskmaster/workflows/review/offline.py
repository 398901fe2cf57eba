"""The offline reviewer: deterministic rules over the added lines (debug prints, TODO/FIXME, strings that look
like secrets, very large files) and the pipeline's own lint and test failures that name a changed line."""

from __future__ import annotations

import re

from taskmaster.pipelines.annotations import log_annotations
from taskmaster.projects.settings import Severity
from taskmaster.workflows.review.base import ReviewAnswer, ReviewJob
from taskmaster.workflows.review.schemas import FileDiff, Finding, ReviewInput, Verdict

LARGE_FILE_LINES = 1000
"""Added lines past which a file is flagged as very large."""

_Rule = tuple[str, re.Pattern[str], Severity, str, float, str]
# (category, pattern, severity, message, confidence, languages: file suffixes or "" for any)
_RULES: tuple[_Rule, ...] = (
    ("security", re.compile(r"-----BEGIN (?:RSA |EC |DSA |OPENSSH |PGP )?PRIVATE KEY"), "blocker",
     "a private key is committed", 0.95, ""),
    ("security", re.compile(r"\bAKIA[0-9A-Z]{16}\b"), "blocker", "an AWS access key id is committed", 0.95, ""),
    ("security", re.compile(r"\bgh[pousr]_[A-Za-z0-9]{36,}\b"), "blocker", "a GitHub token is committed", 0.95, ""),
    ("security", re.compile(r"\bxox[abposr]-[A-Za-z0-9-]{10,}"), "blocker", "a Slack token is committed", 0.95, ""),
    ("security", re.compile(r"\bsk-(?:ant-|proj-)?[A-Za-z0-9_-]{20,}"), "blocker", "an API key is committed", 0.9,
     ""),
    ("security",
     re.compile(r"""(?i)\b\w*(?:password|passwd|secret|api_?key|access_?key|auth_?token|private_?key)\w*["']?\s*"""
                r"""[:=]\s*["'][^"'\s]{8,}["']"""),
     "major", "a string that looks like a secret is assigned in the code", 0.7, ""),
    ("debug", re.compile(r"\b(?:breakpoint\(\)|pdb\.set_trace\(\)|import i?pdb\b)"), "major",
     "a debugger breakpoint is left in the code", 0.95, ".py"),
    ("debug", re.compile(r"^\s*print\("), "minor", "a debug print is added", 0.6, ".py"),
    ("debug", re.compile(r"\bconsole\.(?:log|debug)\("), "minor", "a console.log is added", 0.7,
     ".js .jsx .ts .tsx .mjs .cjs .vue .svelte"),
    ("debug", re.compile(r"^\s*debugger;?\s*$"), "major", "a debugger statement is left in the code", 0.95,
     ".js .jsx .ts .tsx .mjs .cjs .vue .svelte"),
    ("debug", re.compile(r"\bdbg!\("), "minor", "a dbg! macro is added", 0.8, ".rs"),
    ("debug", re.compile(r"\bvar_dump\(|\bprint_r\("), "minor", "a debug dump is added", 0.7, ".php"),
    ("todo", re.compile(r"\b(?:TODO|FIXME|XXX|HACK)\b"), "nit", "a TODO/FIXME is added: track it in an issue", 0.9,
     ""),
)  # fmt: skip


class OfflineReviewer:
    """The reviewer with no model: the embedded default, so that every installation shows a real review."""

    name = "offline"

    async def review(self, job: ReviewJob) -> ReviewAnswer:
        reviewed = {diff.path for chunk in job.plan.chunks for diff in chunk.files}
        files = [diff for chunk in job.plan.chunks for diff in chunk.files]
        findings = [*rule_findings(files), *failure_findings(job.input, reviewed)]
        for diff in job.input.files:
            if diff.path in reviewed and diff.additions > LARGE_FILE_LINES:
                first = min(diff.added)
                findings.append(
                    Finding(
                        file=diff.path,
                        start_line=first,
                        end_line=first,
                        severity="minor",
                        category="size",
                        message=f"a very large change: {diff.additions:,} added lines in one file; consider splitting",
                        confidence=0.6,
                        quote=diff.added[first],
                    )
                )
        if not findings:
            summary = f"No problems found by the offline rules in {len(reviewed)} files."
        else:
            summary = f"The offline rules found {len(findings)} problem{'s' if len(findings) != 1 else ''}."
        return ReviewAnswer(Verdict(summary=summary, findings=findings, meets_acceptance=None))


def rule_findings(files: list[FileDiff]) -> list[Finding]:
    """Findings of the line rules on every added line of `files`."""
    found: list[Finding] = []
    for diff in files:
        suffix = "." + diff.path.rsplit(".", 1)[-1] if "." in diff.path.rsplit("/", 1)[-1] else ""
        for number, text in sorted(diff.added.items()):
            for category, pattern, severity, message, confidence, languages in _RULES:
                if languages and suffix not in languages.split():
                    continue
                if pattern.search(text):
                    found.append(
                        Finding(
                            file=diff.path,
                            start_line=number,
                            end_line=number,
                            severity=severity,
                            category=category,
                            message=message,
                            confidence=confidence,
                            quote=text.strip()[:2000],
                        )
                    )
                    break  # one finding per line: the most severe rule listed first
    return found


def failure_findings(review: ReviewInput, reviewed: set[str]) -> list[Finding]:
    """The failing steps' `path:line: message` log lines that name an added line of a reviewed file."""
    added = {diff.path: diff.added for diff in review.files if diff.path in reviewed}
    found: list[Finding] = []
    for step in review.steps:
        if not step.log_tail or step.status not in ("failed", "error", "timed_out"):
            continue
        for note in log_annotations(step.log_tail):
            text = added.get(note.path, {}).get(note.start_line)
            if text is None:
                continue
            found.append(
                Finding(
                    file=note.path,
                    start_line=note.start_line,
                    end_line=note.start_line,
                    severity="major",
                    category="ci",
                    message=f"step {step.name!r} fails here: {note.message}",
                    confidence=1.0,
                    quote=text.strip()[:2000],
                )
            )
    return found
