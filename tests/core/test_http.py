"""A remote service's error family: codes and titles from the kind, the error an HTTP answer becomes, Retry-After."""

from __future__ import annotations

import email.utils

import pytest

from taskmaster.core import http
from taskmaster.core.errors import Conflict, InvalidInput, NotFound, Unavailable


class SampleError(http.ServiceError, service="Sample"):
    """The root of a service's errors."""


class SampleNotFound(SampleError, http.ServiceNotFound):
    """Nothing there."""


class SampleGone(SampleNotFound):
    """A more specific error of a kind the family has already."""


class SampleUnavailable(SampleError, http.ServiceUnavailable):
    """Down."""


class SampleRateLimited(SampleUnavailable, http.ServiceRateLimited):
    """Slow down."""

    title = "Sample asks to wait"


def test_a_family_takes_its_codes_and_titles_from_the_service_and_the_kind_unless_it_sets_its_own() -> None:
    assert (SampleError.code, SampleError.title, SampleError.http_status) == (
        "sample_error",
        "Sample request failed",
        500,
    )
    assert (SampleNotFound.code, SampleNotFound.title) == ("sample_not_found", "Not found on Sample")
    assert issubclass(SampleNotFound, NotFound) and SampleNotFound.http_status == 404
    assert (SampleRateLimited.code, SampleRateLimited.title) == ("sample_rate_limited", "Sample asks to wait")
    assert issubclass(SampleRateLimited, Unavailable) and SampleRateLimited.http_status == 503


def test_an_error_answer_becomes_the_familys_class_of_its_kind_or_the_root() -> None:
    cases = {404: SampleNotFound, 410: SampleNotFound, 503: SampleUnavailable, 429: SampleRateLimited, 418: SampleError}
    for status, expected in cases.items():
        error = SampleError.for_status(status, "detail", service_id="s")
        assert type(error) is expected and error.detail == "detail"
        assert error.extra == {"service_id": "s", "status": status}
    # No class of the kind (409 is a conflict): the root, not the shared kind's class.
    conflict = SampleError.for_status(409, "x")
    assert type(conflict) is SampleError and not isinstance(conflict, Conflict)
    limited = SampleError.for_status(403, "x", retry_after=1.23456)
    assert type(limited) is SampleRateLimited and limited.extra == {"retry_after": 1.235, "status": 403}
    # Asked of one class, the answer stays inside it.
    assert type(SampleNotFound.for_status(503, "x")) is SampleNotFound


def test_an_error_class_outside_a_family_is_refused_when_it_is_defined() -> None:
    with pytest.raises(TypeError, match="names its service"):

        class Orphan(http.ServiceNotFound):
            pass


def test_retry_after_reads_seconds_with_a_fraction_or_an_http_date_in_any_case() -> None:
    now = 1_700_000_000.0
    assert http.retry_after_seconds({"Retry-After": " 7 "}, now=now) == 7.0
    assert http.retry_after_seconds({"retry-after": "0.4"}, now=now) == 0.4
    in_30 = email.utils.formatdate(now + 30, usegmt=True)
    assert http.retry_after_seconds({"RETRY-AFTER": in_30}, now=now) == pytest.approx(30.0)
    assert http.retry_after_seconds({"Retry-After": email.utils.formatdate(now - 30, usegmt=True)}, now=now) == 0.0
    for unreadable in ("soon", "-3", "1e3", "inf"):
        assert http.retry_after_seconds({"Retry-After": unreadable}, now=now) is None
    assert http.retry_after_seconds({"RateLimit-Reset": "5"}, now=now) is None


def test_a_retry_policy_names_its_negative_values() -> None:
    with pytest.raises(InvalidInput, match=r"retry policy values must not be negative: max_retries=-1, backoff_max=-2"):
        http.RetryPolicy(max_retries=-1, backoff_max=-2)
    policy = http.RetryPolicy(backoff_base=1.0, backoff_max=3.0)
    assert all(1.5 <= policy.backoff(2) <= 3.0 for _ in range(20))  # 4 s capped at 3, the upper half drawn
