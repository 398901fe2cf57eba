"""Code generation on GitLab (the real GitLab client against the fake GitLab on loopback): a merge request whose
creation reply was lost is found and linked rather than opened twice, a run resumed after a crash while its merge
request was being created links the one that exists, a failed run closes the merge request it never heard of, and a
project in a subgroup opens its merge request under its whole path."""

from __future__ import annotations

from sqlalchemy import delete, select, update

from taskmaster.db.models import Project, WorkflowRun, WorkflowStep
from taskmaster.workflows import service as runs
from taskmaster.workflows.codegen.schemas import CodegenRequest
from tests.workflows.codegen.conftest import World

BRANCH = "taskmaster/1-write-the-store"
MERGE_REQUESTS = "/api/v4/projects/acme%2Fapi/merge_requests"


def lookups(world: World) -> list[dict[str, str]]:
    """The queries of the merge request lookups sent to the fake GitLab, in order."""
    return [r.query for r in world.fake.requests if r.method == "GET" and r.path == MERGE_REQUESTS]


def creates(world: World) -> int:
    return len([r for r in world.fake.requests if r.method == "POST" and r.path == MERGE_REQUESTS])


QUERY = {"source_branch": BRANCH, "target_branch": "main", "state": "opened", "per_page": "100", "page": "1"}


async def test_a_merge_request_whose_creation_reply_was_lost_is_found_and_linked(gitlab_world: World) -> None:
    world = gitlab_world
    number = await world.add_task("Write the store")
    # GitLab opens the merge request but its answer never arrives (a proxy's 502): the client sends the create
    # again, GitLab refuses it as a second open merge request for the branch, and the lookup finds the first.
    world.fake.lose_reply(method="POST", path_contains=MERGE_REQUESTS)
    await world.start(CodegenRequest(tasks=[number]))

    outcome = await world.run_next()

    assert outcome.status == "succeeded", outcome.error
    assert [(mr["iid"], mr["state"], mr["source_branch"]) for mr in world.pulls()] == [(1, "opened", BRANCH)]
    assert creates(world) == 2
    assert lookups(world) == [QUERY, QUERY]
    [row] = await world.pull_rows()
    assert (row.number, row.url) == (1, outcome.result["pull_request_url"])
    assert row.url.endswith("/acme/api/-/merge_requests/1")
    assert (await world.task(number)).status == "review"


async def test_a_run_resumed_while_its_merge_request_was_being_created_links_the_one_that_exists(
    gitlab_world: World,
) -> None:
    world = gitlab_world
    number = await world.add_task("Write the store")
    [run_id] = await world.start(CodegenRequest(tasks=[number]))
    assert (await world.run_next()).status == "succeeded"
    # As if the worker died after GitLab opened the merge request but before the journal recorded it: the step is
    # started and not finished, the link never happened, and another worker takes the run over.
    async with world.db.transaction() as session:
        await session.execute(
            update(WorkflowStep).where(WorkflowStep.run_id == run_id, WorkflowStep.name == "pull_request")
            .values(finished_at=None, output=None)
        )  # fmt: skip
        await session.execute(delete(WorkflowStep).where(WorkflowStep.run_id == run_id, WorkflowStep.name == "link"))
        await session.execute(update(WorkflowRun).where(WorkflowRun.id == run_id)
                              .values(status="running", worker_id="w2", finished_at=None))  # fmt: skip
    world.fake.clear_log()
    restarted = await runs.restart(world.db, run_id, "w2")
    assert restarted is not None and restarted.attempt == 2

    outcome = await world.workflow.run(world.db, restarted)

    assert outcome.status == "succeeded", outcome.error
    assert len(world.pulls()) == 1 and len(await world.pull_rows()) == 1
    assert creates(world) == 0 and lookups(world) == [QUERY]
    async with world.db.session() as session:
        step = await session.scalar(
            select(WorkflowStep).where(WorkflowStep.run_id == run_id, WorkflowStep.name == "pull_request")
        )
    assert step is not None and step.output is not None
    assert (step.output["number"], step.output["reused"]) == (1, True)


async def test_a_failed_run_closes_the_merge_request_whose_creation_reply_it_never_saw(gitlab_world: World) -> None:
    world = gitlab_world
    number = await world.add_task("Write the store")
    # The merge request is opened but the reply is lost; the create sent again meets a rate limit longer than the
    # client may wait, so the step fails without ever learning the merge request's number.
    world.fake.lose_reply(method="POST", path_contains=MERGE_REQUESTS)
    world.fake.rate_limited(retry_after=600, method="POST", path=MERGE_REQUESTS)
    await world.start(CodegenRequest(tasks=[number]))

    outcome = await world.run_next()

    assert outcome.status == "failed" and outcome.result["stage"] == "pull_request", outcome.result
    assert "HTTP 429" in outcome.result["reason"]
    assert [(mr["iid"], mr["state"]) for mr in world.pulls()] == [(1, "closed")]
    closes = [r for r in world.fake.requests if r.method == "PUT" and r.path == f"{MERGE_REQUESTS}/1"]
    assert [r.json for r in closes] == [{"state_event": "close"}]
    assert lookups(world)[-1] == QUERY
    assert set(world.remote_branches()) == {"main"}
    assert (await world.task(number)).status == "pending"


async def test_a_project_in_a_subgroup_gets_its_merge_request_under_its_whole_path(gitlab_world: World) -> None:
    world = gitlab_world
    async with world.db.transaction() as session:  # as `project add` stores https://gitlab.com/acme/platform/api
        await session.execute(update(Project).where(Project.id == world.project.id).values(owner="acme/platform"))
    number = await world.add_task("Write the store")
    await world.start(CodegenRequest(tasks=[number]))

    outcome = await world.run_next()

    assert outcome.status == "succeeded", outcome.error
    nested = "/api/v4/projects/acme%2Fplatform%2Fapi/merge_requests"
    assert [r.path for r in world.fake.requests if r.method == "POST"] == [nested]
    assert [(mr["project"], mr["iid"], mr["source_branch"]) for mr in world.pulls()] == [
        (world.fake.state.projects["acme/platform/api"], 1, BRANCH)
    ]
    [row] = await world.pull_rows()
    assert row.url.endswith("/acme/platform/api/-/merge_requests/1") and row.url == outcome.result["pull_request_url"]
