"""A task becomes a pull request end to end on loopback (offline agent, real git, real githubkit against the fake
GitHub, a bare repository as the pushed remote), on SQLite and PostgreSQL; merging marks it done and reports the
tasks it made ready; a run started again after its effects were made but not recorded reuses them."""

from __future__ import annotations

import copy
import json
import uuid
from pathlib import Path

from sqlalchemy import delete, select, update

from taskmaster.costs.service import total
from taskmaster.db.models import AiCall, PullRequest, Task, WebhookDelivery, WorkflowRun, WorkflowStep
from taskmaster.forges.github import webhooks as github_webhooks
from taskmaster.webhooks import service as webhooks
from taskmaster.workflows import service as runs
from taskmaster.workflows.codegen import merges
from taskmaster.workflows.codegen import service as codegen
from taskmaster.workflows.codegen.schemas import CodegenRequest
from tests.forges.fixtures import payload
from tests.support.git import git
from tests.workflows.codegen.conftest import ScriptedAgent, World


async def test_the_offline_agent_records_a_task_and_its_pull_request_says_no_feature_was_implemented(
    world: World,
) -> None:
    number = await world.add_task(
        "Add the login page", description="People sign in with a password.",
        details="Acceptance criteria:\n- a user can log in\n- a wrong password is refused",
        test_strategy="An end-to-end test of the form.",
    )  # fmt: skip
    [run_id] = await world.start(CodegenRequest(tasks=[number]))
    outcome = await world.run_next()
    assert outcome.status == "succeeded", outcome.error

    branch = "taskmaster/1-add-the-login-page"
    branches = world.remote_branches()
    assert set(branches) == {"main", branch}
    message = git(world.remote, "log", "-1", "--format=%an <%ae>%n%B", branch)
    assert message.startswith("Taskmaster <taskmaster@localhost>\nAdd the login page (task #1)")
    assert f"Taskmaster-Task: {world.project.name}#1" in message
    assert git(world.remote, "diff", "--name-only", "main", branch) == "docs/tasks/1-add-the-login-page.md"

    [sent] = [r for r in world.fake.requests if r.method == "POST" and r.path.endswith("/pulls")]
    assert sent.path == "/repos/acme/api/pulls"
    assert (sent.json["head"], sent.json["base"]) == (branch, "main")
    assert sent.json["title"] == "Add the login page (task #1)"
    body = sent.json["body"]
    assert body.startswith("> **No feature was implemented.**")
    assert "People sign in with a password." in body
    assert "- [ ] a user can log in\n- [ ] a wrong password is refused" in body
    assert "## Test strategy\n\nAn end-to-end test of the form." in body
    assert "## What the agent did (offline)" in body and "docs/tasks/1-add-the-login-page.md" in body

    task = await world.task(number)
    assert (task.status, task.assignee) == ("review", None)
    [row] = await world.pull_rows()
    assert (row.number, row.task_id, row.head_ref, row.base_ref) == (1, task.id, branch, "main")
    assert row.head_sha == branches[branch]

    async with world.db.session() as session:
        detail = await codegen.get_run(session, run_id)
        [call] = (await session.scalars(select(AiCall))).all()
    assert (detail.status, detail.stage, detail.agent, detail.template) == ("succeeded", "done", "offline",
                                                                             "codegen.task@1")  # fmt: skip
    assert (detail.branch, detail.pull_request_number) == (branch, 1)
    assert [s.stage for s in detail.stages] == [
        "checkout", "prompt", "agent", "check", "commit", "push", "pull_request", "link",
    ]  # fmt: skip
    assert all(s.duration_ms is not None and s.duration_ms >= 0 for s in detail.stages)
    assert (call.workflow_run_id, call.template_name, call.template_version) == (run_id, "codegen.task", 1)


async def test_a_scripted_agent_gets_the_rendered_prompt_and_its_tokens_and_cost_are_recorded(world: World) -> None:
    first = await world.add_task("Write the store")
    second = await world.add_task("Use the store", depends_on=[first], details="Call it from src/app.py.")
    async with world.db.transaction() as session:
        task = await session.get_one(type(await world.task(first)), world.tasks[first])
        task.status = "done"
        session.add(
            PullRequest(
                project_id=world.project.id,
                number=40,
                head_ref="x",
                head_sha="a" * 40,
                base_ref="main",
                url="https://example.test/pull/40",
                merged=True,
                task_id=task.id,
            )
        )
    agent = ScriptedAgent(lambda checkout: (checkout / "src/store.py").write_text("STORE = {}\n"))
    world.use_agent(agent)
    [run_id] = await world.start(CodegenRequest(tasks=[second], agent="agentapi"))
    assert (await world.run_next()).status == "succeeded"

    [job] = agent.jobs
    assert "# Task #2: Use the store" in job.prompt and "Call it from src/app.py." in job.prompt
    assert "#1 Write the store (done): PR #40 https://example.test/pull/40 (merged)" in job.prompt
    assert "## The repository's AGENTS.md\n\nRun the tests with `make test`." in job.prompt
    assert job.branch == "taskmaster/2-use-the-store" and job.checkout.name == "repo"
    async with world.db.session() as session:
        detail = await codegen.get_run(session, run_id)
        spent = await total(session, workflow_run_id=run_id)
    assert (detail.agent, detail.input_tokens, detail.output_tokens, detail.cost_usd) == (
        "agentapi:scripted", 1200, 300, 0.0123,
    )  # fmt: skip
    assert (spent.input_tokens, spent.output_tokens, round(spent.cost_usd, 4)) == (1200, 300, 0.0123)
    assert git(world.remote, "show", "taskmaster/2-use-the-store:src/store.py") == "STORE = {}"


