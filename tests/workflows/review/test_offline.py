"""The offline reviewer on a real repository: planted debug prints, TODOs and a fake secret are found on the right
lines, the pipeline's own failures are mapped to changed lines, and the report is stored with its coverage."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import select

from taskmaster.config import Settings
from taskmaster.db.models import ReviewFinding, ReviewReport
from taskmaster.db.session import Database
from taskmaster.workflows.review.offline import OfflineReviewer, failure_findings
from taskmaster.workflows.review.schemas import DiffLine, FileDiff, Hunk, ReviewInput, StepResult
from taskmaster.workflows.review.service import review
from tests.workflows.review.conftest import Log, make_pr

BASE_APP = "def total(items):\n    return sum(items)\n"
HEAD_APP = (
    "def total(items):\n"                      # 1
    "    print('debug', items)\n"              # 2: debug print
    "    # TODO: handle None\n"                # 3: TODO
    "    return sum(items)\n"                  # 4
    "\n"                                       # 5
    'AWS_KEY = "AKIAIOSFODNN7EXAMPLE"\n'       # 6: a secret
    'db_password = "hunter2-but-longer"\n'     # 7: looks like a secret
)  # fmt: skip


async def test_the_offline_reviewer_finds_planted_problems_on_the_right_lines_and_fails_the_policy(
    db: Database, settings: Settings, tmp_path: Path
) -> None:
    setup = await make_pr(
        db, settings, tmp_path, {"app.py": BASE_APP, "web/app.js": "let a = 1;\n"},
        {"app.py": HEAD_APP, "web/app.js": "let a = 1;\nconsole.log(a);\n", "uv.lock": "pinned\n",
         "clean.py": "VALUE = 3\n"},
    )  # fmt: skip
    log = Log()

    result = await review(setup.services, setup.target(), log)

    assert result.status == "failed" and result.report is not None
    found = {(f.file, f.start_line, f.category, f.severity) for f in result.report.findings}
    assert found == {
        ("app.py", 2, "debug", "minor"),
        ("app.py", 3, "todo", "nit"),
        ("app.py", 6, "security", "blocker"),
        ("app.py", 7, "security", "major"),
        ("web/app.js", 2, "debug", "minor"),
    }
    assert result.report.unanchored == []
    assert {c.path: c.status for c in result.report.coverage} == {
        "app.py": "reviewed", "web/app.js": "reviewed", "uv.lock": "skipped", "clean.py": "reviewed",
    }  # fmt: skip
    # default policy: the blocker fails it; the 0.7 major does not
    assert result.report.failing == ["blocker (0.95) app.py:6: an AWS access key id is committed"]
    assert "policy (fails on any blocker, or on a finding down to major with confidence >= 0.8): FAILED" in log.text
    assert "  skipped  uv.lock: matches review.skip pattern '*.lock'" in log.text
    async with db.session() as session:
        (stored,) = (await session.scalars(select(ReviewReport))).all()
        rows = (await session.scalars(select(ReviewFinding).order_by(ReviewFinding.start_line))).all()
    assert (stored.commit_sha, stored.passed, stored.reviewer) == (setup.head, False, "offline")
    assert stored.report["coverage"][0]["path"] == "app.py"
    assert len(rows) == 5 and all(row.posted and row.pull_request_id == setup.pr.id for row in rows)


async def test_a_clean_change_passes_and_an_empty_one_is_skipped(
    db: Database, settings: Settings, tmp_path: Path
) -> None:
    setup = await make_pr(db, settings, tmp_path, {"a.py": "x = 1\n"}, {"a.py": "x = 2\n"})
    result = await review(setup.services, setup.target(), Log())
    assert result.status == "passed" and result.report is not None and result.report.findings == []

    log = Log()
    same = await review(setup.services, setup.target(sha=setup.base), log)
    assert same.status == "skipped" and same.message.startswith("nothing to review: no file changed")
    assert log.text.startswith("AI review skipped: nothing to review")


async def test_a_reviewer_without_its_key_or_agent_skips_the_review_saying_why(
    db: Database, settings: Settings, tmp_path: Path
) -> None:
    setup = await make_pr(db, settings, tmp_path, {}, {"a.py": "x = 1\n"},
                          project_settings={"review": {"reviewer": "anthropic"}})  # fmt: skip
    result = await review(setup.services, setup.target(), Log())
    assert (result.status, result.message) == (
        "skipped", "review.reviewer is anthropic: the anthropic provider needs ANTHROPIC_API_KEY",
    )  # fmt: skip
    agent = await review(setup.services, setup.target(reviewer="agentapi"), Log())
    assert agent.status == "skipped" and "no coding agent" in agent.message


def test_the_pipelines_own_failures_are_findings_on_the_changed_lines_they_name() -> None:
    diff = FileDiff(path="src/calc.py", hunks=(Hunk(old_start=1, new_start=1, lines=(
        DiffLine(kind=" ", new_line=1, text="import os"),
        DiffLine(kind="+", new_line=2, text="value = 1 / 0"),
    )),))  # fmt: skip
    steps = (
        StepResult(name="lint", status="failed", failure_reason="code",
                   log_tail="src/calc.py:2:9: error: division by zero\nsrc/calc.py:1: unused import os\n"),
        StepResult(name="test", status="success", log_tail="src/calc.py:2: fine"),
    )  # fmt: skip
    review_input = ReviewInput(base_sha="a" * 40, head_sha="b" * 40, steps=steps, files=(diff,))
    (only,) = failure_findings(review_input, {"src/calc.py"})
    assert (only.file, only.start_line, only.severity, only.category, only.quote) == (
        "src/calc.py", 2, "major", "ci", "value = 1 / 0",
    )  # fmt: skip
    assert only.message == "step 'lint' fails here: division by zero"
    assert OfflineReviewer.name == "offline"
