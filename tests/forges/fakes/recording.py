"""What both fake forges share: every request recorded, failures injected on demand, routes matched on the raw
(still percent-encoded) path, as GitLab's `group%2Fproject` ids need.
"""

from __future__ import annotations

import asyncio
import json
import re
import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response

METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE"]


@dataclass(frozen=True)
class Recorded:
    """One request as it arrived: `path` is raw (percent-encoding kept), header names lower-case."""

    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    json: Any
    at: float


@dataclass
class Injected:
    """A canned error answer for the next `times` requests that match; with `handled`, the request is carried out
    first and only its answer replaced (a reply lost on the way back, as from a proxy that timed out)."""

    status: int
    body: Any
    headers: dict[str, str]
    method: str | None
    path_contains: str | None
    times: int
    handled: bool = False


@dataclass
class Call:
    """What a route handler gets: the request, the regex groups of its path, and the parsed body."""

    request: Request
    params: dict[str, str]
    body: Any
    base_url: str
    headers: dict[str, str] = field(default_factory=dict)


Handler = Callable[[Call], Awaitable[Response]]


class RecordingServer:
    """Routes, the request log and the failure queue of one fake server (subclasses add routes and state)."""

    def __init__(self) -> None:
        self.requests: list[Recorded] = []
        self._routes: list[tuple[str, re.Pattern[str], Handler]] = []
        self._injected: list[Injected] = []
        self._lock = threading.Lock()
        self.open = threading.Event()
        """Cleared: every request is recorded, then held until it is set again (a forge that has not answered yet)."""
        self.open.set()

    def route(self, method: str, pattern: str, handler: Handler) -> None:
        """`pattern` is a regex over the raw path, anchored at both ends; named groups become `Call.params`."""
        self._routes.append((method, re.compile(f"^{pattern}$"), handler))

    def inject(
        self,
        status: int,
        body: Any,
        *,
        headers: dict[str, str] | None = None,
        method: str | None = None,
        path_contains: str | None = None,
        times: int = 1,
    ) -> None:
        with self._lock:
            self._injected.append(Injected(status, body, headers or {}, method, path_contains, times))

    def lose_reply(
        self, *, status: int = 502, method: str | None = None, path_contains: str | None = None, times: int = 1
    ) -> None:
        """The next `times` matching requests are carried out, but their answers are lost: the client gets `status`
        (by default the 502 a proxy answers when the server behind it took too long)."""
        body = {"message": f"{status} {HTTPStatus(status).phrase}"}
        with self._lock:
            self._injected.append(Injected(status, body, {}, method, path_contains, times, handled=True))

    def clear_log(self) -> None:
        with self._lock:
            self.requests = []
            self._injected = []

    def matching(self, method: str | None = None, path_contains: str | None = None) -> list[Recorded]:
        """The recorded requests with this method and/or containing this text in their raw path, in order."""
        return [
            item
            for item in list(self.requests)
            if (method is None or item.method == method) and (path_contains is None or path_contains in item.path)
        ]

    def app(self) -> FastAPI:
        app = FastAPI()

        @app.api_route("/{rest:path}", methods=METHODS)
        async def dispatch(request: Request) -> Response:
            return await self._dispatch(request)

        return app

    async def _dispatch(self, request: Request) -> Response:
        raw = await request.body()
        body = json.loads(raw) if raw else None
        path = request.scope["raw_path"].decode()
        record = Recorded(
            method=request.method,
            path=path,
            query=dict(request.query_params),
            headers={key.lower(): value for key, value in request.headers.items()},
            json=body,
            at=time.monotonic(),
        )
        with self._lock:
            self.requests.append(record)
            failure = self._take_failure(record)
        if not self.open.is_set():
            await asyncio.to_thread(self.open.wait, 60)
        if failure is not None and not failure.handled:
            return JSONResponse(failure.body, status_code=failure.status, headers=failure.headers)
        base_url = f"{request.url.scheme}://{request.url.netloc}"
        answer: Response = JSONResponse({"message": "Not Found"}, status_code=404)
        for method, pattern, handler in self._routes:
            if method == request.method and (match := pattern.match(path)):
                answer = await handler(Call(request, match.groupdict(), body, base_url, record.headers))
                break
        if failure is not None:
            return JSONResponse(failure.body, status_code=failure.status, headers=failure.headers)
        return answer

    def _take_failure(self, record: Recorded) -> Injected | None:
        for failure in self._injected:
            if (failure.method is None or failure.method == record.method) and (
                failure.path_contains is None or failure.path_contains in record.path
            ):
                failure.times -= 1
                if failure.times <= 0:
                    self._injected.remove(failure)
                return failure
        return None
