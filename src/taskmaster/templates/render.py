"""Render a prompt from the `templates` table with Jinja2's sandboxed environment, and say which version it was.

A template's text is data a person may edit through the API, so it is rendered in `SandboxedEnvironment` (no
attribute access to internals, no imports) with `StrictUndefined` (a misspelt variable is an error, not an empty
string). Defaults live beside this module as `defaults/<name>.j2` and are stored as version 1 on first use.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any

from jinja2 import StrictUndefined, TemplateError
from jinja2.sandbox import SandboxedEnvironment
from sqlalchemy.ext.asyncio import AsyncSession

from taskmaster.core.errors import InvalidInput, NotFound
from taskmaster.templates.service import active_template


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


class TemplateRenderError(InvalidInput):
    """The stored template does not render: bad syntax, an unknown variable, or a sandbox violation."""


@cache
def _environment() -> SandboxedEnvironment:
    return SandboxedEnvironment(undefined=StrictUndefined, keep_trailing_newline=True, autoescape=False)


def default_text(name: str) -> str:
    """The shipped default of template `name` (`defaults/<name>.j2`); `NotFound` when there is none."""
    try:
        return resources.files("taskmaster.templates").joinpath("defaults", f"{name}.j2").read_text("utf-8")
    except FileNotFoundError:
        raise NotFound(f"no default template named {name!r}") from None


def default_names() -> list[str]:
    """The names of every shipped default template."""
    folder = resources.files("taskmaster.templates").joinpath("defaults")
    return sorted(entry.name.removesuffix(".j2") for entry in folder.iterdir() if entry.name.endswith(".j2"))


def render_text(source: str, variables: dict[str, Any], *, name: str = "<template>") -> str:
    """Render `source` with `variables` in the sandbox; `TemplateRenderError` naming the template otherwise."""
    try:
        return _environment().from_string(source).render(**variables)
    except TemplateError as exc:
        raise TemplateRenderError(f"template {name!r} does not render: {exc}") from None


async def render(session: AsyncSession, name: str, variables: dict[str, Any]) -> RenderedPrompt:
    """Render the active version of `name` (its shipped default stored as version 1 when it has none yet)."""
    row = await active_template(session, name, default=default_text(name))
    return RenderedPrompt(render_text(row.content, variables, name=f"{name}@{row.version}"), name, row.version)
