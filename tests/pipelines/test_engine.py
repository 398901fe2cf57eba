"""The engine's rules on SQLite and PostgreSQL: most on the scripted fake executor (no git, no processes); a few end
to end with real repositories and the real sandbox (the acceptance pipeline, cancel, workspaces, git in a step)."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import pytest

from taskmaster.core.clock import as_utc
from taskmaster.core.errors import Conflict
from taskmaster.db.models import Pipeline
from taskmaster.pipelines import transitions
from taskmaster.pipelines.logs import read_logs
from taskmaster.pipelines.states import PipelineStatus
from tests.support import Scripted, eventually, processes_with, wait_for_process
from tests.support.pipelines import FakeHarness, Harness, load

ACCEPTANCE = """\
concurrency: 4
steps:
  checkout: {uses: checkout}
  left:     {run: "sleep 0.7; echo left", needs: [checkout]}
  right:    {run: "sleep 0.7; echo right", needs: [checkout]}
  join:     {run: "cat README.md", needs: [left, right]}
  flaky:
    run: 'echo try $TASKMASTER_ATTEMPT; test "$TASKMASTER_ATTEMPT" -ge 3 || exit 75'
    needs: [checkout]
    retry_on: [75]
  broken:   {run: "echo boom; exit 3", needs: [checkout]}
  deploy:   {run: "echo never", needs: [join, broken]}
  notify:   {run: "echo something failed", when: on_failure}
