"""The one exception root. Domain code raises these; each class names the HTTP status a door answers it with
(`http_status`), which the HTTP doors (`api/errors.py`, the AgentAPI server) render."""

from __future__ import annotations

from typing import Any, ClassVar


class TaskmasterError(Exception):
    """Root of every error Taskmaster raises on purpose: `code` for machines, `detail` for people."""

    code = "error"
    title = "Taskmaster error"
    http_status: ClassVar[int] = 500
    """The status an HTTP door answers with; a subclass without its own is a server fault."""

    def __init__(self, detail: str, **extra: Any) -> None:
        super().__init__(detail)
        self.detail = detail
        self.extra = extra


class InvalidInput(TaskmasterError):
    code = "invalid_input"
    title = "Invalid input"
    http_status = 422


class MalformedRequest(InvalidInput):
    """The request itself is unreadable (a missing header, a body that is not JSON), before any meaning."""

    code = "malformed_request"
    title = "Malformed request"
    http_status = 400


class NotFound(TaskmasterError):
    code = "not_found"
    title = "Not found"
    http_status = 404


class Conflict(TaskmasterError):
    code = "conflict"
    title = "Conflict"
    http_status = 409


class Unauthenticated(TaskmasterError):
    code = "unauthenticated"
    title = "Authentication required"
    http_status = 401


class PermissionDenied(TaskmasterError):
    code = "permission_denied"
    title = "Permission denied"
    http_status = 403


class Unavailable(TaskmasterError):
    """A part Taskmaster depends on (database, worker, remote service) cannot be reached."""

    code = "unavailable"
    title = "Service unavailable"
    http_status = 503


def http_status(exc: BaseException) -> int:
    """The HTTP status for an exception: its class's `http_status` for Taskmaster's errors, else 500."""
    return exc.http_status if isinstance(exc, TaskmasterError) else 500