async def test_a_planned_tasks_criteria_are_listed_once_as_acceptance_criteria(world: World) -> None:
    """The offline planner keeps a PRD's criteria both as a list and as the test strategy: the prompt and the PR
    body list them once, as acceptance criteria; a test strategy of its own is kept."""
    criteria = ["the PDF shows the invoice number", "the PDF opens in any reader"]
    planned = await world.add_task("Export an invoice as a PDF", test_strategy="\n".join(f"- {c}" for c in criteria))
    async with world.db.transaction() as session:
        await session.execute(update(Task).where(Task.id == world.tasks[planned]).values(
            extra={"acceptance_criteria": criteria}))  # fmt: skip
    own = await world.add_task("Email an invoice", test_strategy="Send one to a fake SMTP server.")
    agent = ScriptedAgent(lambda checkout: (checkout / "invoice.py").write_text(f"N = {len(agent.jobs)}\n"))
    world.use_agent(agent)
    await world.start(CodegenRequest(tasks=[planned, own], agent="agentapi"))
    assert (await world.run_next()).status == "succeeded"
    assert (await world.run_next()).status == "succeeded"

    [pdf_job, email_job] = sorted(agent.jobs, key=lambda job: job.task_number)
    assert "## Acceptance criteria\n\n- the PDF shows the invoice number\n- the PDF opens in any reader" in (
        pdf_job.prompt
    )
    assert "## Test strategy" not in pdf_job.prompt
    assert "## Test strategy\n\nSend one to a fake SMTP server." in email_job.prompt
    bodies = {pull["title"]: pull["body"] for pull in world.pulls()}
    pdf_body = bodies["Export an invoice as a PDF (task #1)"]
    assert pdf_body.count("the PDF opens in any reader") == 1 and "- [ ] the PDF opens in any reader" in pdf_body
    assert "## Test strategy" not in pdf_body
    assert "## Test strategy\n\nSend one to a fake SMTP server." in bodies["Email an invoice (task #2)"]


async def test_merging_marks_the_task_done_reports_the_newly_ready_tasks_and_loops_when_asked(world: World) -> None:
    first = await world.add_task("Write the store")
    second = await world.add_task("Use the store", depends_on=[first])
    third = await world.add_task("Document the store", depends_on=[first])
    [run_id] = await world.start(CodegenRequest(tasks=[first], loop=True))
    assert (await world.run_next()).status == "succeeded"

    async with world.db.transaction() as session:
        pull = await session.scalar(select(PullRequest))
        assert pull is not None
        pull.state, pull.merged = "closed", True
        project = await session.get_one(type(world.project), world.project.id)
        done = await merges.pull_request_closed(session, project, pull)
    assert (done["status"], sorted(done["ready"])) == ("done", [second, third])
    assert len(done["started"]) == 2
    assert (await world.task(first)).status == "done"
    origin = await world.run_row(run_id)
    assert origin.result["merged"] is True and sorted(origin.result["newly_ready"]) == [second, third]
    async with world.db.session() as session:
        pending = await codegen.list_runs(session, project_id=world.project.id, status="pending")
    assert sorted(r.task_number for r in pending) == [second, third]
    assert {r.stage for r in pending} == {"queued"}


async def test_a_pull_request_closed_unmerged_sends_the_task_back_to_pending_with_a_note(world: World) -> None:
    number = await world.add_task("Write the store")
    await world.start(CodegenRequest(tasks=[number]))
    assert (await world.run_next()).status == "succeeded"
    async with world.db.transaction() as session:
        pull = await session.scalar(select(PullRequest))
        assert pull is not None
        pull.state = "closed"
        project = await session.get_one(type(world.project), world.project.id)
        done = await merges.pull_request_closed(session, project, pull)
    task = await world.task(number)
    assert (done["status"], task.status) == ("pending", "pending")
    assert task.extra["codegen"]["note"] == "pull request #1 was closed without merging"