"""


async def test_acceptance_pipeline_ends_with_expected_statuses_retries_skips_and_overlap(harness_factory: Any) -> None:
    harness: Harness = await harness_factory(ACCEPTANCE)
    created = await harness.create()
    assert created.status == "pending" and created.commit_sha and created.branch_name == "main"
    engine = harness.engine()

    assert await engine.run(created.id) is PipelineStatus.FAILED

    pipeline, steps, attempts = await load(harness.db, created.id)
    assert {name: step.status for name, step in steps.items()} == {
        "checkout": "success", "left": "success", "right": "success", "join": "success", "flaky": "success",
        "broken": "failed", "deploy": "skipped", "notify": "success",
    }  # fmt: skip
    assert {name: len(rows) for name, rows in attempts.items()} == {
        "checkout": 1, "left": 1, "right": 1, "join": 1, "flaky": 3, "broken": 1, "deploy": 0, "notify": 1,
    }  # fmt: skip
    assert [(a.status, a.exit_code, a.failure_reason) for a in attempts["flaky"]] == [
        ("failed", 75, "code"), ("failed", 75, "code"), ("success", 0, None),
    ]  # fmt: skip
    assert steps["flaky"].retry_count == 2
    assert (steps["broken"].exit_code, steps["broken"].failure_reason) == (3, "code")
    assert steps["deploy"].error_message == "'broken' failed"
    left, right = attempts["left"][0], attempts["right"][0]
    assert left.started_at and left.finished_at and right.started_at and right.finished_at
    assert max(left.started_at, right.started_at) < min(left.finished_at, right.finished_at), "branches overlap"
    assert all(a.worker_id == engine.worker_id for rows in attempts.values() for a in rows)

    assert pipeline.status == "failed" and pipeline.failure_reason == "code"
    assert pipeline.error_message is not None and "step 'broken' failed: exit code 3" in pipeline.error_message
    assert "boom" in pipeline.error_message
    assert pipeline.started_at and pipeline.finished_at and pipeline.duration_ms is not None
    assert pipeline.duration_ms == int(
        (as_utc(pipeline.finished_at) - as_utc(pipeline.started_at)).total_seconds() * 1000
    )
    async with harness.db.transaction() as session:
        row = await session.get(Pipeline, created.id)
        assert row is not None
        with pytest.raises(Conflict):
            transitions.apply(row, transitions.SUCCEED)
    assert await engine.run(created.id) is PipelineStatus.FAILED  # finished: nothing runs again

    async with harness.db.session() as session:
        flaky = await read_logs(session, created.id, step="flaky")
    assert "".join(c.content for c in flaky) == "try 1\ntry 2\ntry 3\n"
    assert [c.attempt for c in flaky] == [1, 2, 3]
    assert not (harness.settings.workspace_root / str(created.id)).exists(), "workspaces removed"


async def test_invalid_definition_makes_an_error_pipeline_with_line_precise_message_and_runs_nothing(
    harness_factory: Any,
) -> None:
    harness: Harness = await harness_factory(
        "steps:\n  lint: {run: ruff check .}\n  test: {run: pytest, needs: [lnit]}\n"
    )
    created = await harness.create()
    assert created.status == "error" and created.failure_reason == "code"
    assert created.error_message is not None and ".taskmaster.yml:3:" in created.error_message
    assert "lnit" in created.error_message
    assert await harness.engine().run(created.id) is PipelineStatus.ERROR
    pipeline, steps, _ = await load(harness.db, created.id)
    assert steps == {} and pipeline.definition == {}


async def test_a_step_past_its_timeout_is_timed_out_and_fails_the_pipeline(fake_harness: FakeHarness) -> None:
    fake_harness.executor.script("slow", Scripted(output=b"start\n", seconds=30))
    created = await fake_harness.create(
        "steps:\n  slow: {run: 'echo start; sleep 30', timeout: 1, retries: 1}\n  after: {run: 'true', needs: [slow]}\n"
    )
    assert await fake_harness.engine().run(created.id) is PipelineStatus.FAILED
    pipeline, steps, attempts = await load(fake_harness.db, created.id)
    assert (steps["slow"].status, steps["slow"].failure_reason) == ("timed_out", "timeout")
    assert [(a.status, a.failure_reason) for a in attempts["slow"]] == [("timed_out", "timeout")] * 2
    assert steps["after"].status == "skipped"
    assert pipeline.failure_reason == "timeout" and "timed out after 1 s" in (pipeline.error_message or "")
    assert [call.step for call in fake_harness.executor.calls] == ["slow", "slow"]


async def test_the_pipeline_timeout_stops_running_steps_and_times_the_pipeline_out(fake_harness: FakeHarness) -> None:
    fake_harness.executor.script("slow", Scripted(seconds=30))
    created = await fake_harness.create(
        "timeout: 1\nsteps:\n  slow: {run: 'sleep 30'}\n  never: {run: 'true', needs: [slow]}\n"
    )
    started = asyncio.get_running_loop().time()
    assert await fake_harness.engine().run(created.id) is PipelineStatus.TIMED_OUT
    assert asyncio.get_running_loop().time() - started < 5
    pipeline, steps, attempts = await load(fake_harness.db, created.id)
    assert pipeline.failure_reason == "timeout" and "timeout of 1 s" in (pipeline.error_message or "")
    assert (steps["slow"].status, steps["slow"].error_message) == ("canceled", "stopped: the pipeline timed out")
    assert attempts["slow"][0].status == "canceled"
    assert steps["never"].status == "canceled"
    assert [call.outcome.canceled for call in fake_harness.executor.calls if call.outcome] == [True]


async def test_resume_after_a_dead_engine_marks_the_lost_attempt_infra_and_redoes_the_step(
    fake_harness: FakeHarness,
) -> None:
    fake = fake_harness.executor.script("work", Scripted(seconds=30), Scripted(output=b"work done\n"))
    created = await fake_harness.create("steps:\n  work: {run: 'make work'}\n")
    dying = asyncio.create_task(fake_harness.engine().run(created.id))

    await asyncio.wait_for(fake.started.wait(), 10)
    dying.cancel()  # the engine dies mid-step: its attempt stays `running` in the database
    with pytest.raises(asyncio.CancelledError):
        await dying
    _, steps, attempts = await load(fake_harness.db, created.id)
    assert steps["work"].status == "running" and [a.status for a in attempts["work"]] == ["running"]

    assert await fake_harness.engine().run(created.id) is PipelineStatus.SUCCESS
    pipeline, steps, attempts = await load(fake_harness.db, created.id)
    assert [(a.status, a.failure_reason, a.error_message) for a in attempts["work"]] == [
        ("failed", "infra", "agent lost"),
        ("success", None, None),
    ]
    assert steps["work"].status == "success" and steps["work"].retry_count == 1
    assert pipeline.status == "success"
    assert [call.attempt for call in fake.attempts("work")] == [1, 2]
    async with fake_harness.db.session() as session:
        assert "work done" in "".join(c.content for c in await read_logs(session, created.id, step="work"))


async def test_project_secrets_are_masked_in_logs_and_ai_review_is_skipped(fake_harness: FakeHarness) -> None:
    from taskmaster.db.models import Project
    from taskmaster.secrets import SecretBox

    token = "ghp_" + uuid.uuid4().hex
    fake_harness.executor.script("leak", Scripted(output=f"token={token}\n".encode()))
    async with fake_harness.db.transaction() as session:
        project = await session.get(Project, fake_harness.project.id)
        assert project is not None
        project.forge_token = SecretBox.from_settings(fake_harness.settings).encrypt(token)
    created = await fake_harness.create(
        f"steps:\n  leak: {{run: 'echo token={token}'}}\n  review: {{uses: ai_review, needs: [leak]}}\n"
    )
    assert await fake_harness.engine().run(created.id) is PipelineStatus.SUCCESS
    _, steps, _ = await load(fake_harness.db, created.id)
    assert (steps["review"].status, steps["review"].error_message) == ("skipped", "AI review is not configured")
    async with fake_harness.db.session() as session:
        text = "".join(c.content for c in await read_logs(session, created.id, step="leak"))
    assert text == "token=***\n"
    assert [call.step for call in fake_harness.executor.calls] == ["leak"]


async def test_cancel_from_another_task_stops_the_running_step_within_the_grace_period(harness_factory: Any) -> None:
    marker = f"marker-{uuid.uuid4().hex}"
    harness: Harness = await harness_factory(f"steps:\n  wait: {{run: 'sleep 30; echo {marker}'}}\n")
    created = await harness.create()
    engine = harness.engine(grace=1.0)
    running = asyncio.create_task(engine.run(created.id))

    await wait_for_process(marker)
    loop = asyncio.get_running_loop()
    asked = loop.time()
    other = harness.engine()  # as from another process: only the database row changes
    assert await other.cancel(created.id, reason="stop it") is PipelineStatus.CANCELED
    assert await asyncio.wait_for(running, 10) is PipelineStatus.CANCELED
    assert loop.time() - asked < 0.5 + 1.0 + 1.0  # poll + grace + margin
    assert processes_with(marker) == []
    pipeline, steps, attempts = await load(harness.db, created.id)
    assert (pipeline.status, pipeline.error_message) == ("canceled", "stop it")
    assert steps["wait"].status == "canceled" and attempts["wait"][0].status == "canceled"
    with pytest.raises(Conflict):
        await other.cancel(created.id)


async def test_on_change_is_called_and_fresh_workspace_steps_get_their_own_checkout(harness_factory: Any) -> None:
    harness: Harness = await harness_factory(
        "steps:\n  dirty: {run: 'echo x > scratch.txt'}\n"
        "  clean: {run: 'test ! -e scratch.txt && test -e README.md', workspace: fresh, needs: [dirty]}\n"
        "  shared: {run: 'test -e scratch.txt', needs: [dirty]}\n"
    )
    created = await harness.create()
    calls: list[uuid.UUID] = []

    async def changed(pipeline_id: uuid.UUID) -> None:
        calls.append(pipeline_id)

    assert await harness.engine(on_change=changed, keep_workspace=True).run(created.id) is PipelineStatus.SUCCESS
    assert calls and set(calls) == {created.id}
    kept = harness.settings.workspace_root / str(created.id)
    assert sorted(p.name for p in kept.iterdir()) == ["clean-1", "shared"]


async def test_git_works_inside_a_step_on_the_checked_out_commit(harness_factory: Any) -> None:
    harness: Harness = await harness_factory(
        "steps:\n"
        "  history: {run: 'git rev-parse HEAD; git log --oneline | wc -l; git status --porcelain | wc -l'}\n"
        "  fresh: {run: 'git cat-file -t HEAD', workspace: fresh}\n"
    )
    created = await harness.create()

    assert await harness.engine().run(created.id) is PipelineStatus.SUCCESS
    async with harness.db.session() as session:
        history = "".join(c.content for c in await read_logs(session, created.id, step="history"))
        fresh = "".join(c.content for c in await read_logs(session, created.id, step="fresh"))
    # The objects come from the (otherwise hidden) mirror, read-only: the whole history, a clean tree.
    assert history.split() == [created.commit_sha, "2", "0"]
    assert fresh == "commit\n"


async def test_one_engine_runs_at_most_max_steps_steps_at_once_over_all_its_pipelines(
    fake_harness: FakeHarness,
) -> None:
    definition = "concurrency: 3\nsteps:\n" + "".join(f"  s{n}: {{run: 'sleep 0.4'}}\n" for n in range(3))
    for n in range(3):
        fake_harness.executor.script(f"s{n}", Scripted(seconds=0.4))
    first, second = await fake_harness.create(definition), await fake_harness.create(definition)
    engine = fake_harness.engine(max_steps=2)

    statuses = await asyncio.gather(engine.run(first.id), engine.run(second.id))

    assert list(statuses) == [PipelineStatus.SUCCESS, PipelineStatus.SUCCESS]
    spans = []
    for pipeline_id in (first.id, second.id):
        _, _, attempts = await load(fake_harness.db, pipeline_id)
        spans += [(a.started_at, a.finished_at) for rows in attempts.values() for a in rows]
    assert len(spans) == 6
    # How many attempts ran at each attempt's start: never more than the engine's limit, and the limit was used.
    at_once = [sum(1 for start, end in spans if start <= moment < end) for moment, _ in spans]
    assert max(at_once) == 2
    assert fake_harness.executor.most_at_once == 2


async def test_a_crashing_attempt_stops_the_other_steps_and_a_later_run_redoes_them(fake_harness: FakeHarness) -> None:
    fake = fake_harness.executor
    fake.script("breaks", Scripted(seconds=0.3, crash=RuntimeError("the executor is down")), Scripted(exit_code=3))
    fake.script("slow", Scripted(seconds=30), Scripted())
    created = await fake_harness.create("steps:\n  breaks: {run: 'exit 3'}\n  slow: {run: 'sleep 30'}\n")

    with pytest.raises(RuntimeError, match="the executor is down"):
        await fake_harness.engine().run(created.id)
    pipeline, _, attempts = await load(fake_harness.db, created.id)

    slow = fake.attempts("slow")
    assert [(call.ended is not None, call.outcome and call.outcome.canceled) for call in slow] == [(True, True)]
    assert pipeline.status == "running"  # the other step was stopped with the engine
    assert [a.status for a in attempts["slow"]] == ["running"]  # left for the next run to record as lost

    assert await fake_harness.engine().run(created.id) is PipelineStatus.FAILED
    pipeline, steps, attempts = await load(fake_harness.db, created.id)
    assert [(a.status, a.error_message) for a in attempts["slow"]] == [("failed", "agent lost"), ("success", None)]
    assert [(a.status, a.exit_code) for a in attempts["breaks"]][-1] == ("failed", 3)
    assert (steps["breaks"].status, pipeline.failure_reason) == ("failed", "code")


async def test_a_checkout_that_fails_is_an_infra_failure_retried_by_the_steps_rules(fake_harness: FakeHarness) -> None:
    fake_harness.sites.broken_checkouts = 1
    created = await fake_harness.create("steps:\n  build: {run: make, retries: 1, retry_on: [infra]}\n")

    assert await fake_harness.engine().run(created.id) is PipelineStatus.SUCCESS
    _, steps, attempts = await load(fake_harness.db, created.id)
    assert [(a.status, a.failure_reason) for a in attempts["build"]] == [("failed", "infra"), ("success", None)]
    assert "the fake disk is full" in (attempts["build"][0].error_message or "")
    assert steps["build"].retry_count == 1
    assert [call.attempt for call in fake_harness.executor.calls] == [2]  # the broken attempt never ran
    assert await eventually(lambda: fake_harness.sites.checkouts == ["shared", "shared"])


async def test_a_built_in_step_from_the_registry_runs_in_place_of_the_default_and_its_finding_fails_the_step(
    fake_harness: FakeHarness,
) -> None:
    from taskmaster.core.outcomes import FailureReason, Outcome
    from taskmaster.pipelines.builtins import DEFAULT_BUILTINS, BuiltinRun

    seen: list[tuple[str, int, str]] = []

    class StrictReviewer:
        name = "ai_review"

        async def run(self, run: BuiltinRun) -> Outcome:
            seen.append((run.step, run.attempt, run.sha))
            await run.write(b"blocker: the change deletes the tests\n")
            return Outcome(exit_code=1, failure_reason=FailureReason.CODE, reason="1 blocker")

    created = await fake_harness.create("steps:\n  test: {run: pytest}\n  review: {uses: ai_review, needs: [test]}\n")
    engine = fake_harness.engine(builtins=DEFAULT_BUILTINS.with_steps(StrictReviewer()))

    assert await engine.run(created.id) is PipelineStatus.FAILED
    pipeline, steps, _ = await load(fake_harness.db, created.id)
    assert seen == [("review", 1, created.commit_sha)]
    assert (steps["review"].status, steps["review"].failure_reason) == ("failed", "code")
    assert steps["review"].error_message == "exit code 1 (1 blocker)"
    assert "the change deletes the tests" in (pipeline.error_message or "")
    assert sorted(DEFAULT_BUILTINS.with_steps(StrictReviewer())) == ["ai_review", "checkout"]


async def test_a_step_skipped_after_a_skipped_need_says_the_need_was_skipped(harness_factory: Any) -> None:
    harness: Harness = await harness_factory(
        "steps:\n  review: {uses: ai_review}\n  merge: {run: 'echo merge', needs: [review]}\n"
    )
    created = await harness.create()

    await harness.engine().run(created.id)

    _, steps, _ = await load(harness.db, created.id)
    assert steps["review"].status == steps["merge"].status == "skipped"
    assert steps["merge"].error_message == "'review' was skipped"
