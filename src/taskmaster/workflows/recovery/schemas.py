"""The structured answer a model gives in a debug round."""

from __future__ import annotations

from pydantic import BaseModel, Field


class DebugVerdict(BaseModel):
    """Your answer: a unified diff that fixes the failing step, with an explanation, or fixed=false when you have
    no fix."""

    fixed: bool = Field(description="True when `patch` holds a fix; false when you found none.")
    patch: str = Field(
        "", max_length=512 * 1024, description="A unified diff (git format, paths a/ and b/) against the commit."
    )
    explanation: str = Field("", max_length=20_000, description="What was wrong and what the patch changes.")
