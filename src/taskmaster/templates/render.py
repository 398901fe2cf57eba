"""Render a prompt from the `templates` table with Jinja2's sandboxed environment, and say which version it was.

Defaults live beside this module as `defaults/<name>.j2` and are stored as version 1 by migration
`0014_seed_templates`, or on first use for a default shipped later. See `syntax.py` for the sandbox.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from taskmaster.templates.service import active_version
from taskmaster.templates.syntax import (
    TemplateRenderError,
    check,
    default_names,
    default_text,
    render_source,
)

__all__ = [
    "PromptTemplate",
    "RenderedPrompt",
    "TemplateRenderError",
    "default_names",
    "default_text",
    "load",
    "render",
    "render_text",
]


@dataclass(frozen=True, slots=True)
class RenderedPrompt:
    """A rendered prompt and the template version it came from (recorded with every AI call)."""

    text: str
    name: str
    version: int

    @property
    def ref(self) -> str:
        """`name@version`, as records and logs show it."""
        return f"{self.name}@{self.version}"


@dataclass(frozen=True, slots=True)
class PromptTemplate:
    """One stored version of a template, read once and rendered as often as needed (a PRD renders per chunk)."""

    source: str
    name: str
    version: int

    @property
    def ref(self) -> str:
        return f"{self.name}@{self.version}"

    def check(self, *, allowed: Iterable[str] | None = None, required: Iterable[str] = ()) -> None:
        """Refuse this version when it does not parse or its variables are not what the caller provides."""
        check(self.source, name=self.ref, allowed=allowed, required=required)

    def render(self, variables: dict[str, Any]) -> RenderedPrompt:
        return RenderedPrompt(render_source(self.source, variables, name=self.ref), self.name, self.version)


def render_text(source: str, variables: dict[str, Any], *, name: str = "<template>") -> str:
    """Render `source` with `variables` in the sandbox; `TemplateRenderError` naming the template otherwise."""
    return render_source(source, variables, name=name)


async def load(session: AsyncSession, name: str) -> PromptTemplate:
    """The active version of `name`; a shipped default no one stored yet is its version 1.

    Read only: rendering never writes. The seed migration stores every shipped default, and the first edit of one
    still unstored stores it as version 1 before the edit (`templates.service.add_version`), so the version a call
    records is always the text it used. (A read-then-write here failed on SQLite whenever another writer committed
    between the two: WAL refuses to upgrade such a snapshot.)"""
    row = await active_version(session, name)
    if row is None:
        return PromptTemplate(default_text(name), name, 1)
    return PromptTemplate(row.content, name, row.version)


async def render(session: AsyncSession, name: str, variables: dict[str, Any]) -> RenderedPrompt:
    """Render the active version of `name` (its shipped default as version 1 when none is stored)."""
    return (await load(session, name)).render(variables)
