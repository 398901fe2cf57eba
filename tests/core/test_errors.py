"""Each error class carries the HTTP status a door answers it with; subclasses inherit it."""

from __future__ import annotations

import pytest

from taskmaster.core import errors


class _Lost(errors.Conflict):
    pass


@pytest.mark.parametrize(
    ("error", "status"),
    [
        (errors.InvalidInput("x"), 422),
        (errors.MalformedRequest("x"), 400),
        (errors.NotFound("x"), 404),
        (errors.Conflict("x"), 409),
        (_Lost("x"), 409),
        (errors.Unauthenticated("x"), 401),
        (errors.PermissionDenied("x"), 403),
        (errors.Unavailable("x"), 503),
        (errors.TaskmasterError("x"), 500),
        (RuntimeError("x"), 500),
    ],
)
def test_http_status_is_the_error_classs_own_or_500(error: BaseException, status: int) -> None:
    assert errors.http_status(error) == status
