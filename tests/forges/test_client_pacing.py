"""The pieces both forge clients share: retry timing from headers, backoff bounds, the write throttle, annotation
batches and comment markers.
"""

from __future__ import annotations

import asyncio
import email.utils
import time

import pytest

from taskmaster.core.errors import InvalidInput
from taskmaster.forges.base import (
    ANNOTATIONS_PER_REQUEST,
    Annotation,
    ForgeAuthError,
    ForgeConflict,
    ForgeError,
    ForgeNotFound,
    ForgePermissionDenied,
    ForgeRateLimited,
    ForgeRejected,
    ForgeUnavailable,
    annotation_batches,
    comment_marker,
    error_for_status,
    is_marked,
    marked_body,
)
from taskmaster.forges.throttle import RetryPolicy, ThrottleSettings, WriteThrottle, retry_after_seconds


def test_retry_after_reads_seconds_http_dates_and_reset_times() -> None:
    now = 1_700_000_000.0
    assert retry_after_seconds({"Retry-After": "7"}, now=now) == 7.0
    http_date = email.utils.formatdate(now + 30, usegmt=True)
    assert retry_after_seconds({"retry-after": http_date}, now=now) == pytest.approx(30.0)
    assert retry_after_seconds({"x-ratelimit-reset": str(int(now) + 12)}, now=now) == 12.0
    assert retry_after_seconds({"RateLimit-Reset": str(int(now) + 5)}, now=now) == 5.0
    assert retry_after_seconds({"RateLimit-Reset": str(int(now) - 5)}, now=now) == 0.0
    assert retry_after_seconds({"Retry-After": "soon"}, now=now) is None
    assert retry_after_seconds({}, now=now) is None


def test_backoff_doubles_up_to_its_cap_with_the_upper_half_jittered() -> None:
    policy = RetryPolicy(backoff_base=1.0, backoff_max=5.0)
    for retry, (low, high) in enumerate([(0.5, 1.0), (1.0, 2.0), (2.0, 4.0), (2.5, 5.0), (2.5, 5.0)]):
        waits = [policy.backoff(retry) for _ in range(50)]
        assert all(low <= wait <= high for wait in waits), (retry, min(waits), max(waits))


def test_pacing_settings_reject_negative_values() -> None:
    with pytest.raises(InvalidInput):
        RetryPolicy(max_retries=-1)
    with pytest.raises(InvalidInput):
        ThrottleSettings(max_concurrency=0)
    with pytest.raises(InvalidInput):
        ThrottleSettings(min_write_interval=-0.1)


async def test_write_throttle_spaces_writes_but_not_reads_and_bounds_concurrency() -> None:
    throttle = WriteThrottle(ThrottleSettings(max_concurrency=2, min_write_interval=0.1))
    starts: dict[str, float] = {}
    inside = 0
    peak = 0

    async def request(name: str, method: str) -> None:
        nonlocal inside, peak
        async with throttle.slot(method):
            starts[name] = time.monotonic()
            inside += 1
            peak = max(peak, inside)
            await asyncio.sleep(0.05)
            inside -= 1

    began = time.monotonic()
    await asyncio.gather(
        request("w1", "POST"), request("w2", "PATCH"), request("w3", "put"), request("r1", "GET"), request("r2", "GET")
    )

    writes = sorted(starts[name] for name in ("w1", "w2", "w3"))
    assert writes[1] - writes[0] >= 0.095 and writes[2] - writes[1] >= 0.095
    assert starts["r1"] - began < 0.09 or starts["r2"] - began < 0.09
    assert peak == 2


def test_annotations_are_cut_into_batches_of_fifty() -> None:
    items = tuple(Annotation("a.py", i + 1, i + 1, "m") for i in range(120))
    batches = annotation_batches(items)
    assert ANNOTATIONS_PER_REQUEST == 50
    assert [len(batch) for batch in batches] == [50, 50, 20]
    assert tuple(a for batch in batches for a in batch) == items
    assert annotation_batches(()) == [()]
    assert [len(b) for b in annotation_batches(items[:50])] == [50]


def test_comment_markers_are_hidden_html_comments_found_only_at_the_start() -> None:
    assert comment_marker("pipeline:7") == "<!-- taskmaster:pipeline:7 -->"
    body = marked_body("summary", "## Result")
    assert body == "<!-- taskmaster:summary -->\n## Result"
    assert is_marked(body, "summary")
    assert not is_marked(body, "summary-2")
    assert not is_marked(f"> {body}", "summary")
    assert not is_marked(None, "summary")
    for bad in ("", "a-->b", "two\nlines", "x>"):
        with pytest.raises(InvalidInput):
            comment_marker(bad)


def test_http_errors_map_to_the_forge_error_family() -> None:
    cases = {
        401: ForgeAuthError,
        403: ForgePermissionDenied,
        404: ForgeNotFound,
        409: ForgeConflict,
        422: ForgeRejected,
        429: ForgeRateLimited,
        502: ForgeUnavailable,
        418: ForgeError,
    }
    for status, kind in cases.items():
        error = error_for_status("GitHub", status, "nope", "do a thing")
        assert type(error) is kind
        assert error.detail == f"GitHub do a thing: HTTP {status}: nope"
        assert error.extra == {"forge": "GitHub", "status": status}
    assert type(error_for_status("GitLab", 400, "Branch already exists", "x")) is ForgeConflict
    limited = error_for_status("GitHub", 403, "secondary", "x", retry_after=61.23456)
    assert type(limited) is ForgeRateLimited and limited.extra["retry_after"] == 61.235
