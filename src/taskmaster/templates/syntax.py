"""The sandboxed Jinja2 environment every template renders in, and the checks a template's text must pass.

A template's text is data a person may edit through the API, so it is rendered in `SandboxedEnvironment` (no
attribute access to internals, no imports) with `StrictUndefined` (a misspelt variable is an error, not an empty
string). Shipped defaults live beside this module as `defaults/<name>.j2`.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from functools import cache, lru_cache
from importlib import resources

from jinja2 import StrictUndefined, Template, TemplateError, TemplateSyntaxError, meta
from jinja2.sandbox import SandboxedEnvironment

from taskmaster.core.errors import InvalidInput, NotFound

# What a template name may be: the doors take it from a URL path or a command line, and the column holds 200.
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,199}")


def known_name(name: str, missing: str) -> None:
    """`NotFound(missing)` for a name no template can have (so nothing odd reaches a query or the file system)."""
    if not _NAME.fullmatch(name):
        raise NotFound(missing)


class TemplateRenderError(InvalidInput):
    """The template does not render: bad syntax (its line named), an unknown variable, or a sandbox violation."""


@cache
def environment() -> SandboxedEnvironment:
    return SandboxedEnvironment(undefined=StrictUndefined, keep_trailing_newline=True, autoescape=False)


def _problem(exc: TemplateError) -> str:
    if isinstance(exc, TemplateSyntaxError):
        return f"line {exc.lineno}: {exc.message}"
    return str(exc)


@lru_cache(maxsize=64)
def compiled(source: str, name: str = "<template>") -> Template:
    """`source` compiled once (a PRD renders the same text per chunk); `TemplateRenderError` naming the line."""
    try:
        return environment().from_string(source)
    except TemplateError as exc:
        raise TemplateRenderError(f"template {name!r} does not render: {_problem(exc)}", field="content") from None


def check(source: str, *, name: str, allowed: Iterable[str] | None = None, required: Iterable[str] = ()) -> None:
    """Refuse `source` when it does not parse, uses a variable outside `allowed` (when given), or lacks one of
    `required`; the message names the template and the line or the variables."""
    compiled(source, name)
    used = meta.find_undeclared_variables(environment().parse(source))
    if allowed is not None and (unknown := used - set(allowed)):
        raise TemplateRenderError(
            f"template {name!r} uses unknown variables: {', '.join(sorted(unknown))}"
            f" (known: {', '.join(sorted(allowed))})",
            field="content",
        )
    if missing := set(required) - used:
        raise TemplateRenderError(
            f"template {name!r} lacks {', '.join('{{ ' + v + ' }}' for v in sorted(missing))}", field="content"
        )


def render_source(source: str, variables: Mapping[str, object], *, name: str = "<template>") -> str:
    """Render `source` with `variables` in the sandbox; `TemplateRenderError` naming the template otherwise."""
    template = compiled(source, name)
    try:
        return template.render(**variables)
    except TemplateError as exc:
        raise TemplateRenderError(f"template {name!r} does not render: {_problem(exc)}") from None


def default_text(name: str) -> str:
    """The shipped default of template `name` (`defaults/<name>.j2`); `NotFound` when there is none."""
    known_name(name, f"no default template named {name[:200]!r}")
    try:
        return resources.files("taskmaster.templates").joinpath("defaults", f"{name}.j2").read_text("utf-8")
    except FileNotFoundError:
        raise NotFound(f"no default template named {name!r}") from None


def default_names() -> list[str]:
    """The names of every shipped default template."""
    folder = resources.files("taskmaster.templates").joinpath("defaults")
    return sorted(entry.name.removesuffix(".j2") for entry in folder.iterdir() if entry.name.endswith(".j2"))


def has_default(name: str) -> bool:
    try:
        default_text(name)
    except NotFound:
        return False
    return True
