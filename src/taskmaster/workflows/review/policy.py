"""Pass or fail: the project's policy (`review.fail_on`, `review.min_confidence`) applied to the anchored
findings; unanchored findings are reported but decide nothing, since they name no changed line."""

from __future__ import annotations

from collections.abc import Sequence

from taskmaster.projects.settings import ReviewSettings
from taskmaster.workflows.review.schemas import Finding


def failing(findings: Sequence[Finding], settings: ReviewSettings) -> list[str]:
    """One line per finding that fails the review under `settings` (empty: the review passes)."""
    return [
        f"{finding.severity} ({finding.confidence:.2f}) {finding.file}:{finding.start_line}: {finding.message}"
        for finding in findings
        if settings.fails(finding.severity, finding.confidence)
    ]


def explain(settings: ReviewSettings) -> str:
    """The policy in words, for the report."""
    if settings.fail_on == "none":
        return "the review never fails (review.fail_on = none)"
    if settings.fail_on == "blocker":
        return "fails on any blocker"
    return (
        f"fails on any blocker, or on a finding down to {settings.fail_on} with confidence >= "
        f"{settings.min_confidence:g}"
    )
