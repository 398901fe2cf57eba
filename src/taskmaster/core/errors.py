"""The one exception root. Domain code raises these; only `api/errors.py` maps them to HTTP."""

from __future__ import annotations

from typing import Any


class TaskmasterError(Exception):
    """Root of every error Taskmaster raises on purpose: `code` for machines, `detail` for people."""

    code = "error"
    title = "Taskmaster error"

    def __init__(self, detail: str, **extra: Any) -> None:
        super().__init__(detail)
        self.detail = detail
        self.extra = extra


class InvalidInput(TaskmasterError):
    code = "invalid_input"
    title = "Invalid input"


class MalformedRequest(InvalidInput):
    """The request itself is unreadable (a missing header, a body that is not JSON), before any meaning."""

    code = "malformed_request"
    title = "Malformed request"


class NotFound(TaskmasterError):
    code = "not_found"
    title = "Not found"


class Conflict(TaskmasterError):
    code = "conflict"
    title = "Conflict"


class Unauthenticated(TaskmasterError):
    code = "unauthenticated"
    title = "Authentication required"


class PermissionDenied(TaskmasterError):
    code = "permission_denied"
    title = "Permission denied"


class Unavailable(TaskmasterError):
    """A part Taskmaster depends on (database, worker, remote service) cannot be reached."""

    code = "unavailable"
    title = "Service unavailable"
