"""Annotations read from failing steps' logs: the `path:line[:column]: message` lines that compilers, linters, type
checkers and test runners print, so that a check run shows each finding on the line it names."""

from __future__ import annotations

import dataclasses
import re

from taskmaster.forges.base import Annotation, AnnotationLevel
from taskmaster.pipelines.logs import TAIL_CHARS
from taskmaster.pipelines.report import PipelineReport, StepReport

# A repository-relative path whose last part has a letter extension (which keeps `host:8080: refused` and
# `127.0.0.1:5432: …` out), a line, an optional column, then the message.
_FINDING = re.compile(
    r"^(?:\./)?(?P<path>[\w\-][\w.\-/]*\.[A-Za-z]\w*):(?P<line>\d{1,7})(?::(?P<column>\d{1,5}))?:\s*(?P<message>\S.*)$"
)
_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
_LEVEL_WORD = re.compile(r"^(?P<word>error|fatal error|warning|note|info)\s*:\s*", re.IGNORECASE)
_LEVELS = {
    "error": AnnotationLevel.FAILURE,
    "fatal error": AnnotationLevel.FAILURE,
    "warning": AnnotationLevel.WARNING,
    "note": AnnotationLevel.NOTICE,
    "info": AnnotationLevel.NOTICE,
}
_MESSAGE_LIMIT = 1000


def log_annotations(log: str) -> tuple[Annotation, ...]:
    """The findings in `log`, in order, each once. Absolute paths and paths leaving the repository are skipped:
    a check run can only annotate files of its repository."""
    found: dict[tuple[str, int, str], Annotation] = {}
    for raw in log.splitlines():
        match = _FINDING.match(_ANSI.sub("", raw).strip())
        if match is None or ".." in match["path"].split("/"):
            continue
        line = int(match["line"])
        if line < 1:
            continue
        message = match["message"].strip()
        level = AnnotationLevel.FAILURE
        if word := _LEVEL_WORD.match(message):
            level = _LEVELS[word["word"].lower()]
            message = message[word.end() :] or message
        key = (match["path"], line, message)
        if key not in found:
            found[key] = Annotation(
                path=match["path"], start_line=line, end_line=line, message=message[:_MESSAGE_LIMIT], level=level
            )
    return tuple(found.values())


def with_log_annotations(report: PipelineReport) -> PipelineReport:
    """`report` with each failing step's annotations completed from its log tail."""
    steps = tuple(_annotated(step) for step in report.steps)
    return dataclasses.replace(report, steps=steps)


def _annotated(step: StepReport) -> StepReport:
    if not step.status.is_failure or step.annotations or not step.log_tail:
        return step
    log = step.log_tail
    if len(log) >= TAIL_CHARS:
        log = log.partition("\n")[2]  # a cut tail starts inside a line, whose path may have lost its start
    return dataclasses.replace(step, annotations=log_annotations(log))
