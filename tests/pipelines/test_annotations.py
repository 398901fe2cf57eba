"""Findings printed by compilers, linters and test runners become check run annotations on the lines they name."""

from __future__ import annotations

from taskmaster.forges.base import AnnotationLevel
from taskmaster.pipelines.annotations import log_annotations, with_log_annotations
from taskmaster.pipelines.report import PipelineReport, StepReport
from taskmaster.pipelines.states import PipelineStatus, StepStatus

LOG = """\
$ ruff check
src/app/models.py:12:5: F401 `os` imported but unused
./src/app/views.py:40:1: E302 expected 2 blank lines
$ mypy src
src/app/models.py:30: error: Incompatible return value type
src/app/models.py:31: note: Revise the annotation
src/app/views.py:7: warning: unused "type: ignore" comment
\x1b[31mtests/test_views.py:88: AssertionError\x1b[0m
tests/test_views.py:88: AssertionError
/home/runner/work/app/src/outside.py:3: error: absolute paths are not in the repository
../other/thing.py:3: error: neither is the parent directory
connecting to db.internal:5432: refused
127.0.0.1:8080: connection refused
Found 4 errors in 2 files (checked 10 source files)
"""


def test_findings_of_common_tools_are_read_with_their_level() -> None:
    found = [(a.path, a.start_line, a.level, a.message) for a in log_annotations(LOG)]
    assert found == [
        ("src/app/models.py", 12, AnnotationLevel.FAILURE, "F401 `os` imported but unused"),
        ("src/app/views.py", 40, AnnotationLevel.FAILURE, "E302 expected 2 blank lines"),
        ("src/app/models.py", 30, AnnotationLevel.FAILURE, "Incompatible return value type"),
        ("src/app/models.py", 31, AnnotationLevel.NOTICE, "Revise the annotation"),
        ("src/app/views.py", 7, AnnotationLevel.WARNING, 'unused "type: ignore" comment'),
        ("tests/test_views.py", 88, AnnotationLevel.FAILURE, "AssertionError"),  # colours stripped, once
    ]


def test_only_failing_steps_get_annotations_from_their_logs() -> None:
    report = PipelineReport(
        pipeline_id="p1",
        repo="octo/app",
        commit_sha="a" * 40,
        pull_request_number=None,
        status=PipelineStatus.FAILED,
        steps=(
            StepReport(name="lint", status=StepStatus.SUCCESS, log_tail="src/a.py:1: fine"),
            StepReport(name="test", status=StepStatus.FAILED, log_tail="src/b.py:2: error: broken\n"),
        ),
    )
    lint, test = with_log_annotations(report).steps
    assert lint.annotations == ()
    assert [(a.path, a.start_line, a.message) for a in test.annotations] == [("src/b.py", 2, "broken")]
