"""What the clients of remote HTTP services (the forges, Codegen) share: each service's error family and the error an
HTTP error answer becomes, how long a `Retry-After` asks to wait, and how hard a client retries."""

from __future__ import annotations

import email.utils
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any, ClassVar, Literal, Self

from taskmaster.core.backoff import Backoff
from taskmaster.core.errors import (
    Conflict,
    InvalidInput,
    NotFound,
    PermissionDenied,
    TaskmasterError,
    Unauthenticated,
    Unavailable,
)

Kind = Literal[
    "error", "unauthenticated", "permission_denied", "not_found", "conflict", "rejected", "unavailable", "rate_limited"
]
_STATUS_KINDS: dict[int, Kind] = {
    400: "rejected",
    401: "unauthenticated",
    403: "permission_denied",
    404: "not_found",
    409: "conflict",
    410: "not_found",
    422: "rejected",
    429: "rate_limited",
}


def status_kind(status: int) -> Kind:
    """What an HTTP error answer's status says went wrong ("error" when it says nothing more specific)."""
    return _STATUS_KINDS.get(status, "unavailable" if status >= 500 else "error")


class ServiceError(TaskmasterError):
    """A remote service refused or failed a request; `extra["status"]` is the HTTP status when it answered.

    A service's root error subclasses this with `service=` (its name in titles; lowered, in codes), and its error of
    one kind subclasses that root and the kind's class below. Each class gets `code` (`<service>_<kind>`) and
    `title` from its kind unless it sets its own, and `for_status` finds it by its kind.
    """

    code = "service_error"
    title = "Remote service request failed"
    service: ClassVar[str] = "Remote service"
    kind: ClassVar[Kind] = "error"
    kind_title: ClassVar[str] = "{service} request failed"
    _members: ClassVar[dict[Kind, type[ServiceError]]]

    def __init_subclass__(
        cls, *, service: str | None = None, kind: Kind | None = None, kind_title: str = "", **kwargs: Any
    ) -> None:
        super().__init_subclass__(**kwargs)
        if kind is not None:
            cls.kind, cls.kind_title = kind, kind_title
            return
        if service is not None:
            cls.service = service
            cls._members = {}
        elif not hasattr(cls, "_members"):
            raise TypeError(f"{cls.__name__}: a service's root error names its service (service=...)")
        if "code" not in cls.__dict__:
            cls.code = f"{cls.service.lower()}_{cls.kind}"
        if "title" not in cls.__dict__:
            cls.title = cls.kind_title.format(service=cls.service)
        # The first class of a kind is the service's own; later subclasses (more specific errors) do not replace it.
        cls._members.setdefault(cls.kind, cls)

    @classmethod
    def for_status(cls, status: int, detail: str, *, retry_after: float | None = None, **extra: Any) -> Self:
        """The service's error for an HTTP error answer: its class of the kind `status` means (this class when that
        is not one of its own), with `status` in `extra`. A `retry_after` (seconds) makes it a rate limit, whatever
        the status, and goes into `extra` rounded to milliseconds."""
        kind: Kind = "rate_limited" if retry_after is not None else status_kind(status)
        error_class = cls._members.get(kind, cls)
        if not issubclass(error_class, cls):
            error_class = cls
        if retry_after is not None:
            extra["retry_after"] = round(retry_after, 3)
        return error_class(detail, **extra, status=status)


class ServiceUnauthenticated(
    ServiceError, Unauthenticated, kind="unauthenticated", kind_title="{service} credentials rejected"
):
    """The service did not accept the credentials (HTTP 401)."""


class ServicePermissionDenied(
    ServiceError, PermissionDenied, kind="permission_denied", kind_title="{service} permission denied"
):
    """The credentials may not do this (HTTP 403)."""


class ServiceNotFound(ServiceError, NotFound, kind="not_found", kind_title="Not found on {service}"):
    """No such thing on the service (HTTP 404, 410)."""


class ServiceConflict(ServiceError, Conflict, kind="conflict", kind_title="{service} conflict"):
    """What was to be made exists already, or the service's state does not allow it (HTTP 409)."""


class ServiceRejected(ServiceError, InvalidInput, kind="rejected", kind_title="{service} rejected the request"):
    """The service found the request invalid (HTTP 400, 422)."""


class ServiceUnavailable(ServiceError, Unavailable, kind="unavailable", kind_title="{service} unavailable"):
    """The service could not be reached, timed out, or kept answering 5xx past the retries."""


class ServiceRateLimited(ServiceUnavailable, kind="rate_limited", kind_title="{service} rate limit reached"):
    """The service's rate limit outlasted the retries or asked for a longer wait than allowed (`retry_after`)."""


# Retry-After gives whole seconds (RFC 9110); a fraction is accepted, as some services send one.
_SECONDS = re.compile(r"\d+(?:\.\d+)?")


def retry_after_seconds(headers: Mapping[str, str], *, now: float | None = None) -> float | None:
    """How long `Retry-After` asks to wait, in seconds (it gives seconds or an HTTP date; a past date is 0);
    None when it is absent or unreadable."""
    value = next((value for name, value in headers.items() if name.lower() == "retry-after"), None)
    if value is None:
        return None
    value = value.strip()
    if _SECONDS.fullmatch(value):
        return float(value)
    try:
        moment = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, moment.timestamp() - (time.time() if now is None else now))


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How hard a client of a remote service tries: `max_retries` retries after 5xx answers and failed
    connections, each after a backoff (base·2^n, capped at `backoff_max`, the upper half jittered); a rate limit
    asking for a longer wait than `max_rate_limit_wait` is raised instead of waited out.
    """

    label: ClassVar[str] = "retry policy"

    max_retries: int = 3
    backoff_base: float = 1.0
    backoff_max: float = 30.0
    max_rate_limit_wait: float = 60.0

    def __post_init__(self) -> None:
        negative = [
            f"{field.name}={getattr(self, field.name)}" for field in fields(self) if getattr(self, field.name) < 0
        ]
        if negative:
            raise InvalidInput(f"{self.label} values must not be negative: {', '.join(negative)}")

    def backoff(self, retry: int) -> float:
        """The pause before retry number `retry` (0-based)."""
        return Backoff(base=self.backoff_base, cap=self.backoff_max).delay(retry + 1)