async def test_a_run_started_again_after_its_effects_reuses_the_branch_and_the_pull_request(world: World) -> None:
    number = await world.add_task("Write the store")
    [run_id] = await world.start(CodegenRequest(tasks=[number]))
    assert (await world.run_next()).status == "succeeded"
    # As if the worker died after pushing and opening the PR but before recording them: the journal forgets the
    # effects, the run is live again and owned by a worker that restarts it.
    async with world.db.transaction() as session:
        await session.execute(
            delete(WorkflowStep).where(
                WorkflowStep.run_id == run_id, WorkflowStep.name.in_(["push", "pull_request", "link"])
            )
        )
        await session.execute(update(WorkflowRun).where(WorkflowRun.id == run_id)
                              .values(status="running", worker_id="w2", finished_at=None))  # fmt: skip
    restarted = await runs.restart(world.db, run_id, "w2")
    assert restarted is not None and restarted.attempt == 2
    outcome = await world.workflow.run(world.db, restarted)
    assert outcome.status == "succeeded", outcome.error
    assert len(world.pulls()) == 1 and len(await world.pull_rows()) == 1
    assert set(world.remote_branches()) == {"main", "taskmaster/1-write-the-store"}
    creates = [r for r in world.fake.requests if r.method == "POST" and r.path.endswith("/pulls")]
    assert len(creates) == 1
    async with world.db.session() as session:
        steps = {s.name: s.output for s in (await session.scalars(select(WorkflowStep))).all()}
    assert steps["push"]["done"] == "already there" and steps["pull_request"]["reused"] is True


async def test_a_run_resumed_after_its_commit_on_another_machine_pushes_the_same_commit_from_the_journal(
    world: World, tmp_path: Path
) -> None:
    number = await world.add_task("Write the store")
    agent = ScriptedAgent(lambda checkout: (checkout / "store.py").write_text("STORE = {}\n"))
    world.use_agent(agent)
    [run_id] = await world.start(CodegenRequest(tasks=[number], agent="agentapi"))
    assert (await world.run_next()).status == "succeeded"
    sha = world.remote_branches()["taskmaster/1-write-the-store"]
    # Nothing pushed yet as far as the journal knows, and the checkout is gone (another worker): the bundle in the
    # journal brings the very same commit back; the agent is not run again.
    git(world.remote, "update-ref", "-d", "refs/heads/taskmaster/1-write-the-store")
    world.fake.reset()
    async with world.db.transaction() as session:
        await session.execute(delete(PullRequest))
        await session.execute(
            delete(WorkflowStep).where(
                WorkflowStep.run_id == run_id, WorkflowStep.name.in_(["push", "pull_request", "link"])
            )
        )
        await session.execute(update(WorkflowRun).where(WorkflowRun.id == run_id)
                              .values(status="running", worker_id="w3", finished_at=None))  # fmt: skip
    restarted = await runs.restart(world.db, run_id, "w3")
    assert restarted is not None
    assert (await world.workflow.run(world.db, restarted)).status == "succeeded"
    assert world.remote_branches()["taskmaster/1-write-the-store"] == sha
    assert len(agent.jobs) == 1 and len(world.pulls()) == 1


async def _deliver(world: World, name: str, number: int) -> dict[str, object]:
    body = copy.deepcopy(payload(f"github/pull_request/{name}"))
    body["number"] = body["pull_request"]["number"] = number
    headers = {"X-GitHub-Event": "pull_request", "X-GitHub-Delivery": str(uuid.uuid4()),
               "Content-Type": "application/json"}  # fmt: skip
    async with world.db.transaction() as session:
        await webhooks.store_delivery(
            session, identity=github_webhooks.identify(headers), project_id=world.project.id, headers=headers,
            body=json.dumps(body).encode(), action=None,
        )  # fmt: skip
    assert await webhooks.process_next(world.db, world.settings)
    async with world.db.session() as session:
        delivery = await session.scalar(select(WebhookDelivery).order_by(WebhookDelivery.created_at.desc()))
    assert delivery is not None and delivery.status == "processed", delivery and delivery.error
    return dict(delivery.result)


async def test_the_forges_merged_event_marks_the_task_done_and_a_closed_one_sends_it_back(world: World) -> None:
    first = await world.add_task("Write the store")
    second = await world.add_task("Use the store", depends_on=[first])
    other = await world.add_task("Unrelated work")
    await world.start(CodegenRequest(tasks=[first, other]))
    assert (await world.run_next()).status == "succeeded"
    assert (await world.run_next()).status == "succeeded"
    numbers = {row.task_id: row.number for row in await world.pull_rows()}

    merged = await _deliver(world, "closed_merged", numbers[world.tasks[first]])
    assert merged["codegen"] == {"task": first, "status": "done", "ready": [second]}
    assert (await world.task(first)).status == "done"

    closed = await _deliver(world, "closed", numbers[world.tasks[other]])
    assert closed["codegen"]["status"] == "pending"  # type: ignore[index]
    assert (await world.task(other)).status == "pending"
