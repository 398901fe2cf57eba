"""Request context (a correlation id per request, echoed and logged) and the guard that bounds what a request may
carry before a route reads it."""

from __future__ import annotations

import asyncio
import json
import re
import time
import uuid
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl

import structlog
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from taskmaster.api.errors import problem
from taskmaster.auth import service as auth_service
from taskmaster.core.errors import Unauthenticated

if TYPE_CHECKING:
    from taskmaster.api.deps import Services

REQUEST_ID_HEADER = "x-request-id"
AUTHENTICATED = "authenticated"
"""Key in the request's state of the principal the guard authenticated before reading the body."""
# Accept a caller's id only if it is short and printable, so it cannot forge log lines.
_SAFE_ID = re.compile(r"^[A-Za-z0-9._:@/+=-]{1,128}$")

log = structlog.stdlib.get_logger("taskmaster.access")


class RequestContextMiddleware:
    """Pure ASGI (no body buffering): binds `request_id` for every log line, writes one access line."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = _request_id(scope)
        scope.setdefault("state", {})["request_id"] = request_id
        structlog.contextvars.clear_contextvars()
        structlog.contextvars.bind_contextvars(request_id=request_id)
        started = time.perf_counter()
        status = 500

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                headers = list(message.get("headers", []))
                headers.append((b"x-request-id", request_id.encode()))
                message["headers"] = headers
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            log.info(
                "request",
                method=scope["method"],
                path=scope["path"],
                status=status,
                duration_ms=round((time.perf_counter() - started) * 1000, 2),
            )
            structlog.contextvars.clear_contextvars()


def _request_id(scope: Scope) -> str:
    for name, value in scope["headers"]:
        if name == b"x-request-id":
            candidate: str = value.decode("latin-1")
            if _SAFE_ID.match(candidate):
                return candidate
            break
    return uuid.uuid4().hex


# Bounds on what a request may carry before any route sees it. JSON bodies nest a few levels in practice (project
# settings); 64 leaves room and stays far below the recursion the parser and serializers can take.
MAX_JSON_DEPTH = 64
MAX_HEADER_BYTES = 8 * 1024
MAX_URL_BYTES = 8 * 1024
MAX_HEADERS_TOTAL_BYTES = 32 * 1024


class RequestGuardMiddleware:
    """Refuses before it reads: URL and header sizes, NUL characters, credentials, then the body within a size and a
    time.

    For a request with a body under `/api`, the credential is checked before a byte of the body is read, so an
    unauthenticated client cannot make the server buffer or parse anything (401 before 413, 400 or 422). Every body
    (webhooks too) must fit `server.max_body_bytes` (413, chunked bodies included) and arrive within
    `server.body_timeout_seconds` (408, and the connection is closed); a client that goes away mid-body is noted
    in one log line. An `/api` JSON body is then checked for depth and NUL characters, and replayed to the route.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        refusal = _refuse_headers(scope) or _refuse_nul_outside_body(scope)
        if refusal is not None:
            await refusal(scope, receive, send)
            return
        api = scope["path"].startswith("/api/") or scope["path"] == "/api"
        if not _has_body(scope):
            await self.app(scope, receive, send)
            return
        services = scope["app"].state.services
        if api:
            refusal = await _authenticate(scope, services)
            if refusal is not None:
                await refusal(scope, receive, send)
                return
        settings = services.settings.server
        body = await _read_body(receive, scope, settings.max_body_bytes, settings.body_timeout_seconds)
        if isinstance(body, Response):
            await body(scope, receive, send)
            return
        if body is None:
            log.info("client went away before sending the whole body", method=scope["method"], path=scope["path"])
            return
        if api and (refusal := _refuse_json(scope, body)) is not None:
            await refusal(scope, receive, send)
            return
        await self.app(scope, _replay(body, receive), send)


def _header(scope: Scope, name: bytes) -> bytes | None:
    for key, value in scope["headers"]:
        if key == name:
            return bytes(value)
    return None


def _has_body(scope: Scope) -> bool:
    if _header(scope, b"transfer-encoding") is not None:
        return True
    length = _header(scope, b"content-length")
    if length is None:
        return False
    return length.strip() not in (b"", b"0")


def _refuse_headers(scope: Scope) -> Response | None:
    target = len(scope.get("raw_path") or scope["path"].encode()) + len(scope.get("query_string", b""))
    if target > MAX_URL_BYTES:
        return _closing(problem(414, f"the request's path and query exceed {MAX_URL_BYTES} bytes"))
    total = 0
    for name, value in scope["headers"]:
        total += len(name) + len(value)
        if len(value) > MAX_HEADER_BYTES:
            header = name.decode("latin-1")[:64]
            return _closing(problem(400, f"header {header} is longer than {MAX_HEADER_BYTES} bytes"))
    if total > MAX_HEADERS_TOTAL_BYTES:
        return _closing(problem(413, f"the request's headers exceed {MAX_HEADERS_TOTAL_BYTES} bytes in total"))
    length = _header(scope, b"content-length")
    if length is not None and not length.strip().isdigit():
        return _closing(problem(400, "header content-length is not a number of bytes"))
    return None


