"""Fixtures of the worker tests: JSON log capture (the worker processes themselves are in `tests.support.workers`)."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest
import structlog

from taskmaster.core.logging import configure_logging
from tests.support import LogCapture


@pytest.fixture
def json_logs() -> Iterator[LogCapture]:
    """Route every log line (structlog and stdlib) as JSON into a buffer for the test."""
    root = logging.getLogger()
    saved_handlers, saved_level = root.handlers[:], root.level
    stream = LogCapture()
    configure_logging("info", "json", stream=stream)
    try:
        yield stream
    finally:
        root.handlers[:] = saved_handlers
        root.setLevel(saved_level)
        structlog.reset_defaults()
