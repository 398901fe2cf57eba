"""One way for a test to wait until something holds: poll a check, fail the test with what was awaited."""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

T = TypeVar("T")


async def eventually(
    check: Callable[[], Awaitable[T] | T], *, timeout: float = 10.0, interval: float = 0.05, what: str = "condition"
) -> T:
    """Call `check` (sync or async) until it returns something truthy and return that; fail the test naming
    `what` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if inspect.isawaitable(value):
            value = await value
        if value:
            return value
        assert time.monotonic() < deadline, f"{what} not reached within {timeout:g} s"
        await asyncio.sleep(interval)


def eventually_sync(
    check: Callable[[], T], *, timeout: float = 10.0, interval: float = 0.02, what: str = "condition"
) -> T:
    """`eventually` for code outside an event loop (threads, fixtures)."""
    deadline = time.monotonic() + timeout
    while not (value := check()):
        assert time.monotonic() < deadline, f"{what} not reached within {timeout:g} s"
        time.sleep(interval)
    return value
