"""`CodegenClient` against the fake Codegen API: what goes on the wire, what comes back, and how errors, rate limits
and lost answers are handled."""

from __future__ import annotations

import asyncio
import time

import pytest

from taskmaster.agents.codegen.client import (
    REQUEST_KEY,
    CodegenAuthError,
    CodegenClient,
    CodegenError,
    CodegenNotFound,
    CodegenPermissionDenied,
    CodegenPlanLimit,
    CodegenRateLimited,
    CodegenRejected,
    CodegenUnavailable,
    RateLimit,
    RateLimits,
    RetryPolicy,
)
from taskmaster.core.errors import InvalidInput
from tests.agents.codegen.conftest import FAST_RETRY, make_client
from tests.support.codegen_server import API_KEY, ORG_ID, Fail, FakeCodegen, RunScript
from tests.support.net import free_port


async def test_create_sends_the_prompt_options_and_metadata_with_a_bearer_token(
    fake: FakeCodegen, client: CodegenClient
) -> None:
    repo_id = fake.add_repo("acme/widgets")

    run = await client.create_run(
        "Add a health check",
        repo_id=repo_id,
        model="claude-sonnet-4-6",
        agent_type="claude_code",
        metadata={"taskmaster_task": 7},
    )

    assert run.id == 9001 and isinstance(run.id, int)
    assert run.status == "PENDING"
    [sent] = fake.requests
    assert (sent.method, sent.path) == ("POST", f"/v1/organizations/{ORG_ID}/agent/run")
    assert sent.headers["authorization"] == f"Bearer {API_KEY}"
    assert sent.headers["content-type"] == "application/json"
    assert sent.body is not None
    request_id = sent.body["metadata"].pop(REQUEST_KEY)
    assert len(request_id) == 32
    assert sent.body == {
        "prompt": "Add a health check",
        "repo_id": repo_id,
        "model": "claude-sonnet-4-6",
        "agent_type": "claude_code",
        "metadata": {"taskmaster_task": 7},
    }


async def test_create_leaves_out_the_options_it_was_not_given(fake: FakeCodegen, client: CodegenClient) -> None:
    await client.create_run("Fix the bug")

    [sent] = fake.requests
    assert sent.body is not None
    assert set(sent.body) == {"prompt", "metadata"}


async def test_read_and_resume_use_integer_ids_in_path_and_body(fake: FakeCodegen, client: CodegenClient) -> None:
    fake.script(RunScript(statuses=["running", "complete"], head_branch="feature/x"))
    created = await client.create_run("Do it")

    first = await client.get_run(created.id)
    second = await client.get_run(created.id)
    resumed = await client.resume_run(created.id, "Also add tests")

    assert (first.status, second.status) == ("running", "complete")
    assert second.github_pull_requests is not None
    assert second.github_pull_requests[0].url == "https://github.com/acme/widgets/pull/1"
    assert second.github_pull_requests[0].head_branch_name == "feature/x"
    assert resumed.status == "RUNNING"
    reads = fake.sent(f"/agent/run/{created.id}", "GET")
    assert len(reads) == 2
    [resume] = fake.sent("/agent/run/resume", "POST")
    assert resume.body == {"agent_run_id": created.id, "prompt": "Also add tests"}
    assert fake.runs[created.id].follow_ups == ["Also add tests"]


async def test_a_429_with_retry_after_is_waited_out_for_as_long_as_asked(
    fake: FakeCodegen, client: CodegenClient
) -> None:
    fake.fail_next("create", Fail(429, headers={"Retry-After": "0.4"}))

    run = await client.create_run("Go")

    first, second = fake.sent("/agent/run", "POST")
    assert second.at - first.at >= 0.38
    assert run.id in fake.runs and len(fake.runs) == 1


async def test_a_429_without_retry_after_waits_a_computed_backoff(fake: FakeCodegen) -> None:
    client = make_client(fake, retry=RetryPolicy(max_rate_limit_retries=3, backoff_base=0.3, backoff_max=1.0))
    created = await client.create_run("Go")
    fake.fail_next("get", Fail(429), Fail(429))

    run = await client.get_run(created.id)

    reads = fake.sent(f"/agent/run/{created.id}", "GET")
    assert run.id == created.id and len(reads) == 3
    # Backoff with half jitter: at least 0.15 s, then at least 0.3 s.
    assert reads[1].at - reads[0].at >= 0.14
    assert reads[2].at - reads[1].at >= 0.29
    await client.aclose()


