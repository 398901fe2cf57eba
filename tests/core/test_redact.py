"""Secrets are removed from text that quotes them; values too short to be secrets are left alone."""

from __future__ import annotations

from taskmaster.core.redact import REDACTED, redact


def test_every_secret_is_replaced_and_short_values_are_kept() -> None:
    text = "GET /x?token=ghp_abcdef failed; key sk-123456 echoed; id a"
    assert redact(text, ["ghp_abcdef", "sk-123456", None, "a"]) == (
        f"GET /x?token={REDACTED} failed; key {REDACTED} echoed; id a"
    )
    assert redact("Basic dXNlcjpwdw==", ["dXNlcjpwdw=="], mask="***") == "Basic ***"
