"""Shared pieces of webhook verification: case-insensitive header lookup, constant-time matching, the error.

Secrets never appear in an error detail, a log line or a repr: details say which check failed, not with what.
"""

from __future__ import annotations

import hmac
from collections.abc import Iterable, Mapping
from typing import Literal

from taskmaster.core.errors import Unauthenticated

Digest = Literal["sha1", "sha256"]


class WebhookSignatureError(Unauthenticated):
    """The delivery did not prove it came from the forge: header missing or malformed, stale, or no secret matched."""

    code = "webhook_signature_invalid"
    title = "Webhook signature not valid"


def header_value(headers: Mapping[str, str], name: str) -> str | None:
    """The value of header `name` in any letter case, or None.

    Starlette's `Headers` (and most HTTP libraries) already ignore case, so the direct lookups usually answer;
    the scan is for plain dicts with whatever case the caller kept.
    """
    value = headers.get(name)
    if value is not None:
        return value
    lower = name.lower()
    value = headers.get(lower)
    if value is not None:
        return value
    for key, candidate in headers.items():
        if key.lower() == lower:
            return candidate
    return None


def hmac_hexdigest(key: bytes, body: bytes, digest: Digest) -> str:
    """Lowercase hex HMAC of `body` under `key`."""
    return hmac.new(key, body, digest).hexdigest()


def matches_any(received: bytes, candidates: Iterable[bytes]) -> bool:
    """Whether `received` equals one of `candidates`, each compared in constant time.

    Every candidate is compared even after a match, so the time taken does not tell which secret matched.
    Bytes, not str: `hmac.compare_digest` refuses non-ASCII str, and a token may hold any character.
    """
    found = False
    for candidate in candidates:
        found = hmac.compare_digest(received, candidate) or found
    return found


def usable_secrets(secrets: Iterable[str]) -> list[str]:
    """The configured secrets that are set: an empty string means "no secret", never "the empty secret"."""
    return [secret for secret in secrets if secret]
