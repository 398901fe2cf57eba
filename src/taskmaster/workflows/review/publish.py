"""A review on the forge. In GitHub App mode the pipeline's check run carries the findings as annotations (read
from the stored report by `pipelines.reporting`); in token mode they become one review with inline comments
(GitLab: discussions) when the client can post them; a `/taskmaster review` run edits the PR's review comment."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Protocol, runtime_checkable

from taskmaster.db.models import Project, PullRequest
from taskmaster.forges.base import Forge, ForgeError, ReviewComment
from taskmaster.pipelines.reporting import forge_repo
from taskmaster.projects.forges import ForgeFactory
from taskmaster.workflows.review.schemas import AnchoredFinding, ReviewReport

if TYPE_CHECKING:
    from taskmaster.workflows.review.service import ReviewTarget

COMMENT_MARKER = "review"
"""The marker of the review comment a `/taskmaster review` run keeps up to date (a pipeline's review goes into
the pipeline's own comment)."""
MAX_INLINE_COMMENTS = 100
_ICON = {"blocker": "🛑", "major": "🔴", "minor": "🟡", "nit": "⚪"}


@runtime_checkable
class ReviewPoster(Protocol):
    """A forge client that posts reviews with inline comments (`Forge.create_review`)."""

    async def create_review(
        self, repo: str, number: int, *, commit_sha: str, body: str, comments: Sequence[ReviewComment]
    ) -> str: ...


def comment_body(finding: AnchoredFinding) -> str:
    """A finding as an inline comment or annotation text: severity, category, message and the suggested text."""
    text = f"{_ICON.get(finding.severity, '')} **{finding.severity}** ({finding.category}): {finding.message}"
    if finding.replacement is not None:
        text += f"\n\n```suggestion\n{finding.replacement.rstrip()}\n```"
    return text.strip()


def render_markdown(report: ReviewReport) -> str:
    """The review's section of the pull request's comment; empty for a clean review (no comment noise)."""
    if not report.findings and not report.unanchored:
        return ""
    counts = report.counts()
    new = report.new_findings
    head = "❌ AI review failed" if report.failing else "✅ AI review passed"
    parts = [
        f"#### {head} ({report.reviewer})",
        report.summary.strip(),
        f"{len(report.findings)} findings on changed lines ({len(new)} new, {len(report.findings) - len(new)} "
        f"reported on an earlier push) · {report.unanchored_count} not on a changed line · files: "
        f"{counts['reviewed']} reviewed, {counts['clipped']} clipped, {counts['skipped']} skipped",
    ]
    if report.meets_acceptance is not None:
        parts.append(f"Meets the task's acceptance criteria: **{'yes' if report.meets_acceptance else 'no'}**")
    if new:
        rows = ["| Severity | Where | Finding |", "| --- | --- | --- |"]
        for finding in new[:50]:
            rows.append(f"| {finding.severity} | `{finding.file}:{finding.start_line}` | {_cell(finding.message)} |")
        if len(new) > 50:
            rows.append(f"| | | {len(new) - 50} more |")
        parts.append("\n".join(rows))
    if report.unanchored:
        lines = [f"- {f.severity} {f.file}: {_cell(f.message)}" for f in report.unanchored[:30]]
        parts.append(
            f"<details><summary>{report.unanchored_count} findings not on a changed line</summary>\n\n"
            + "\n".join(lines)
            + "\n\n</details>"
        )
    not_full = [item for item in report.coverage if item.status != "reviewed"]
    if not_full:
        lines = [f"- {item.status}: `{item.path}`: {item.reason}" for item in not_full[:200]]
        parts.append(
            f"<details><summary>{len(not_full)} files not fully reviewed</summary>\n\n"
            + "\n".join(lines)
            + "\n\n</details>"
        )
    return "\n\n".join(part for part in parts if part)


async def publish(
    forges: ForgeFactory | None,
    project: Project,
    pr: PullRequest | None,
    target: ReviewTarget,
    report: ReviewReport,
    *,
    earlier_findings: bool = False,
) -> list[str]:
    """Post `report` where the forge shows reviews; forge errors come back as warnings (the report is stored).
    `earlier_findings`: an earlier review of the PR found something, so a clean one still says so in the PR's review
    comment (which would otherwise go on showing the old findings)."""
    repo = forge_repo(project)
    if forges is None or pr is None or repo is None:
        return []
    app = forges.uses_app(project)
    if app and target.pipeline_id is not None:
        return []  # the pipeline's check run shows the findings as annotations
    forge: Forge | None = forges.app() if app else forges.for_project(project)
    if forge is None:
        return []
    warnings: list[str] = []
    try:
        new = report.new_findings
        if new and forge.capabilities.inline_review_comments and isinstance(forge, ReviewPoster):
            comments = [
                ReviewComment(
                    path=f.file,
                    line=f.end_line,
                    start_line=f.start_line if f.start_line != f.end_line else None,
                    body=comment_body(f),
                )
                for f in new[:MAX_INLINE_COMMENTS]
            ]
            try:
                await forge.create_review(
                    repo, pr.number, commit_sha=target.sha, body=render_markdown(report), comments=comments
                )
            except ForgeError as exc:
                warnings.append(f"the review could not be posted: {exc.detail}")
        markdown = render_markdown(report) or (render_clean(report, target.sha) if earlier_findings else "")
        if target.pipeline_id is None and markdown:
            try:
                await forge.upsert_comment(repo, pr.number, marker=COMMENT_MARKER, body=markdown)
            except ForgeError as exc:
                warnings.append(f"the review comment could not be written: {exc.detail}")
    finally:
        await forge.aclose()
    return warnings


def render_clean(report: ReviewReport, sha: str) -> str:
    """The review comment of a clean review that follows one with findings."""
    head = f"#### ✅ AI review passed ({report.reviewer})"
    return f"{head}\nNo findings at {sha[:12]}: what was reported earlier is gone."


def _cell(text: str) -> str:
    return " ".join(text.split()).replace("|", "\\|")[:500]
