"""Every operation of the OpenAPI description, fuzzed by schemathesis with an admin token, on both databases: no
5xx and no response that breaks its own schema. Bounded: a few examples per operation and mode (about a minute per
database on two cores)."""

from __future__ import annotations

from typing import Any

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import response_schema_conformance

from taskmaster.auth.schemas import Role
from tests.api.conftest import Api

pytestmark = [pytest.mark.schemathesis, pytest.mark.slow]

EXAMPLES = 12
"""Per operation and per mode; with three modes that is ~1,700 requests per database."""


def _fuzz(api: Api, operation: Any, mode: GenerationMode, session: requests.Session, **fixed: Any) -> None:
    headers = {"Authorization": f"Bearer {api.tokens[Role.admin]}"}

    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        database=None,
        derandomize=True,
        suppress_health_check=list(HealthCheck),
    )
    @given(data=st.data())
    def run(data: st.DataObject) -> None:
        case = data.draw(operation.as_strategy(generation_mode=mode, **fixed))
        response = case.call(base_url=api.url, session=session, headers=headers, timeout=30)
        case.validate_response(response, checks=[not_a_server_error, response_schema_conformance], headers=headers)

    try:
        run()
    except Unsatisfiable:
        # An operation without parameters or body has no invalid input to make.
        if mode is not GenerationMode.NEGATIVE:
            raise


def test_no_operation_answers_5xx_or_breaks_its_response_schema(api: Api) -> None:
    with requests.Session() as session:
        session.headers["Authorization"] = f"Bearer {api.tokens[Role.admin]}"
        created = session.post(f"{api.url}/api/projects", json={"name": "app", "repository": "/srv/repos/app"})
        assert created.status_code == 201, created.text
        task = session.post(f"{api.url}/api/projects/app/tasks", json={"title": "first"})
        assert task.status_code == 201, task.text
        schema = schemathesis.openapi.from_url(f"{api.url}/openapi.json")
        operations = [result.ok() for result in schema.get_all_operations()]
        assert len(operations) > 30
        fuzzed = []
        for operation in operations:
            _fuzz(api, operation, GenerationMode.POSITIVE, session)
            _fuzz(api, operation, GenerationMode.NEGATIVE, session)
            if "{project_id}" in operation.path:
                # The one project that exists, so that generated bodies and numbers get past the lookup.
                _fuzz(api, operation, GenerationMode.POSITIVE, session, path_parameters={"project_id": "app"})
            fuzzed.append(operation.label)
    assert "POST /api/tokens" in fuzzed and "GET /api/pipelines" in fuzzed
