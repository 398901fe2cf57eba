"""Log lines are JSON with the bound context, and values of secret-looking fields never reach them."""

from __future__ import annotations

import logging

import structlog

from taskmaster.core.logging import configure_logging, get_logger
from tests.support import LogCapture


def test_json_lines_carry_context_and_mask_secrets() -> None:
    capture = LogCapture()
    configure_logging("info", "auto", stream=capture)
    try:
        with structlog.contextvars.bound_contextvars(request_id="r-1"):
            get_logger("t").info(
                "hello", password="hunter2", api_key="sk-1", token_prefix="tm_abc", admin_token_file="/x/admin-token"
            )
            logging.getLogger("third.party").warning("plain %s", "stdlib")
    finally:
        configure_logging("warning", "auto", stream=LogCapture())
    first, second = capture.records()
    assert first["event"] == "hello" and first["request_id"] == "r-1" and first["level"] == "info"
    assert first["password"] == "***" and first["api_key"] == "***"
    assert first["token_prefix"] == "tm_abc" and first["admin_token_file"] == "/x/admin-token"
    assert "hunter2" not in capture.getvalue() and "sk-1" not in capture.getvalue()
    assert second["event"] == "plain stdlib" and second["logger"] == "third.party" and second["request_id"] == "r-1"
