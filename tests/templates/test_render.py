"""Prompts render from the active template version, sandboxed and strict."""

from __future__ import annotations

import pytest

from taskmaster.db.session import Database
from taskmaster.templates import render as render_module
from taskmaster.templates.render import TemplateRenderError, render, render_text
from taskmaster.templates.service import add_version


def test_render_text_fills_variables() -> None:
    assert render_text("Task {{ n }}: {{ title }}", {"n": 3, "title": "Login"}) == "Task 3: Login"


def test_an_unknown_variable_is_an_error_naming_the_template() -> None:
    with pytest.raises(TemplateRenderError, match=r"'codegen.task@2'.*'title' is undefined"):
        render_text("{{ title }}", {}, name="codegen.task@2")


def test_the_sandbox_refuses_internals() -> None:
    with pytest.raises(TemplateRenderError, match="unsafe"):
        render_text("{{ ''.__class__.__mro__ }}", {})


async def test_render_stores_the_default_then_uses_the_newest_version(
    db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(render_module, "default_text", lambda name: "default for {{ who }}")
    async with db.transaction() as session:
        first = await render(session, "test.prompt", {"who": "ada"})
        await add_version(session, "test.prompt", "edited for {{ who }}")
        second = await render(session, "test.prompt", {"who": "ada"})
    assert (first.text, first.ref) == ("default for ada", "test.prompt@1")
    assert (second.text, second.ref) == ("edited for ada", "test.prompt@2")
