"""Typed project settings: defaults, dotted changes validated on write, the review policy, stored JSON kept."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from taskmaster.core.errors import InvalidInput
from taskmaster.db.models import AuditEvent
from taskmaster.db.session import Database
from taskmaster.projects import service, settings
from taskmaster.projects.schemas import ProjectCreate
from taskmaster.secrets.box import SecretBox, new_key

BOX = SecretBox([new_key()])


def test_every_key_has_a_default_and_the_ai_loop_keys_of_the_design() -> None:
    defaults = settings.flat(settings.load({}))
    assert defaults == {
        "cancelled_satisfies_dependencies": False,
        "push_pipelines": False,
        "allow_sha1_signatures": False,
        "forge_api_url": None,
        "agent.type": "claude",
        "agent.command": None,
        "codegen.agent": "offline",
        "codegen.max_parallel": 2,
        "codegen.max_failures": 3,
        "codegen.loop": False,
        "codegen.timeout": 1800.0,
        "review.reviewer": "offline",
        "review.fail_on": "major",
        "review.min_confidence": 0.8,
        "recovery.agent": "off",
        "recovery.mode": "suggest",
        "recovery.max_rounds": 2,
        "recovery.budget_usd": 1.0,
        "limits.cpu": None,
        "limits.memory": None,
        "limits.processes": None,
        "limits.disk": None,
        "limits.tmp": None,
    }
    assert settings.keys() == list(defaults)


def test_dotted_changes_are_coerced_stored_nested_and_reset_with_none() -> None:
    stored = settings.apply({"push_pipelines": True}, {"review.fail_on": "blocker", "codegen.max_parallel": "4"})
    assert stored == {"push_pipelines": True, "review": {"fail_on": "blocker"}, "codegen": {"max_parallel": 4}}
    typed = settings.load(stored)
    assert (typed.review.fail_on, typed.codegen.max_parallel, typed.push_pipelines) == ("blocker", 4, True)
    assert settings.apply(stored, {"review.fail_on": None, "codegen.max_parallel": None}) == {"push_pipelines": True}


def test_unknown_keys_and_bad_values_are_refused_naming_the_key_and_nothing_changes() -> None:
    stored = {"review": {"fail_on": "minor"}}
    with pytest.raises(InvalidInput, match=r"unknown project setting 'review\.fail_onn'"):
        settings.apply(stored, {"review.fail_onn": "major"})
    with pytest.raises(InvalidInput, match="unknown project setting 'review'"):
        settings.apply(stored, {"review": "major"})
    with pytest.raises(InvalidInput, match=r"review\.fail_on: Input should be 'blocker', 'major', 'minor' or 'none'"):
        settings.apply(stored, {"review.fail_on": "critical"})
    with pytest.raises(InvalidInput, match=r"recovery\.max_rounds: Input should be greater than or equal to 0"):
        settings.apply(stored, {"recovery.max_rounds": -1})
    with pytest.raises(InvalidInput, match=r"review\.min_confidence: Input should be less than or equal to 1"):
        settings.apply(stored, {"review.min_confidence": "1.5"})
    with pytest.raises(InvalidInput, match=r"forge_api_url: String should match pattern"):
        settings.apply(stored, {"forge_api_url": "ftp://example.com"})
    assert stored == {"review": {"fail_on": "minor"}}


def test_keys_stored_by_another_version_are_read_past_and_kept() -> None:
    stored = {"future_key": 1, "review": {"fail_on": "none", "style": "terse"}}
    assert settings.load(stored).review.fail_on == "none"
    assert settings.apply(stored, {"recovery.mode": "push"}) == {
        "future_key": 1, "review": {"fail_on": "none", "style": "terse"}, "recovery": {"mode": "push"},
    }  # fmt: skip


def test_a_stored_value_gone_bad_is_named_when_read() -> None:
    with pytest.raises(InvalidInput, match=r"codegen\.max_parallel"):
        settings.load({"codegen": {"max_parallel": 0}})


def test_nested_groups_become_dotted_keys() -> None:
    assert settings.nested({"review": {"fail_on": "minor"}, "push_pipelines": True}) == {
        "review.fail_on": "minor", "push_pipelines": True,
    }  # fmt: skip


@pytest.mark.parametrize(
    ("fail_on", "min_confidence", "finding", "fails"),
    [
        ("major", 0.8, ("blocker", 0.1), True),
        ("major", 0.8, ("major", 0.8), True),
        ("major", 0.8, ("major", 0.79), False),
        ("major", 0.8, ("minor", 1.0), False),
        ("blocker", 0.8, ("major", 1.0), False),
        ("minor", 0.5, ("minor", 0.5), True),
        ("minor", 0.5, ("nit", 1.0), False),
        ("none", 0.0, ("blocker", 1.0), False),
    ],
)
def test_review_policy_fails_on_any_blocker_or_a_confident_finding_at_the_threshold(
    fail_on: settings.FailOn, min_confidence: float, finding: tuple[settings.Severity, float], fails: bool
) -> None:
    policy = settings.ReviewSettings(fail_on=fail_on, min_confidence=min_confidence)
    assert policy.fails(*finding) is fails


async def test_update_settings_stores_validated_changes_with_an_audit_row(db: Database) -> None:
    spec = ProjectCreate(name="tuned", repository="/r", settings={"review": {"fail_on": "blocker"}})
    async with db.transaction() as session:
        created = await service.create_project(session, spec=spec, box=BOX)
    async with db.transaction() as session:
        await service.update_settings(
            session, "tuned", {"agent.type": "aider", "recovery.max_rounds": "3"}, actor="ann"
        )
    async with db.transaction() as session:
        with pytest.raises(InvalidInput, match=r"agent\.kind"):
            await service.update_settings(session, "tuned", {"agent.type": "goose", "agent.kind": "x"})
    async with db.session() as session:
        out = service.to_out(await service.get_project(session, created.id))
        events = (await session.scalars(select(AuditEvent).where(AuditEvent.action == "project.settings.update"))).all()
    assert (out.settings.agent.type, out.settings.recovery.max_rounds) == ("aider", 3)
    assert out.settings.review.fail_on == "blocker"
    assert [(e.actor, e.data) for e in events] == [("ann", {"keys": ["agent.type", "recovery.max_rounds"]})]


async def test_creating_a_project_with_an_unknown_setting_is_refused(db: Database) -> None:
    spec = ProjectCreate(name="typo", repository="/r", settings={"push_pipeline": True})
    async with db.transaction() as session:
        with pytest.raises(InvalidInput, match="unknown project setting 'push_pipeline'"):
            await service.create_project(session, spec=spec, box=BOX)
