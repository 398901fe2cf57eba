"""The AgentAPI HTTP server: the reference's single-session API at `/`, and per session under `/sessions/{id}/`.

Bodies and errors follow coder/agentapi (huma): JSON with a `$schema` link, errors as `application/problem+json`.
Guards (guards.py), outermost first: Host allow-list (400), CORS, then Origin, bearer token, body type and size.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from http import HTTPStatus
from pathlib import Path
from typing import Any, Literal

from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, ConfigDict, Field
from sse_starlette import EventSourceResponse, ServerSentEvent
from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.middleware.cors import CORSMiddleware

from taskmaster.agents.agentapi.conversation import Conversation, SessionConfig
from taskmaster.agents.agentapi.guards import (
    DEFAULT_MAX_BODY_BYTES,
    MAX_UPLOAD_BYTES,
    PROBLEM_JSON,
    HostGuard,
    RequestGuard,
    parse_allowed_hosts,
)
from taskmaster.agents.agentapi.rules import AGENT_TYPES
from taskmaster.agents.agentapi.sessions import SessionManager
from taskmaster.core import errors

# Longest file name most filesystems take, in bytes.
MAX_FILENAME_BYTES = 255
DEFAULT_ALLOWED_HOSTS = ("localhost", "127.0.0.1", "[::1]")
DEFAULT_ALLOWED_ORIGINS = ("http://localhost:3284", "http://localhost:3000", "http://localhost:3001")
NO_BUFFERING = {
    # Proxies (nginx and others) hold back streamed responses unless told not to.
    "Cache-Control": "no-cache, no-store, must-revalidate",
    "Pragma": "no-cache",
    "Expires": "0",
    "X-Accel-Buffering": "no",
    "X-Proxy-Buffering": "no",
}


def _schema_url(request: Request, name: str) -> str:
    host = request.headers.get("host", "localhost")
    return f"{request.url.scheme}://{host}/schemas/{name}.json"


def body(request: Request, name: str, data: dict[str, Any], status: int = 200) -> JSONResponse:
    """A JSON body as huma writes it: `$schema` first, and a `Link` header to the same schema."""
    url = _schema_url(request, name)
    return JSONResponse({"$schema": url, **data}, status_code=status, headers={"Link": f'<{url}>; rel="describedBy"'})


def problem(request: Request, status: int, detail: str, errors_: list[dict[str, Any]] | None = None) -> JSONResponse:
    content: dict[str, Any] = {
        "$schema": _schema_url(request, "ErrorModel"),
        "title": HTTPStatus(status).phrase,
        "status": status,
        "detail": detail,
    }
    if errors_:
        content["errors"] = errors_
    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
    return JSONResponse(content, status_code=status, media_type=PROBLEM_JSON, headers=headers)


def _install_error_handlers(app: FastAPI) -> None:
    async def domain(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, errors.TaskmasterError)
        return problem(request, errors.http_status(exc), exc.detail)

    async def validation(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, RequestValidationError)
        details = [
            {"message": err["msg"], "location": ".".join(str(p) for p in err["loc"]), "value": err.get("input")}
            for err in exc.errors()
        ]
        return problem(request, 422, "validation failed", json.loads(json.dumps(details, default=str)))

    async def http(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, StarletteHTTPException)
        return problem(request, exc.status_code, str(exc.detail))

    app.add_exception_handler(errors.TaskmasterError, domain)
    app.add_exception_handler(RequestValidationError, validation)
    app.add_exception_handler(StarletteHTTPException, http)


def _validate_message(payload: Any) -> tuple[str, str] | list[dict[str, Any]]:
    """(content, type), or huma-style error details for a body that does not match MessageRequestBody."""
    if not isinstance(payload, dict):
        return [{"message": "expected object", "location": "body", "value": payload}]
    problems: list[dict[str, Any]] = [
        {"message": f"expected required property {name} to be present", "location": "body", "value": payload}
        for name in ("content", "type")
        if name not in payload
    ]
    problems += [
        {"message": "unexpected property", "location": f"body.{key}", "value": value}
        for key, value in payload.items()
        if key not in ("$schema", "content", "type")
    ]
    content, kind = payload.get("content"), payload.get("type")
    if "content" in payload and not isinstance(content, str):
        problems.append({"message": "expected string", "location": "body.content", "value": content})
    if "type" in payload and kind not in ("user", "raw"):
        problems.append({"message": 'expected value to be one of "raw, user"', "location": "body.type", "value": kind})
    if problems:
        return problems
    assert isinstance(content, str) and isinstance(kind, str)
    return content, kind


def _upload_name(filename: str | None) -> str | list[dict[str, Any]]:
    """The name an upload is stored under (its base name), or error details naming what is wrong with it."""
    name = (filename or "upload").replace("\\", "/").rsplit("/", 1)[-1] or "upload"
    reason = None
    if name in (".", ".."):
        reason = "must name a file, not '.' or '..'"
    elif "\0" in name or any(ord(c) < 32 for c in name):
        reason = "must not contain control characters"
    elif len(name.encode()) > MAX_FILENAME_BYTES:
        reason = f"must be at most {MAX_FILENAME_BYTES} bytes long"
    if reason is None:
        return name
    return [{"message": f"file name {reason}", "location": "body.file.filename", "value": (filename or "")[:300]}]


def conversation_routes(resolve: Callable[..., Conversation], upload_dir: Callable[..., Path]) -> APIRouter:
    """The single-session API, over whichever conversation `resolve` (a FastAPI dependency) returns."""
    router = APIRouter()
    # Dependencies as defaults, not Annotated aliases: the aliases would be local names that FastAPI cannot resolve
    # from this module's postponed annotations.
    conv_dep = Depends(resolve)
    dir_dep = Depends(upload_dir)

    @router.get("/status", summary="Get status")
    async def get_status(request: Request, conv: Conversation = conv_dep) -> Response:
        data: dict[str, Any] = {"agent_type": conv.agent_type, "status": conv.status, "transport": "pty"}
        if conv.waiting_for is not None:
            # Beyond the reference, and only while a question is shown: what the agent asks and how to answer.
            data["waiting_for"] = conv.waiting_for.as_json()
        return body(request, "StatusResponseBody", data)

    @router.get("/messages", summary="Get messages")
    async def get_messages(request: Request, conv: Conversation = conv_dep) -> Response:
        return body(request, "MessagesResponseBody", {"messages": [m.as_json() for m in conv.messages]})

    @router.post("/message", summary="Post message")
    async def post_message(request: Request, conv: Conversation = conv_dep) -> Response:
        raw = await request.body()
        if not raw:
            return problem(request, 400, "request body is required")
        try:
            payload = json.loads(raw)
        except ValueError as exc:
            return problem(request, 400, f"invalid JSON: {exc}")
        except RecursionError:
            return problem(request, 400, "invalid JSON: nested too deeply")
        parsed = _validate_message(payload)
        if isinstance(parsed, list):
            return problem(request, 422, "validation failed", parsed)
        content, kind = parsed
        if kind == "user":
            await conv.send_user(content)
        else:
            conv.send_raw(content)
        return body(request, "MessageResponseBody", {"ok": True})

    @router.post("/upload", summary="Post upload")
    async def post_upload(request: Request, directory: Path = dir_dep) -> Response:
        form = await request.form(max_files=1, max_fields=10)
        try:
            upload = form.get("file")
            if not isinstance(upload, UploadFile):
                detail = [{"message": "expected required property file to be present", "location": "body.file"}]
                return problem(request, 422, "validation failed", detail)
            data = await upload.read(MAX_UPLOAD_BYTES + 1)
            if len(data) > MAX_UPLOAD_BYTES:
                return problem(request, 400, "file size exceeds 10MB limit")
            name = _upload_name(upload.filename)
            if isinstance(name, list):
                return problem(request, 422, "validation failed", name)
            checksum = hashlib.sha256(data).hexdigest()[:16]
            target_dir = directory / checksum
            await asyncio.to_thread(target_dir.mkdir, parents=True, exist_ok=True)
            target = target_dir / name
            await asyncio.to_thread(target.write_bytes, data)
        finally:
            await form.close()
        return body(request, "UploadResponseBody", {"ok": True, "filePath": str(target)})

    @router.get("/events", summary="Subscribe to events", response_class=EventSourceResponse)
    async def events(request: Request, conv: Conversation = conv_dep) -> EventSourceResponse:
        replay, queue = conv.subscribe()

        async def stream() -> AsyncIterator[ServerSentEvent]:
            try:
                for event in replay:
                    yield ServerSentEvent(data=json.dumps(event.data), event=event.name)
                while True:
                    item = await queue.get()
                    if item is None:
                        return
                    yield ServerSentEvent(data=json.dumps(item.data), event=item.name)
            finally:
                conv.unsubscribe(queue)

        ping = request.app.state.ping_interval
        return EventSourceResponse(stream(), ping=ping, sep="\n", headers=NO_BUFFERING)

    return router


class CreateSession(BaseModel):
    """POST /sessions: what to run. `command` is an argv list (a string is split by the shell's rules)."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    agent_type: Literal["claude", "aider", "goose", "codex", "gemini", "custom"] = Field("custom", alias="type")
    command: list[str] | str
    cwd: str | None = None
    env: dict[str, str] = Field(default_factory=dict)
    term_width: int = Field(80, ge=10, le=1000)
    term_height: int = Field(1000, ge=10, le=10000)
    prompt_regex: str | None = None
    queue: bool = False


def session_routes(manager: SessionManager, stability_window: float) -> APIRouter:
    router = APIRouter(prefix="/sessions")

    @router.post("", status_code=201, summary="Start a session")
    async def create(request: Request, spec: CreateSession) -> Response:
        import shlex

        argv = shlex.split(spec.command) if isinstance(spec.command, str) else spec.command
        if spec.cwd is not None and not await asyncio.to_thread(Path(spec.cwd).is_dir):
            raise errors.InvalidInput(f"cwd {spec.cwd!r} is not a directory")
        config = SessionConfig(
            argv=argv,
            agent_type=spec.agent_type,
            cwd=spec.cwd,
            env=spec.env,
            columns=spec.term_width,
            lines=spec.term_height,
            prompt_regex=spec.prompt_regex,
            queue=spec.queue,
            stability_window=stability_window,
        )
        session_id = await manager.create(config)
        return body(request, "SessionCreatedBody", {"id": session_id}, status=201)

    @router.get("", summary="List sessions")
    async def list_sessions(request: Request) -> Response:
        return body(request, "SessionsResponseBody", {"sessions": [manager.describe(s) for s in manager.sessions]})

    @router.get("/{session_id}", summary="Describe a session")
    async def describe(request: Request, session_id: str) -> Response:
        return body(request, "SessionBody", manager.describe(session_id))

    @router.delete("/{session_id}", summary="End a session")
    async def delete(request: Request, session_id: str) -> Response:
        await manager.delete(session_id)
        return body(request, "SessionDeletedBody", {"ok": True})

    def resolve(session_id: str) -> Conversation:
        return manager.get(session_id)

    def upload_dir(session_id: str) -> Path:
        manager.get(session_id)
        return manager.upload_dir(session_id)

    router.include_router(conversation_routes(resolve, upload_dir), prefix="/{session_id}")
    return router


def create_app(
    manager: SessionManager,
    *,
    multi: bool = True,
    allowed_hosts: Sequence[str] = DEFAULT_ALLOWED_HOSTS,
    allowed_origins: Sequence[str] = DEFAULT_ALLOWED_ORIGINS,
    auth_token: str | None,
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
    stability_window: float = 2.0,
    ping_interval: float = 15.0,
    on_startup: Callable[[SessionManager], Awaitable[None]] | None = None,
) -> FastAPI:
    """The server app over `manager`. Root routes serve the manager's default session; `multi` adds /sessions.

    `auth_token` has no default: None is a choice (no authentication, loopback clients only), made by the caller.

    The app's lifespan runs `on_startup(manager)` (start sessions there: agents belong to the serving loop) and
    closes the manager, ending every agent, on shutdown. Raises InvalidInput for a malformed host list.
    """
    hosts = parse_allowed_hosts(list(allowed_hosts))
    origins = ["*"] if "*" in allowed_origins else [o.rstrip("/").lower() for o in allowed_origins]

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        try:
            if on_startup is not None:
                await on_startup(manager)
            yield
        finally:
            await manager.close()

    app = FastAPI(
        lifespan=lifespan,
        title="AgentAPI",
        version="0.12.1",
        description="HTTP API for Claude Code, Goose, Aider, Codex, Gemini and custom terminal agents.",
    )
    app.state.ping_interval = ping_interval
    app.state.manager = manager
    _install_error_handlers(app)

    def resolve_default() -> Conversation:
        return manager.default

    def default_upload_dir() -> Path:
        manager.default  # noqa: B018 - 404 when there is no default session
        return manager.upload_dir(manager.default_id)

    app.include_router(conversation_routes(resolve_default, default_upload_dir))
    if multi:
        app.include_router(session_routes(manager, stability_window))

    # Added innermost first: the request guard runs inside CORS so that preflights and refusals get its headers.
    app.add_middleware(RequestGuard, token=auth_token, allowed_origins=origins, max_body_bytes=max_body_bytes)
    app.add_middleware(
        CORSMiddleware,
        allow_origins=origins,
        allow_credentials=True,
        allow_methods=["GET", "POST", "PUT", "DELETE", "OPTIONS"],
        allow_headers=["Accept", "Authorization", "Content-Type", "X-CSRF-Token"],
        expose_headers=["Link"],
        max_age=300,
    )
    app.add_middleware(HostGuard, allowed_hosts=hosts)
    return app


__all__ = ["AGENT_TYPES", "create_app", "parse_allowed_hosts", "problem"]
