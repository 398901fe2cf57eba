"""Remove known secret values from text that may quote them (error messages echoing a request, a URL, a header)."""

from __future__ import annotations

from collections.abc import Iterable

REDACTED = "[redacted]"


def redact(text: str, secrets: Iterable[str | None], *, mask: str = REDACTED) -> str:
    """`text` with every secret replaced by `mask`. Values shorter than 4 characters are left alone: a one-letter
    "key" would blank out half the message."""
    for secret in secrets:
        if secret and len(secret) >= 4:
            text = text.replace(secret, mask)
    return text
