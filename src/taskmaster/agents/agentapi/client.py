"""Async client for any AgentAPI server (coder/agentapi or ours): status, messages, send, upload, events.

Tolerant of server differences: missing `transport`/`agent_type`, `$schema` fields, nanosecond timestamps.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import httpx

from taskmaster.agents.base import AgentConversation
from taskmaster.core.errors import TaskmasterError

if TYPE_CHECKING:
    from taskmaster.config import Settings

DEFAULT_URL = "http://localhost:3284"
_FRACTION = re.compile(r"(\.\d{1,6})\d*")


class AgentApiError(TaskmasterError):
    """The server refused a request; `status` is the HTTP status and `detail` the problem's detail."""

    code = "agentapi_error"
    title = "AgentAPI error"

    def __init__(self, detail: str, *, status: int = 0) -> None:
        super().__init__(detail, status=status)
        self.status = status


class AgentExited(AgentApiError):
    """The agent reported an error (it exited) while we waited for its reply."""

    code = "agent_exited"


def parse_time(value: str) -> datetime:
    """RFC 3339 with any number of fractional digits (Go prints nanoseconds) and `Z` or an offset."""
    text = _FRACTION.sub(lambda m: m.group(1), value.strip().replace("Z", "+00:00").replace("z", "+00:00"), count=1)
    parsed = datetime.fromisoformat(text)
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


@dataclass(frozen=True)
class AgentMessage:
    id: int
    role: Literal["agent", "user"]
    content: str
    time: datetime

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> AgentMessage:
        content = data.get("content", data.get("message", ""))
        role: Literal["agent", "user"] = "user" if data.get("role") == "user" else "agent"
        return cls(int(data["id"]), role, str(content), parse_time(str(data["time"])))


@dataclass(frozen=True)
class AgentStatus:
    """`waiting_for` (our server only): the question the agent shows, `{"question": …, "choices": [{key, label}]}`;
    answer it with `send_raw(choice["key"])`."""

    status: Literal["running", "stable"]
    agent_type: str | None = None
    transport: str | None = None
    waiting_for: dict[str, Any] | None = None

    @property
    def stable(self) -> bool:
        return self.status == "stable"


@dataclass(frozen=True)
class AgentEvent:
    """One SSE event: `type` is message_update, status_change, agent_error (or whatever else the server sends)."""

    type: str
    data: dict[str, Any]


@dataclass
class Transcript:
    """The conversation rebuilt from events; replays after a reconnect merge by message id."""

    messages: dict[int, AgentMessage] = field(default_factory=dict)
    status: str | None = None
    errors: list[dict[str, Any]] = field(default_factory=list)
    waiting_for: dict[str, Any] | None = None

    def apply(self, event: AgentEvent) -> None:
        if event.type == "message_update":
            message = AgentMessage.from_json(event.data)
            self.messages[message.id] = message
        elif event.type == "status_change":
            self.status = str(event.data.get("status"))
        elif event.type == "agent_error":
            self.errors.append(event.data)
        elif event.type == "waiting_for":
            waiting = event.data.get("waiting_for")
            self.waiting_for = waiting if isinstance(waiting, dict) else None

    def ordered(self) -> list[AgentMessage]:
        return [self.messages[i] for i in sorted(self.messages)]


