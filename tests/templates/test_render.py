"""Prompts render from the active template version, sandboxed and strict."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from taskmaster.db.models import Template
from taskmaster.db.session import Database
from taskmaster.templates import render as render_module
from taskmaster.templates import service as template_service
from taskmaster.templates.render import TemplateRenderError, render, render_text


def test_render_text_fills_variables() -> None:
    assert render_text("Task {{ n }}: {{ title }}", {"n": 3, "title": "Login"}) == "Task 3: Login"


def test_an_unknown_variable_is_an_error_naming_the_template() -> None:
    with pytest.raises(TemplateRenderError, match=r"'codegen.task@2'.*'title' is undefined"):
        render_text("{{ title }}", {}, name="codegen.task@2")


def test_the_sandbox_refuses_internals() -> None:
    with pytest.raises(TemplateRenderError, match="unsafe"):
        render_text("{{ ''.__class__.__mro__ }}", {})


async def test_an_unstored_default_renders_as_version_1_and_an_edit_keeps_it_in_the_history(
    db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    shipped = "default for {{ who }}"
    monkeypatch.setattr(render_module, "default_text", lambda name: shipped)
    monkeypatch.setattr(template_service, "default_text", lambda name: shipped)
    monkeypatch.setattr(template_service, "has_default", lambda name: name == "test.prompt")
    async with db.transaction() as session:
        first = await render(session, "test.prompt", {"who": "ada"})
        stored = await session.scalar(select(func.count(Template.id)).where(Template.name == "test.prompt"))
        await template_service.add_version(session, "test.prompt", "edited for {{ who }}")
        second = await render(session, "test.prompt", {"who": "ada"})
        versions = (await session.scalars(select(Template.version).where(Template.name == "test.prompt"))).all()
    assert stored == 0  # rendering never writes
    assert (first.text, first.ref) == ("default for ada", "test.prompt@1")
    assert (second.text, second.ref) == ("edited for ada", "test.prompt@2")
    assert sorted(versions) == [1, 2]  # the shipped default, stored by the edit, then the edit
