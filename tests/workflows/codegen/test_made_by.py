"""Recovery continues the Codegen run that made a pull request: the run's id is found through the PR's task."""

from __future__ import annotations

from taskmaster.core.clock import utcnow
from taskmaster.db.models import PullRequest, Task, WorkflowRun, WorkflowStep
from taskmaster.db.session import Database
from taskmaster.workflows.codegen.run import KIND, trigger_subject
from taskmaster.workflows.codegen.service import agent_run_of_pull_request
from tests.support.factories import make_project


async def _pull_request_made_by(db: Database, agent: str, external_id: str | None) -> PullRequest:
    project = await make_project(db)
    async with db.transaction() as session:
        task = Task(project_id=project.id, number=1, title="Add login")
        session.add(task)
        await session.flush()
        run = WorkflowRun(
            project_id=project.id, kind=KIND, status="succeeded", trigger_key=f"{KIND}:{trigger_subject(task.id)}",
            params={"task_id": str(task.id), "agent": agent}, result={},
        )  # fmt: skip
        session.add(run)
        await session.flush()
        output = {"agent": agent, "external_id": external_id} if external_id else {"agent": agent}
        session.add(WorkflowStep(run_id=run.id, name="agent", output=output, started_at=utcnow()))
        pull = PullRequest(
            project_id=project.id, number=7, head_ref="taskmaster/1-add-login", head_sha="a" * 40, base_ref="main",
            task_id=task.id,
        )  # fmt: skip
        session.add(pull)
    return pull


async def test_the_codegen_run_that_made_a_pull_request_is_found_through_its_task(db: Database) -> None:
    pull = await _pull_request_made_by(db, "codegen", "4242")
    async with db.transaction() as session:
        assert await agent_run_of_pull_request(session, pull.id) == "4242"


async def test_a_pull_request_another_agent_made_has_no_codegen_run_to_continue(db: Database) -> None:
    pull = await _pull_request_made_by(db, "agentapi", "session-1")
    async with db.transaction() as session:
        assert await agent_run_of_pull_request(session, pull.id) is None
