"""Request guards of the AgentAPI server: Host allow-list, foreign Origin, bearer token, body type and size.

An agent's terminal runs commands, so a request that reaches it must come from its owner: a browser page elsewhere
(cross-site "simple request") or a stranger on the network must be refused before any body is read.
"""

from __future__ import annotations

import hmac
import ipaddress
import json
from collections.abc import Awaitable, Callable, MutableMapping, Sequence
from http import HTTPStatus
from typing import Any
from urllib.parse import parse_qs

from starlette.exceptions import HTTPException

from taskmaster.core import errors

PROBLEM_JSON = "application/problem+json"
MAX_UPLOAD_BYTES = 10 << 20
# A message is typed into a terminal: a megabyte is a long prompt already, and bounds the memory one request takes.
DEFAULT_MAX_BODY_BYTES = 1 << 20
# Multipart framing around an upload's bytes.
UPLOAD_OVERHEAD_BYTES = 64 << 10
STATE_CHANGING = frozenset({"POST", "PUT", "PATCH", "DELETE"})

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
AsgiApp = Callable[[Scope, Receive, Send], Awaitable[None]]


def parse_allowed_hosts(items: Sequence[str]) -> list[str]:
    """Hostnames without ports or schemes (as the reference validates them); `*` allows every host."""
    if not items:
        raise errors.InvalidInput("the allowed hosts list must not be empty")
    if "*" in items:
        return ["*"]
    hosts = []
    for item in items:
        if any(c.isspace() for c in item) or "," in item:
            raise errors.InvalidInput(f"'{item}' contains whitespace or comma characters, which are not allowed")
        if "://" in item:
            raise errors.InvalidInput(f"'{item}' must not include http:// or https://")
        name = _hostname(item)
        if name is None:
            raise errors.InvalidInput(f"'{item}' must not include a port")
        hosts.append(name)
    return hosts


def _hostname(host: str) -> str | None:
    """The hostname of a Host header value, lower-cased, brackets dropped; None when it carries a port."""
    host = host.strip().lower()
    if host.startswith("["):
        end = host.find("]")
        name, rest = host[1:end], host[end + 1 :]
    else:
        name, _, port = host.partition(":")
        rest = ":" + port if port else ""
    return name if not rest else None


def _host_of(header: str) -> str:
    header = header.strip().lower()
    if header.startswith("["):
        return header[1 : header.find("]")]
    return header.split(":", 1)[0]


def is_loopback(host: str) -> bool:
    """True for `localhost` and loopback addresses (127.0.0.0/8, ::1)."""
    if host.strip("[]").lower() == "localhost":
        return True
    try:
        address = ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return False
    # A dual-stack socket shows IPv4 clients as `::ffff:127.0.0.1`.
    mapped = getattr(address, "ipv4_mapped", None)
    return address.is_loopback or (mapped is not None and mapped.is_loopback)


class HostGuard:
    """Host allow-list (400, in the reference's words): outermost, so a DNS-rebinding page is refused first."""

    def __init__(self, app: AsgiApp, *, allowed_hosts: list[str]) -> None:
        self.app = app
        self.allowed_hosts = allowed_hosts

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and "*" not in self.allowed_hosts:
            host = _headers(scope).get("host", "")
            if not host or _host_of(host) not in self.allowed_hosts:
                message = "Invalid host header. Allowed hosts: " + ", ".join(self.allowed_hosts) + "\n"
                await _plain(send, 400, message)
                return
        await self.app(scope, receive, send)


