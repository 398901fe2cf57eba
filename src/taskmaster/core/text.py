"""Small text helpers shared by layers: slugs for branch and file names."""

from __future__ import annotations

import re
import unicodedata

_NOT_WORD = re.compile(r"[^a-z0-9]+")


def slug(text: str, *, max_length: int = 40) -> str:
    """Lower-case ASCII words joined by `-`, cut at a word boundary within `max_length` ("task" when empty)."""
    ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    words = [word for word in _NOT_WORD.split(ascii_text.lower()) if word]
    result = ""
    for word in words:
        candidate = f"{result}-{word}" if result else word
        if len(candidate) > max_length:
            break
        result = candidate
    return result or (words[0][:max_length] if words else "task")
