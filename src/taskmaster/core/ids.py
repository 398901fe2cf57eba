"""Identifiers: time-ordered UUIDs (version 7 layout), so new rows land at the end of B-tree indexes."""

from __future__ import annotations

import os
import time
import uuid


def new_id() -> uuid.UUID:
    """A UUIDv7: 48 bits of Unix milliseconds, then random bits, with version and variant set."""
    millis = time.time_ns() // 1_000_000
    value = (millis & 0xFFFF_FFFF_FFFF) << 80 | int.from_bytes(os.urandom(10), "big")
    value = (value & ~(0xF << 76)) | (0x7 << 76)
    value = (value & ~(0x3 << 62)) | (0x2 << 62)
    return uuid.UUID(int=value)


def parse_id(text: str) -> uuid.UUID:
    """Parse a UUID given by a person; raises `InvalidInput` naming the bad value."""
    from taskmaster.core.errors import InvalidInput

    try:
        return uuid.UUID(text)
    except ValueError:
        raise InvalidInput(f"{text!r} is not a valid id (expected a UUID)") from None