async def test_429s_past_the_retries_end_as_rate_limited(fake: FakeCodegen, client: CodegenClient) -> None:
    fake.fail_next("create", *[Fail(429, headers={"Retry-After": "0"})] * 5)

    with pytest.raises(CodegenRateLimited) as caught:
        await client.create_run("Go")

    assert len(fake.sent("/agent/run", "POST")) == FAST_RETRY.max_rate_limit_retries + 1
    assert "HTTP 429" in caught.value.detail and "Rate limit exceeded" in caught.value.detail
    assert fake.runs == {}


async def test_a_retry_after_longer_than_allowed_is_not_waited_but_raised_with_the_wait(
    fake: FakeCodegen, client: CodegenClient
) -> None:
    fake.fail_next("create", Fail(429, headers={"Retry-After": "3600"}))
    started = time.monotonic()

    with pytest.raises(CodegenRateLimited) as caught:
        await client.create_run("Go")

    assert time.monotonic() - started < 2
    assert caught.value.extra["retry_after"] == 3600


async def test_a_402_stops_at_once_naming_the_plan_limit(fake: FakeCodegen, client: CodegenClient) -> None:
    fake.plan_exhausted = True

    with pytest.raises(CodegenPlanLimit) as caught:
        await client.create_run("Go")

    assert len(fake.requests) == 1
    assert "HTTP 402" in caught.value.detail
    assert "billing plan" in caught.value.detail and "plan's limit on agent runs" in caught.value.detail
    assert caught.value.http_status == 402


@pytest.mark.parametrize(
    ("failure", "error", "words"),
    [
        (Fail(401, "Invalid or expired API token."), CodegenAuthError, "CODEGEN_API_KEY"),
        (Fail(403, "You do not have access to this organization."), CodegenPermissionDenied, "CODEGEN_ORG_ID"),
        (Fail(404, "Agent run not found."), CodegenNotFound, "Agent run not found."),
        (Fail(422, "prompt too long"), CodegenRejected, "prompt too long"),
    ],
)
async def test_client_errors_are_clear_and_not_retried(
    fake: FakeCodegen, client: CodegenClient, failure: Fail, error: type[CodegenError], words: str
) -> None:
    fake.fail_next("get", failure)

    with pytest.raises(error) as caught:
        await client.get_run(9001)

    assert len(fake.requests) == 1
    assert f"HTTP {failure.status}" in caught.value.detail and words in caught.value.detail
    assert caught.value.detail.startswith("Codegen read agent run 9001")
    assert 400 <= caught.value.http_status < 500


async def test_a_wrong_key_and_a_foreign_organisation_are_told_apart(fake: FakeCodegen) -> None:
    wrong_key = CodegenClient(api_key="cg-wrong", org_id=ORG_ID, api_url=fake.url, retry=FAST_RETRY)
    wrong_org = CodegenClient(api_key=API_KEY, org_id=ORG_ID + 1, api_url=fake.url, retry=FAST_RETRY)

    with pytest.raises(CodegenAuthError):
        await wrong_key.create_run("Go")
    with pytest.raises(CodegenPermissionDenied):
        await wrong_org.create_run("Go")

    assert fake.requests[0].headers["authorization"] == "Bearer cg-wrong"
    assert fake.requests[1].path == f"/v1/organizations/{ORG_ID + 1}/agent/run"
    assert fake.runs == {}
    await wrong_key.aclose()
    await wrong_org.aclose()


async def test_a_validation_error_names_the_fields(fake: FakeCodegen, client: CodegenClient) -> None:
    with pytest.raises(CodegenRejected) as caught:
        await client._call("POST", "/agent/run", "create", action="create an agent run", json={"model": "x"})

    assert "HTTP 422" in caught.value.detail and "prompt: Field required" in caught.value.detail


async def test_5xx_answers_are_retried_with_backoff(fake: FakeCodegen, client: CodegenClient) -> None:
    created = await client.create_run("Go")
    fake.fail_next("get", Fail(503, "down"), Fail(500, "oops"))

    run = await client.get_run(created.id)

    assert run.id == created.id
    assert len(fake.sent(f"/agent/run/{created.id}", "GET")) == 3


async def test_5xx_past_the_retries_is_unavailable(fake: FakeCodegen, client: CodegenClient) -> None:
    fake.fail_next("get", *[Fail(503, "maintenance")] * 5)

    with pytest.raises(CodegenUnavailable) as caught:
        await client.get_run(9001)

    assert len(fake.requests) == FAST_RETRY.max_retries + 1
    assert "HTTP 503: maintenance" in caught.value.detail and "after 3 attempts" in caught.value.detail
    assert caught.value.http_status == 503


async def test_an_unreachable_service_is_unavailable_after_the_retries() -> None:
    client = CodegenClient(api_key=API_KEY, org_id=ORG_ID, api_url=f"http://127.0.0.1:{free_port()}", retry=FAST_RETRY)

    with pytest.raises(CodegenUnavailable) as caught:
        await client.create_run("Go")

    assert "cannot connect" in caught.value.detail
    await client.aclose()


