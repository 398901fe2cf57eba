"""One fake Codegen server per module (start-up costs more than a test), reset before each test; clients with
small waits so that backoff and rate limits take milliseconds."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest

from taskmaster.agents.codegen.client import CodegenClient, Limiter, RateLimits, RetryPolicy
from tests.support.codegen_server import API_KEY, ORG_ID, FakeCodegen, serve_codegen

FAST_RETRY = RetryPolicy(max_retries=2, max_rate_limit_retries=3, backoff_base=0.02, backoff_max=0.1)


@pytest.fixture(scope="module")
def _server() -> Iterator[FakeCodegen]:
    with serve_codegen() as fake:
        yield fake


@pytest.fixture
def fake(_server: FakeCodegen) -> FakeCodegen:
    _server.reset()
    return _server


def make_client(
    fake: FakeCodegen, *, retry: RetryPolicy = FAST_RETRY, limits: RateLimits | None = None
) -> CodegenClient:
    # Each test gets its own limiter: the shared one would carry one test's pace into the next.
    return CodegenClient(api_key=API_KEY, org_id=ORG_ID, api_url=fake.url, retry=retry, limiter=Limiter(limits))


@pytest.fixture
async def client(fake: FakeCodegen) -> AsyncIterator[CodegenClient]:
    made = make_client(fake)
    yield made
    await made.aclose()