class AgentApiClient:
    """A client for one agent (the server root, or one session of a multi-session server).

    Lifecycle: use as `async with`, or call `aclose()`. Safe to share between tasks of one event loop.
    Requests raise AgentApiError for problem responses and httpx.TransportError when the server is unreachable.
    """

    def __init__(
        self,
        base_url: str | None = None,
        *,
        settings: Settings | None = None,
        token: str | None = None,
        timeout: float = 30.0,
        http: httpx.AsyncClient | None = None,
        prefix: str = "",
    ) -> None:
        url = base_url or (settings.agentapi.url if settings is not None else DEFAULT_URL)
        if token is None and settings is not None:
            token = settings.agentapi.token or _saved_token(settings.agentapi_token_file)
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self._owns_http = http is None
        # A user message returns only once the agent reacts, which can take the reference up to ~30 s.
        self._http = http or httpx.AsyncClient(base_url=url.rstrip("/"), headers=headers, timeout=timeout)
        self._prefix = prefix.rstrip("/")

    async def __aenter__(self) -> AgentApiClient:
        return self

    async def __aexit__(self, *_exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        if self._owns_http:
            await self._http.aclose()

    def session(self, session_id: str) -> AgentApiClient:
        """A client for one session of a multi-session server, sharing this client's connection pool."""
        return AgentApiClient(http=self._http, prefix=f"/sessions/{session_id}")

    async def _request(self, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        response = await self._http.request(method, self._prefix + path, **kwargs)
        if response.status_code >= 400:
            raise _error(response)
        data = response.json()
        return data if isinstance(data, dict) else {"value": data}

    async def status(self) -> AgentStatus:
        data = await self._request("GET", "/status")
        status: Literal["running", "stable"] = "stable" if data.get("status") == "stable" else "running"
        waiting = data.get("waiting_for")
        return AgentStatus(
            status, data.get("agent_type"), data.get("transport"), waiting if isinstance(waiting, dict) else None
        )

    async def messages(self) -> list[AgentMessage]:
        data = await self._request("GET", "/messages")
        return [AgentMessage.from_json(m) for m in data.get("messages") or []]

    async def send(self, content: str, type: Literal["user", "raw"] = "user") -> None:
        """Send a message; a `user` message returns once the agent starts on it."""
        await self._request("POST", "/message", json={"content": content, "type": type})

    async def send_raw(self, keys: str) -> None:
        await self.send(keys, "raw")

    async def upload(self, filename: str, data: bytes) -> str:
        """Upload a file (10 MiB at most); returns the path where the server stored it."""
        result = await self._request("POST", "/upload", files={"file": (filename, data, "application/octet-stream")})
        return str(result["filePath"])

    async def events(self, *, reconnect: bool = True, max_delay: float = 5.0) -> AsyncIterator[AgentEvent]:
        """Server-sent events, forever. After a dropped connection it reconnects (with backoff) and the server
        replays its state, so merge by message id (see `Transcript`)."""
        delay = 0.25
        while True:
            try:
                async with self._http.stream(
                    "GET",
                    self._prefix + "/events",
                    headers={"Accept": "text/event-stream"},
                    timeout=httpx.Timeout(10.0, read=None),
                ) as response:
                    if response.status_code >= 400:
                        await response.aread()
                        raise _error(response)
                    delay = 0.25
                    async for event in _parse_sse(response):
                        yield event
            except (httpx.TransportError, httpx.RemoteProtocolError):
                if not reconnect:
                    raise
            if not reconnect:
                return
            await asyncio.sleep(delay)
            delay = min(delay * 2, max_delay)

    async def wait_stable(self, timeout: float = 60.0, poll: float = 0.1) -> AgentStatus:  # noqa: ASYNC109
        async with asyncio.timeout(timeout):
            while True:
                status = await self.status()
                if status.stable:
                    return status
                await asyncio.sleep(poll)

    async def send_and_wait(self, text: str, timeout: float = 600.0, poll: float = 0.1) -> AgentMessage:  # noqa: ASYNC109
        """Send a user message once the agent is idle and return its whole reply once it is idle again.

        Raises TimeoutError after `timeout` seconds, AgentExited when the agent reports an error meanwhile.
        """
        async with asyncio.timeout(timeout):
            await self.wait_stable(timeout)
            before = await self.messages()
            last_id = before[-1].id if before else -1
            errors: list[dict[str, Any]] = []
            watcher = asyncio.create_task(self._collect_errors(errors))
            try:
                await self.send(text)
                while True:
                    if errors:
                        raise AgentExited(str(errors[0].get("message", "agent error")))
                    if (await self.status()).stable:
                        new = [m for m in await self.messages() if m.id > last_id]
                        replies = [m for m in new if m.role == "agent"]
                        if replies and any(m.role == "user" for m in new):
                            return replies[-1]
                    await asyncio.sleep(poll)
            finally:
                watcher.cancel()

    async def _collect_errors(self, sink: list[dict[str, Any]]) -> None:
        # Errors replayed on connect are old news only for servers that replay them (ours does not).
        async for event in self.events():
            if event.type == "agent_error":
                sink.append(event.data)

    # Multi-session servers (ours): these live at the root, whatever the prefix.

    async def create_session(
        self,
        command: list[str],
        *,
        agent_type: str = "custom",
        cwd: str | None = None,
        env: dict[str, str] | None = None,
        **options: Any,
    ) -> str:
        payload = {"type": agent_type, "command": command, "cwd": cwd, "env": env or {}, **options}
        response = await self._http.post("/sessions", json=payload)
        if response.status_code >= 400:
            raise _error(response)
        return str(response.json()["id"])

    async def list_sessions(self) -> list[dict[str, Any]]:
        response = await self._http.get("/sessions")
        if response.status_code >= 400:
            raise _error(response)
        sessions: list[dict[str, Any]] = response.json()["sessions"]
        return sessions

    async def describe_session(self, session_id: str) -> dict[str, Any]:
        """`GET /sessions/{id}`: status, `waiting_for`, `alive`, `exit_code`, command, cwd."""
        response = await self._http.get(f"/sessions/{session_id}")
        if response.status_code >= 400:
            raise _error(response)
        data: dict[str, Any] = response.json()
        return data

    async def delete_session(self, session_id: str) -> None:
        response = await self._http.delete(f"/sessions/{session_id}")
        if response.status_code >= 400:
            raise _error(response)


def _saved_token(path: Path) -> str | None:
    """The token a local `agentapi serve` saved, if there is one."""
    try:
        return path.read_text().strip() or None
    except OSError:
        return None


def _error(response: httpx.Response) -> AgentApiError:
    detail = response.text.strip() or response.reason_phrase
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict):
        detail = str(body.get("detail") or body.get("title") or detail)
    return AgentApiError(f"{response.status_code}: {detail}", status=response.status_code)


async def _parse_sse(response: httpx.Response) -> AsyncIterator[AgentEvent]:
    name, data = "", list[str]()
    async for line in response.aiter_lines():
        if not line:
            if data:
                payload = "\n".join(data)
                try:
                    parsed = json.loads(payload)
                except ValueError:
                    parsed = {"raw": payload}
                yield AgentEvent(name or "message", parsed if isinstance(parsed, dict) else {"value": parsed})
            name, data = "", []
            continue
        if line.startswith(":"):
            continue  # keep-alive comment
        key, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if key == "event":
            name = value
        elif key == "data":
            data.append(value)


def _conforms(client: AgentApiClient) -> AgentConversation:
    return client  # mypy checks that the client satisfies the pipeline's protocol
