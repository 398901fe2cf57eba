"""`CodegenAgent` as a `CodingAgent` against the fake Codegen API: a job becomes a run whose id is reported at once,
its statuses are read in any case, and how it ended (pull request, failure, timeout, plan limit) is the result."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path

import pytest

from taskmaster.agents.base import AgentNotConfigured, CodingAgent, CodingJob
from taskmaster.agents.codegen.agent import FAILED, CodegenAgent, PollPolicy
from tests.agents.codegen.conftest import FAST_RETRY, make_client
from tests.support.codegen_server import API_KEY, ORG_ID, Fail, FakeCodegen, RunScript
from tests.support.databases import make_settings

FAST_POLL = PollPolicy(initial=0.01, factor=1.5, maximum=0.05, resume_settle=0.2)
PROJECT = uuid.UUID("01900000-0000-7000-8000-000000000001")


def job(tmp_path: Path, **changes: object) -> CodingJob:
    values: dict[str, object] = {
        "project_id": PROJECT,
        "project_name": "widgets",
        "task_number": 12,
        "title": "Add a health check",
        "prompt": "Implement task 12: add a health check.",
        "checkout": tmp_path,
        "branch": "taskmaster/12-add-a-health-check",
        "base_branch": "main",
        "timeout": 10.0,
        "repository": "acme/widgets",
        "metadata": {"task_id": "01900000-0000-7000-8000-0000000000aa"},
    }
    values.update(changes)
    return CodingJob(**values)  # type: ignore[arg-type]


def agent(fake: FakeCodegen, **options: object) -> CodegenAgent:
    return CodegenAgent(make_client(fake), poll=FAST_POLL, **options)  # type: ignore[arg-type]


async def test_a_job_becomes_a_run_reported_at_once_whose_pull_request_is_the_result(
    fake: FakeCodegen, tmp_path: Path
) -> None:
    repo_id = fake.add_repo("acme/widgets")
    fake.script(RunScript(statuses=["pending", "Running", "COMPLETE"], head_branch="taskmaster/12-add-a-health-check"))
    made = agent(fake, model="claude-sonnet-4-6", agent_type="claude_code")
    started: list[tuple[str, int]] = []

    async def on_started(external_id: str) -> None:
        started.append((external_id, len(fake.sent("/agent/run/9001", "GET"))))

    result = await made.run(job(tmp_path), on_started=on_started)

    assert started == [("9001", 0)]
    assert result.ok and result.failure is None
    assert result.external_id == "9001"
    assert result.pull_request_url == "https://github.com/acme/widgets/pull/1"
    assert result.head_branch == "taskmaster/12-add-a-health-check"
    assert result.summary == "Implemented the task."
    assert "Changed the code" in result.transcript and "codegen.com/agent/trace/9001" in result.transcript
    [create] = fake.sent("/agent/run", "POST")
    assert create.body is not None
    assert create.body["repo_id"] == repo_id
    assert create.body["model"] == "claude-sonnet-4-6" and create.body["agent_type"] == "claude_code"
    assert create.body["prompt"].startswith("Implement task 12: add a health check.")
    assert "`taskmaster/12-add-a-health-check` into `main`" in create.body["prompt"]
    metadata = create.body["metadata"]
    assert metadata["task_id"] == "01900000-0000-7000-8000-0000000000aa"
    assert metadata["taskmaster_task"] == 12 and metadata["taskmaster_project"] == "widgets"
    assert metadata["taskmaster_project_id"] == str(PROJECT)
    assert len(fake.sent("/agent/run/9001", "GET")) == 3
    assert (made.kind, made.label) == ("codegen", "codegen")
    await made.aclose()


@pytest.mark.parametrize("final", ["complete", "Completed", "COMPLETE", "COMPLETED"])
async def test_success_statuses_are_read_in_any_case(fake: FakeCodegen, tmp_path: Path, final: str) -> None:
    fake.add_repo("acme/widgets")
    fake.script(RunScript(statuses=["ACTIVE", final]))

    result = await agent(fake).run(job(tmp_path))

    assert result.ok and result.pull_request_url is not None


@pytest.mark.parametrize("final", [*sorted(FAILED), "Failed", "OUT_OF_TOKENS"])
async def test_failure_statuses_end_the_run_as_failed(fake: FakeCodegen, tmp_path: Path, final: str) -> None:
    fake.add_repo("acme/widgets")
    fake.script(
        RunScript(statuses=["RUNNING", final.upper() if final.islower() else final], result="Tests kept failing")
    )

    result = await agent(fake).run(job(tmp_path))

    assert not result.ok
    assert result.failure == ("timeout" if final.lower() == "timeout" else "failed")
    assert result.error is not None and result.error.startswith("Codegen run 9001 ended ")
    assert "Tests kept failing" in result.error
    assert result.external_id == "9001"


async def test_an_unknown_status_keeps_the_run_polled_until_the_job_times_out(
    fake: FakeCodegen, tmp_path: Path
) -> None:
    fake.add_repo("acme/widgets")
    fake.script(RunScript(statuses=["EVALUATION"]))

    result = await agent(fake).run(job(tmp_path, timeout=0.6))

    assert not result.ok and result.failure == "timeout"
    assert result.external_id == "9001"
    assert "0.6 s" in (result.error or "")
    assert len(fake.sent("/agent/run/9001", "GET")) > 3


async def test_an_unknown_status_then_completion_succeeds(fake: FakeCodegen, tmp_path: Path) -> None:
    fake.add_repo("acme/widgets")
    fake.script(RunScript(statuses=["queued", "thinking-hard", "COMPLETE"]))

    result = await agent(fake).run(job(tmp_path))

    assert result.ok


async def test_a_resumed_job_polls_its_run_and_creates_none(fake: FakeCodegen, tmp_path: Path) -> None:
    fake.add_repo("acme/widgets")
    made = agent(fake)
    client = make_client(fake)
    created = await client.create_run("earlier attempt")
    fake.requests.clear()
    started: list[str] = []

    async def on_started(external_id: str) -> None:
        started.append(external_id)

    result = await made.run(job(tmp_path, resume_id=str(created.id)), on_started=on_started)

    assert result.ok and result.external_id == str(created.id)
    assert started == [str(created.id)]
    assert fake.sent("/agent/run", "POST") == []
    assert len(fake.runs) == 1
    await client.aclose()


async def test_a_plan_limit_is_refused_with_the_limit_named(fake: FakeCodegen, tmp_path: Path) -> None:
    fake.add_repo("acme/widgets")
    fake.plan_exhausted = True
    started: list[str] = []

    async def on_started(external_id: str) -> None:
        started.append(external_id)

    result = await agent(fake).run(job(tmp_path), on_started=on_started)

    assert not result.ok and result.failure == "refused"
    assert "HTTP 402" in (result.error or "") and "plan's limit on agent runs" in (result.error or "")
    assert started == [] and result.external_id is None


async def test_a_rejected_key_is_an_infra_failure_naming_the_setting(fake: FakeCodegen, tmp_path: Path) -> None:
    fake.api_key = "cg-rotated"

    result = await agent(fake, repo_id=1).run(job(tmp_path))

    assert not result.ok and result.failure == "infra"
    assert "HTTP 401" in (result.error or "") and "CODEGEN_API_KEY" in (result.error or "")


async def test_a_repository_not_connected_to_codegen_is_named(fake: FakeCodegen, tmp_path: Path) -> None:
    fake.add_repo("acme/other")

    result = await agent(fake).run(job(tmp_path))

    assert not result.ok and result.failure == "infra"
    assert result.error == f"repository 'acme/widgets' is not connected to Codegen organisation {ORG_ID}"
    assert fake.sent("/agent/run", "POST") == []


async def test_without_a_repository_the_organisation_default_is_used(fake: FakeCodegen, tmp_path: Path) -> None:
    result = await agent(fake).run(job(tmp_path, repository=None))

    assert result.ok
    [create] = fake.sent("/agent/run", "POST")
    assert create.body is not None and "repo_id" not in create.body
    assert fake.sent("/repos") == []


async def test_an_outage_while_polling_is_waited_out(fake: FakeCodegen, tmp_path: Path) -> None:
    fake.add_repo("acme/widgets")
    fake.script(RunScript(statuses=["RUNNING", "COMPLETE"]))
    # More 503s than one read retries: the agent itself keeps polling.
    fake.fail_next("get", *[Fail(503)] * (FAST_RETRY.max_retries + 3))

    result = await agent(fake).run(job(tmp_path))

    assert result.ok
    assert len(fake.sent("/agent/run/9001", "GET")) == FAST_RETRY.max_retries + 3 + 2


async def test_a_run_that_vanished_is_an_infra_failure(fake: FakeCodegen, tmp_path: Path) -> None:
    result = await agent(fake).run(job(tmp_path, resume_id="777"))

    assert not result.ok and result.failure == "infra"
    assert "HTTP 404" in (result.error or "") and "Agent run not found." in (result.error or "")
    assert result.external_id == "777"


async def test_a_resume_id_that_is_not_an_integer_is_refused(fake: FakeCodegen, tmp_path: Path) -> None:
    result = await agent(fake).run(job(tmp_path, resume_id="sess-1"))

    assert not result.ok and result.failure == "infra"
    assert result.error == "a Codegen agent run id is an integer, not 'sess-1'"
    assert fake.requests == []


async def test_a_follow_up_is_sent_to_the_run_and_waited_for(fake: FakeCodegen, tmp_path: Path) -> None:
    fake.add_repo("acme/widgets")
    made = agent(fake)
    first = await made.run(job(tmp_path))
    assert first.ok and first.external_id is not None
    fake.resume_statuses = ["RUNNING", "running", "COMPLETE"]

    result = await made.resume(first.external_id, "The test step failed: fix it", timeout=5)

    assert result.ok and result.external_id == first.external_id
    assert fake.runs[9001].follow_ups == ["The test step failed: fix it"]
    [resume] = fake.sent("/agent/run/resume", "POST")
    assert resume.body == {"agent_run_id": 9001, "prompt": "The test step failed: fix it"}


async def test_a_follow_up_does_not_trust_the_old_final_status_at_once(fake: FakeCodegen, tmp_path: Path) -> None:
    fake.add_repo("acme/widgets")
    made = agent(fake)
    first = await made.run(job(tmp_path))
    reads_before = len(fake.sent("/agent/run/9001", "GET"))
    # The service still shows the run complete right after the follow-up; it is believed after the settle time.
    fake.resume_statuses = ["COMPLETE"]

    result = await made.resume(str(first.external_id), "More", timeout=5)

    assert result.ok
    assert len(fake.sent("/agent/run/9001", "GET")) - reads_before > 2


async def test_cancelling_the_run_stops_the_polling(fake: FakeCodegen, tmp_path: Path) -> None:
    fake.add_repo("acme/widgets")
    fake.script(RunScript(statuses=["RUNNING"]))
    made = agent(fake)
    running = asyncio.create_task(made.run(job(tmp_path)))
    while not fake.sent("/agent/run/9001", "GET"):
        await asyncio.sleep(0.01)

    running.cancel()
    with pytest.raises(asyncio.CancelledError):
        await running
    reads = len(fake.sent("/agent/run/9001", "GET"))
    await asyncio.sleep(0.2)

    assert len(fake.sent("/agent/run/9001", "GET")) == reads


def test_the_agent_is_made_from_settings_without_network(tmp_path: Path) -> None:
    settings = make_settings(
        tmp_path, CODEGEN_API_KEY=API_KEY, CODEGEN_ORG_ID=str(ORG_ID), CODEGEN_API_URL="http://127.0.0.1:9"
    )

    made: CodingAgent = CodegenAgent.from_settings(settings)

    assert isinstance(made, CodegenAgent)
    assert made.client.org_id == ORG_ID and made.client.api_url == "http://127.0.0.1:9"


@pytest.mark.parametrize(
    ("env", "named"),
    [
        ({"CODEGEN_ORG_ID": "4242"}, "CODEGEN_API_KEY"),
        ({"CODEGEN_API_KEY": API_KEY}, "CODEGEN_ORG_ID"),
        ({"CODEGEN_API_KEY": API_KEY, "CODEGEN_ORG_ID": "acme"}, "CODEGEN_ORG_ID must be the organisation's integer"),
        ({"CODEGEN_API_KEY": API_KEY, "CODEGEN_ORG_ID": "1", "CODEGEN_API_URL": "api.codegen.com"}, "CODEGEN_API_URL"),
    ],
)
def test_a_missing_setting_is_named(tmp_path: Path, env: dict[str, str], named: str) -> None:
    with pytest.raises(AgentNotConfigured) as caught:
        CodegenAgent.from_settings(make_settings(tmp_path, **env))

    assert named in caught.value.detail
