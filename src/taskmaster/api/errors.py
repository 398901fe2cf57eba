"""Domain errors rendered as HTTP (the status is the error class's `http_status`): every error body is
`application/problem+json` (RFC 9457)."""

from __future__ import annotations

from http import HTTPStatus
from typing import Any

import structlog
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from taskmaster.core import errors
from taskmaster.core.logging import current_request_id

PROBLEM_JSON = "application/problem+json"

log = structlog.stdlib.get_logger("taskmaster.api")


def problem(
    status: int, detail: str, *, title: str | None = None, code: str | None = None, **extra: Any
) -> JSONResponse:
    body: dict[str, Any] = {
        "type": f"https://taskmaster.dev/problems/{code}" if code else "about:blank",
        "title": title or HTTPStatus(status).phrase,
        "status": status,
        "detail": detail,
        **extra,
    }
    request_id = current_request_id()
    if request_id:
        body["request_id"] = request_id
    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
    return JSONResponse(body, status_code=status, media_type=PROBLEM_JSON, headers=headers)


async def _domain_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, errors.TaskmasterError)
    status = errors.http_status(exc)
    if status >= 500:
        log.error("request failed", error=exc.detail, code=exc.code)
    return problem(status, exc.detail, title=exc.title, code=exc.code, **exc.extra)


async def _validation_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    problems = [{"location": ".".join(str(p) for p in err["loc"]), "message": err["msg"]} for err in exc.errors()]
    summary = "; ".join(f"{p['location']}: {p['message']}" for p in problems)
    return problem(422, summary, title="Invalid input", code="invalid_input", errors=problems)


async def _http_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    return problem(exc.status_code, str(exc.detail))


async def _unexpected_error(_: Request, exc: Exception) -> JSONResponse:
    log.exception("unhandled error", error_type=type(exc).__name__)
    return problem(500, "an unexpected error occurred; the server log has the details", code="internal")


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(errors.TaskmasterError, _domain_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(Exception, _unexpected_error)
