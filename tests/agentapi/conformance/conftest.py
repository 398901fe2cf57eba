"""Targets for the conformance suite: AGENTAPI_CONFORMANCE_URL if set, else our single- and multi-session servers.

With AGENTAPI_CONFORMANCE_URL (e.g. http://localhost:3284 for coder/agentapi, or .../sessions/<id>) the suite runs
only against that server; AGENTAPI_CONFORMANCE_TOKEN adds a bearer token.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator

import httpx
import pytest

from tests.agentapi.conftest import FAKE_AGENT, agent_argv, agentapi_server

EXTERNAL = os.environ.get("AGENTAPI_CONFORMANCE_URL")
TOKEN = os.environ.get("AGENTAPI_CONFORMANCE_TOKEN")


@pytest.fixture(scope="module", params=["external"] if EXTERNAL else ["single", "multi-session"])
def base_url(request: pytest.FixtureRequest) -> Iterator[str]:
    if request.param == "external":
        assert EXTERNAL
        yield EXTERNAL.rstrip("/")
    elif request.param == "single":
        with agentapi_server(agent_argv(think=0.3), ping_interval=1.0) as url:
            yield url
    else:
        with agentapi_server(multi=True, ping_interval=1.0) as url:
            command = [sys.executable, str(FAKE_AGENT), "--think", "0.3"]
            created = httpx.post(f"{url}/sessions", json={"type": "claude", "command": command, "term_height": 40})
            assert created.status_code == 201, created.text
            yield f"{url}/sessions/{created.json()['id']}"


@pytest.fixture
def http(base_url: str) -> Iterator[httpx.Client]:
    headers = {"Authorization": f"Bearer {TOKEN}"} if TOKEN else {}
    with httpx.Client(base_url=base_url, headers=headers, timeout=60) as client:
        yield client