class RequestGuard:
    """Inside CORS, before any route: who may ask (Origin, token, peer) and what the body may be (type, size).

    Refusals, in order: 403 for a state-changing request from a foreign `Origin` (or from a non-loopback peer when
    there is no token), 401 without the bearer token, 415 for a body that is not JSON (multipart for `/upload`),
    413 for a body over the limit (by `Content-Length`, or counted as it streams in).
    """

    def __init__(
        self,
        app: AsgiApp,
        *,
        token: str | None,
        allowed_origins: list[str],
        max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
    ) -> None:
        self.app = app
        self.token = token
        self.allowed_origins = allowed_origins
        self.max_body_bytes = max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] == "OPTIONS":
            await self.app(scope, receive, send)
            return
        headers = _headers(scope)
        refusal = self._refuse(scope, headers)
        if refusal is not None:
            await _problem(send, *refusal)
            return
        if scope["method"] not in STATE_CHANGING:
            await self.app(scope, receive, send)
            return
        limit = self._limit(scope)
        length = headers.get("content-length")
        if length is not None:
            if not length.isascii() or not length.isdigit():
                await _problem(send, 400, f"invalid Content-Length header {length[:40]!r}")
                return
            if int(length) > limit:
                await _problem(send, 413, f"request body exceeds the limit of {limit} bytes")
                return
        await self._bounded(scope, receive, send, limit)

    def _refuse(self, scope: Scope, headers: dict[str, str]) -> tuple[int, str] | None:
        method = scope["method"]
        origin = headers.get("origin")
        if method in STATE_CHANGING and origin is not None and not self._origin_allowed(origin, scope, headers):
            return 403, f"requests from origin {origin[:200]!r} are not allowed (see --allowed-origins)"
        if self.token is None:
            client = scope.get("client")
            if client is not None and not is_loopback(str(client[0])):
                return 403, "this server runs without authentication and answers loopback clients only"
        elif not self._authorized(scope, headers):
            return 401, "a valid bearer token is required (Authorization header or ?token=)"
        if method in ("POST", "PUT", "PATCH"):
            wanted = "multipart/form-data" if scope["path"].endswith("/upload") else "application/json"
            given = headers.get("content-type", "").split(";", 1)[0].strip().lower()
            if given != wanted:
                return 415, f"the request body must be {wanted}, not {given or 'missing'!r}"
        return None

    def _origin_allowed(self, origin: str, scope: Scope, headers: dict[str, str]) -> bool:
        origin = origin.strip().rstrip("/").lower()
        if "*" in self.allowed_origins or origin in self.allowed_origins:
            return True
        # The server's own pages (same origin) may post to it.
        return origin == f"{scope.get('scheme', 'http')}://{headers.get('host', '')}".lower()

    def _authorized(self, scope: Scope, headers: dict[str, str]) -> bool:
        assert self.token is not None
        scheme, _, value = headers.get("authorization", "").partition(" ")
        if scheme.lower() == "bearer":
            given = value.strip()
        else:
            given = parse_qs(scope.get("query_string", b"").decode("latin-1")).get("token", [""])[0]
        return bool(given) and hmac.compare_digest(given.encode(), self.token.encode())

    def _limit(self, scope: Scope) -> int:
        if scope["path"].endswith("/upload"):
            return MAX_UPLOAD_BYTES + UPLOAD_OVERHEAD_BYTES
        return self.max_body_bytes

    async def _bounded(self, scope: Scope, receive: Receive, send: Send, limit: int) -> None:
        """Run the app with a body counted as it arrives; past `limit`, the app stops and the client gets 413."""
        received = 0
        started = False

        async def counted_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise _BodyTooLarge(limit)
            return message

        async def watched_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, counted_receive, watched_send)
        except _BodyTooLarge as exc:
            if started:
                raise
            await _problem(send, 413, str(exc.detail))


class _BodyTooLarge(HTTPException):
    """Raised from `receive` when a streamed body passes the limit (an HTTPException, so FastAPI passes it on)."""

    def __init__(self, limit: int) -> None:
        super().__init__(413, f"request body exceeds the limit of {limit} bytes")


def _headers(scope: Scope) -> dict[str, str]:
    return {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}


async def _plain(send: Send, status: int, text: str) -> None:
    await _respond(send, status, text.encode(), [(b"content-type", b"text/plain; charset=utf-8")])


async def _problem(send: Send, status: int, detail: str) -> None:
    payload = json.dumps({"title": HTTPStatus(status).phrase, "status": status, "detail": detail}).encode()
    headers = [(b"content-type", PROBLEM_JSON.encode())]
    if status == 401:
        headers.append((b"www-authenticate", b"Bearer"))
    await _respond(send, status, payload, headers)


async def _respond(send: Send, status: int, payload: bytes, headers: list[tuple[bytes, bytes]]) -> None:
    headers = [*headers, (b"x-content-type-options", b"nosniff"), (b"content-length", str(len(payload)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": payload})