def _refuse_nul_outside_body(scope: Scope) -> Response | None:
    if "\x00" in scope["path"]:
        return _invalid("path", "contains a NUL character")
    query = scope.get("query_string", b"")
    if b"%00" in query or b"\x00" in query:
        for name, value in parse_qsl(query.decode("latin-1"), keep_blank_values=True):
            if "\x00" in name or "\x00" in value:
                return _invalid(f"query.{name.replace(chr(0), '')}", "contains a NUL character")
    return None


async def _authenticate(scope: Scope, services: Services) -> Response | None:
    """Authenticate an `/api` request that has a body, before reading it; the route's check reuses the result."""
    authorization = _header(scope, b"authorization")
    scheme, _, credential = (authorization or b"").decode("latin-1").partition(" ")
    try:
        if scheme.lower() != "bearer" or not credential.strip():
            raise Unauthenticated("missing credentials: send 'Authorization: Bearer <token>'")
        async with services.db.autocommit_session() as session:
            principal = await auth_service.authenticate(
                session, services.settings, credential.strip(), cache=services.principals
            )
    except Unauthenticated as exc:
        return _closing(problem(401, exc.detail, title=exc.title, code=exc.code))
    scope.setdefault("state", {})[AUTHENTICATED] = principal
    return None


async def _read_body(receive: Receive, scope: Scope, limit: int, seconds: float) -> bytes | Response | None:
    """The whole body, or the refusal to send (413, 408), or None when the client disconnected."""
    declared = _header(scope, b"content-length")
    if declared is not None and int(declared) > limit:
        return _closing(problem(413, f"the body is larger than {limit} bytes", title="Payload too large"))
    chunks: list[bytes] = []
    size = 0
    try:
        async with asyncio.timeout(seconds):
            while True:
                message = await receive()
                if message["type"] == "http.disconnect":
                    return None
                chunk: bytes = message.get("body", b"")
                size += len(chunk)
                if size > limit:
                    return _closing(problem(413, f"the body is larger than {limit} bytes", title="Payload too large"))
                chunks.append(chunk)
                if not message.get("more_body", False):
                    return b"".join(chunks)
    except TimeoutError:
        log.info("request body too slow", method=scope["method"], path=scope["path"], received_bytes=size)
        return _closing(problem(408, f"the body did not arrive within {seconds:g} s", title="Request timeout"))


def _replay(body: bytes, receive: Receive) -> Receive:
    """A `receive` that hands the buffered body over once, then waits on the client (for its disconnect)."""
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay


def _refuse_json(scope: Scope, body: bytes) -> Response | None:
    """422 for a JSON body nested deeper than `MAX_JSON_DEPTH` or holding a NUL character; other bodies pass."""
    content_type = (_header(scope, b"content-type") or b"").decode("latin-1").split(";")[0].strip().lower()
    if not body or not (content_type == "application/json" or content_type.endswith("+json")):
        return None
    try:
        document = json.loads(body)
    except RecursionError:
        return _invalid("body", f"JSON nested more than {MAX_JSON_DEPTH} levels deep")
    except ValueError:
        return None  # the route answers with the parser's own message
    problem_at = _json_problem(document)
    return None if problem_at is None else _invalid(*problem_at)


def _json_problem(document: Any) -> tuple[str, str] | None:
    """Where a decoded JSON document nests too deep or holds a NUL character, and what is wrong; None if fine."""
    stack: list[tuple[str, Any, int]] = [("body", document, 1)]
    while stack:
        where, value, depth = stack.pop()
        if isinstance(value, str):
            if "\x00" in value:
                return where, "contains a NUL character"
            continue
        if not isinstance(value, dict | list):
            continue
        if depth > MAX_JSON_DEPTH:
            return "body", f"JSON nested more than {MAX_JSON_DEPTH} levels deep"
        if isinstance(value, dict):
            for key, item in value.items():
                if "\x00" in key:
                    return where, "a key contains a NUL character"
                stack.append((f"{where}.{key}", item, depth + 1))
        else:
            stack.extend((f"{where}.{index}", item, depth + 1) for index, item in enumerate(value))
    return None


def _invalid(location: str, message: str) -> Response:
    return problem(
        422,
        f"{location}: {message}",
        title="Invalid input",
        code="invalid_input",
        errors=[{"location": location, "message": message}],
    )


def _closing(response: Response) -> Response:
    """The response, telling the client the connection ends with it: the rest of its request is not read."""
    response.headers["connection"] = "close"
    return response