async def test_a_create_whose_answer_was_lost_is_found_instead_of_made_twice(
    fake: FakeCodegen, client: CodegenClient
) -> None:
    fake.fail_next("create", Fail(500, "lost", applied=True))

    run = await client.create_run("Go", metadata={"taskmaster_task": 3})

    assert len(fake.runs) == 1 and run.id in fake.runs
    assert len(fake.sent("/agent/run", "POST")) == 1
    [listing] = fake.sent("/agent/runs", "GET")
    assert listing.query == {"skip": "0", "limit": "100", "source_type": "API"}


async def test_a_create_refused_with_500_before_it_took_effect_is_sent_again(
    fake: FakeCodegen, client: CodegenClient
) -> None:
    fake.fail_next("create", Fail(500, "refused"))

    run = await client.create_run("Go")

    assert list(fake.runs) == [run.id]
    assert len(fake.sent("/agent/run", "POST")) == 2


async def test_a_resume_whose_answer_was_lost_is_not_sent_again(fake: FakeCodegen, client: CodegenClient) -> None:
    created = await client.create_run("Go")
    fake.fail_next("resume", Fail(500, "lost", applied=True))

    with pytest.raises(CodegenUnavailable) as caught:
        await client.resume_run(created.id, "More")

    assert "not sent again" in caught.value.detail
    assert fake.runs[created.id].follow_ups == ["More"]
    assert len(fake.sent("/agent/run/resume")) == 1


async def test_the_limiter_keeps_creates_within_the_rate_for_parallel_callers(fake: FakeCodegen) -> None:
    client = make_client(fake, limits=RateLimits(create=RateLimit(2, 0.5), other=RateLimit(60, 30)))
    began = time.monotonic()

    runs = await asyncio.gather(*(client.create_run(f"task {n}") for n in range(5)))

    assert len({run.id for run in runs}) == 5
    # Arrival times (the server runs in this process, on the same clock) are never earlier than the sends: two
    # creates may go at once, the third and fourth only a window later, the fifth two windows later.
    arrived = sorted(sent.at - began for sent in fake.sent("/agent/run", "POST"))
    assert arrived[2] >= 0.5 and arrived[3] >= 0.5
    assert arrived[4] >= 1.0
    await client.aclose()


async def test_two_clients_of_one_key_share_the_default_limiter(fake: FakeCodegen) -> None:
    first = CodegenClient(api_key=API_KEY, org_id=ORG_ID, api_url=fake.url)
    second = CodegenClient(api_key=API_KEY, org_id=ORG_ID, api_url=fake.url + "/")
    other = CodegenClient(api_key="cg-another-key-0000", org_id=ORG_ID, api_url=fake.url)

    assert first.limiter is second.limiter
    assert other.limiter is not first.limiter
    assert first.limiter.limits == RateLimits(create=RateLimit(10, 60.0), other=RateLimit(60, 30.0))


async def test_a_429_makes_every_caller_of_the_limit_wait(fake: FakeCodegen, client: CodegenClient) -> None:
    created = await client.create_run("Go")
    fake.fail_next("get", Fail(429, headers={"Retry-After": "0.3"}))

    await asyncio.gather(client.get_run(created.id), client.get_run(created.id))

    reads = fake.sent(f"/agent/run/{created.id}", "GET")
    assert len(reads) == 3
    # The caller that was not refused is held back too, once the 429 was seen.
    assert reads[2].at - reads[0].at >= 0.28


async def test_the_repository_id_is_found_by_full_name_across_pages(fake: FakeCodegen, client: CodegenClient) -> None:
    for number in range(150):
        fake.add_repo(f"acme/repo-{number}")

    found = await client.find_repo_id("ACME/repo-120")
    missing = await client.find_repo_id("acme/nowhere")

    assert found == 220
    assert missing is None
    queries = [sent.query for sent in fake.sent("/repos", "GET")]
    assert queries[:2] == [{"skip": "0", "limit": "100"}, {"skip": "100", "limit": "100"}]


def test_bad_construction_is_refused_with_the_setting_named() -> None:
    with pytest.raises(InvalidInput, match="CODEGEN_API_KEY"):
        CodegenClient(api_key="", org_id=1)
    with pytest.raises(InvalidInput, match="CODEGEN_API_URL"):
        CodegenClient(api_key="k", org_id=1, api_url="ftp://x")
    with pytest.raises(InvalidInput, match="must not be negative"):
        RetryPolicy(max_retries=-1)


def test_the_key_is_not_in_the_client_repr() -> None:
    assert API_KEY not in repr(CodegenClient(api_key=API_KEY, org_id=ORG_ID))
