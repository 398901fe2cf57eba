"""Async client of the Codegen API's agent runs: create, read, resume, list, and the organisation's repositories.

Shapes follow Codegen's published OpenAPI description (docs.codegen.com/api-reference, `docs/api-reference/
openapi3.json` in codegen-sh/codegen) and its SDK (`codegen.agents.agent`): `CreateAgentRunInput`, `AgentRunResponse`
(integer `id`, free-text `status`, `github_pull_requests[].url|head_branch_name`), `ResumeAgentRunInput`; errors are
`{"message", "status_code"}` (402 plan limit, 403, 404, 429) or FastAPI's `{"detail": [{loc, msg, type}]}` (422).
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections import deque
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, Literal, TypeVar

import httpx
from pydantic import BaseModel, ConfigDict, ValidationError

from taskmaster.core import http
from taskmaster.core.errors import InvalidInput

DEFAULT_API_URL = "https://api.codegen.com"
REQUEST_KEY = "taskmaster_request"
"""The metadata key whose value makes one create request recognisable among the organisation's runs."""

AgentType = Literal["codegen", "claude_code"]
Bucket = Literal["create", "other"]
_M = TypeVar("_M", bound=BaseModel)


class CodegenError(http.ServiceError, service="Codegen"):
    """Codegen refused or failed a request; `extra["status"]` is the HTTP status when there was an answer."""


class CodegenAuthError(CodegenError, http.ServiceUnauthenticated):
    """Codegen did not accept the API key (CODEGEN_API_KEY)."""

    title = "Codegen API key rejected"


class CodegenPermissionDenied(CodegenError, http.ServicePermissionDenied):
    """The key's user is not a member of the organisation (CODEGEN_ORG_ID), or may not do this."""


class CodegenNotFound(CodegenError, http.ServiceNotFound):
    """No such agent run in the organisation, or (on create) no repository in it."""


class CodegenRejected(CodegenError, http.ServiceRejected):
    """Codegen found the request invalid (HTTP 400/422); the message names the fields."""


class CodegenPlanLimit(CodegenError):
    """HTTP 402: the organisation's billing plan allows no more agent runs; retrying does not help."""

    code = "codegen_plan_limit"
    title = "Codegen plan limit reached"
    http_status: ClassVar[int] = 402


class CodegenUnavailable(CodegenError, http.ServiceUnavailable):
    """Codegen could not be reached, timed out, or kept answering 5xx past the retries."""


class CodegenRateLimited(CodegenUnavailable, http.ServiceRateLimited):
    """Codegen kept answering 429 past the retries, or asked for a longer wait than allowed (`retry_after`)."""


class GithubPullRequest(BaseModel):
    """A pull request an agent run opened (`GithubPullRequestResponse`)."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    id: int
    url: str | None = None
    title: str | None = None
    head_branch_name: str | None = None
    created_at: str | None = None


class AgentRun(BaseModel):
    """One agent run as Codegen reports it (`AgentRunResponse`); `status` is free text in any case."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    id: int
    organization_id: int | None = None
    status: str | None = None
    created_at: str | None = None
    web_url: str | None = None
    result: str | None = None
    summary: str | None = None
    source_type: str | None = None
    github_pull_requests: list[GithubPullRequest] | None = None
    metadata: dict[str, Any] | None = None


class Repository(BaseModel):
    """A repository connected to the organisation (`RepoResponse`, the fields used here)."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    id: int
    name: str
    full_name: str


@dataclass(frozen=True, slots=True)
class RateLimit:
    """At most `calls` request starts in any `period` seconds."""

    calls: int
    period: float

    def __post_init__(self) -> None:
        if self.calls < 1 or self.period < 0:
            raise InvalidInput("a rate limit needs calls >= 1 and period >= 0")


@dataclass(frozen=True, slots=True)
class RateLimits:
    """Codegen's published limits: creating a run 10 per minute; every other call 60 per 30 seconds."""

    create: RateLimit = RateLimit(10, 60.0)
    other: RateLimit = RateLimit(60, 30.0)


class _Window:
    """A sliding window of request starts. Reservations are taken without awaiting (so without a lock, and usable
    from any event loop): each caller gets the first moment the window has room and sleeps until then."""

    def __init__(self, limit: RateLimit) -> None:
        self.limit = limit
        self._starts: deque[float] = deque()
        self._blocked_until = 0.0

    def reserve(self, now: float) -> float:
        """Reserve a start; returns how long to wait before it."""
        while self._starts and self._starts[0] <= now - self.limit.period:
            self._starts.popleft()
        slot = max(now, self._blocked_until)
        if len(self._starts) >= self.limit.calls:
            slot = max(slot, self._starts[-self.limit.calls] + self.limit.period)
        self._starts.append(slot)
        return slot - now

    def block(self, until: float) -> None:
        """After a 429, nobody using this window starts a request before `until`."""
        self._blocked_until = max(self._blocked_until, until)

    def room_at(self, now: float) -> float:
        """Seconds until our own record of starts leaves room for one more (0 when it has room now)."""
        live = [start for start in self._starts if start > now - self.limit.period]
        if len(live) < self.limit.calls:
            return 0.0
        return max(0.0, live[-self.limit.calls] + self.limit.period - now)


class Limiter:
    """The pacing of one API key and organisation, shared by every client using them (see `shared_limiter`)."""

    def __init__(self, limits: RateLimits | None = None) -> None:
        self.limits = limits or RateLimits()
        self._windows: dict[Bucket, _Window] = {
            "create": _Window(self.limits.create),
            "other": _Window(self.limits.other),
        }

    def window(self, bucket: Bucket) -> _Window:
        return self._windows[bucket]

    async def acquire(self, bucket: Bucket) -> None:
        wait = self._windows[bucket].reserve(time.monotonic())
        if wait > 0:
            await asyncio.sleep(wait)


_SHARED: dict[tuple[str, int, str], Limiter] = {}


def shared_limiter(api_url: str, org_id: int, api_key: str) -> Limiter:
    """The one limiter of this process for an API key and organisation (Codegen counts per key), made on first use."""
    # The key's tail is enough to tell keys apart here and keeps the whole key out of a long-lived dict.
    key = (api_url.rstrip("/"), org_id, api_key[-8:])
    limiter = _SHARED.get(key)
    if limiter is None:
        limiter = _SHARED[key] = Limiter()
    return limiter


@dataclass(frozen=True, slots=True)
class RetryPolicy(http.RetryPolicy):
    """How hard the client tries (see `http.RetryPolicy`). 5xx and transport failures: `max_retries` retries. 429:
    up to `max_rate_limit_retries` retries, each after `Retry-After` when given, else after the time our window
    needs to free a slot (at least the backoff); a wait longer than `max_rate_limit_wait` is not waited out but
    raised as `CodegenRateLimited`."""

    label: ClassVar[str] = "Codegen retry policy"

    max_retries: int = 4
    max_rate_limit_wait: float = 120.0
    max_rate_limit_retries: int = 6


# Failures where the request never reached the server: safe to send again even when it creates something.
_NOT_SENT = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout)
# Answers that say the request was not acted on (the gateway or the service turned it away).
_NOT_ACTED_ON = frozenset({502, 503, 504})


class _Ambiguous(Exception):
    """A request that changes something may or may not have taken effect (500, or the answer was lost)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class CodegenClient:
    """The Codegen API for one organisation, with a bearer API key.

    Lifecycle: built without network access; the HTTP connection pool opens on first use; `aclose()` closes it.
    Concurrency: safe for concurrent calls; every client of the same key and organisation shares one `Limiter`
    unless given its own, so parallel agents keep to Codegen's rates together.
    Errors: 401 `CodegenAuthError`, 402 `CodegenPlanLimit`, 403 `CodegenPermissionDenied`, 404 `CodegenNotFound`,
    400/422 `CodegenRejected`, 429 past the retries `CodegenRateLimited`, 5xx and transport failures past the
    retries `CodegenUnavailable`. A create whose answer was lost (500, a dropped connection) is looked up among the
    organisation's runs by its request id before it is sent again, so a retry never makes a second run; a resume
    in that state is not sent again (`CodegenUnavailable` says so).
    """

    def __init__(
        self,
        *,
        api_key: str,
        org_id: int,
        api_url: str = DEFAULT_API_URL,
        timeout: float = 30.0,
        retry: RetryPolicy | None = None,
        limiter: Limiter | None = None,
        user_agent: str = "Taskmaster",
    ) -> None:
        if not api_key:
            raise InvalidInput("the Codegen client needs an API key (CODEGEN_API_KEY)")
        if not api_url.startswith(("http://", "https://")):
            raise InvalidInput(f"CODEGEN_API_URL must start with http:// or https://, not {api_url!r}")
        self.org_id = org_id
        self.api_url = api_url.rstrip("/")
        self._api_key = api_key
        self._timeout = timeout
        self.retry = retry or RetryPolicy()
        self.limiter = limiter or shared_limiter(self.api_url, org_id, api_key)
        self._user_agent = user_agent
        self._client: httpx.AsyncClient | None = None

    def __repr__(self) -> str:
        return f"CodegenClient(api_url={self.api_url!r}, org_id={self.org_id}, api_key=[redacted])"

    async def create_run(
        self,
        prompt: str,
        *,
        repo_id: int | None = None,
        model: str | None = None,
        agent_type: AgentType | None = None,
        metadata: Mapping[str, Any] | None = None,
    ) -> AgentRun:
        """Start an agent run (`POST …/agent/run`). `metadata` is stored with the run; a `taskmaster_request` id is
        added to it so that a create whose answer was lost is found instead of made twice."""
        if not prompt.strip():
            raise InvalidInput("a Codegen agent run needs a non-empty prompt")
        request_id = uuid.uuid4().hex
        body: dict[str, Any] = {"prompt": prompt, "metadata": {**(metadata or {}), REQUEST_KEY: request_id}}
        if repo_id is not None:
            body["repo_id"] = repo_id
        if model:
            body["model"] = model
        if agent_type:
            body["agent_type"] = agent_type

        async def already_made() -> dict[str, Any] | None:
            run = await self._find_request(request_id)
            return None if run is None else run.model_dump()

        data = await self._call(
            "POST", "/agent/run", "create", action="create an agent run", json=body, on_ambiguous=already_made
        )
        return _parse(AgentRun, data, "create an agent run")

    async def get_run(self, run_id: int) -> AgentRun:
        """The run's status and results (`GET …/agent/run/{id}`)."""
        data = await self._call("GET", f"/agent/run/{int(run_id)}", "other", action=f"read agent run {run_id}")
        return _parse(AgentRun, data, f"read agent run {run_id}")

    async def resume_run(self, run_id: int, prompt: str) -> AgentRun:
        """Send a follow-up to a run (`POST …/agent/run/resume`)."""
        if not prompt.strip():
            raise InvalidInput("a follow-up to a Codegen agent run needs a non-empty prompt")
        data = await self._call(
            "POST",
            "/agent/run/resume",
            "other",
            action=f"resume agent run {run_id}",
            json={"agent_run_id": int(run_id), "prompt": prompt},
        )
        return _parse(AgentRun, data, f"resume agent run {run_id}")

    async def list_runs(self, *, skip: int = 0, limit: int = 100, source_type: str | None = "API") -> list[AgentRun]:
        """The organisation's runs, newest first (`GET …/agent/runs`; API-made ones by default)."""
        params: dict[str, Any] = {"skip": skip, "limit": limit}
        if source_type:
            params["source_type"] = source_type
        data = await self._call("GET", "/agent/runs", "other", action="list agent runs", params=params)
        return [_parse(AgentRun, item, "list agent runs") for item in _items(data, "list agent runs")]

    async def find_repo_id(self, full_name: str) -> int | None:
        """The id Codegen gives the repository `owner/name` (`GET …/repos`, every page); None when not connected."""
        wanted = full_name.strip().lower()
        skip = 0
        while True:
            data = await self._call(
                "GET", "/repos", "other", action="list repositories", params={"skip": skip, "limit": 100}
            )
            items = _items(data, "list repositories")
            for item in items:
                repo = _parse(Repository, item, "list repositories")
                if repo.full_name.lower() == wanted:
                    return repo.id
            skip += len(items)
            if not items or skip >= int(data.get("total", 0)):
                return None

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    async def _find_request(self, request_id: str) -> AgentRun | None:
        # Newest first: a run created moments ago is on the first page.
        for run in await self.list_runs(limit=100):
            if (run.metadata or {}).get(REQUEST_KEY) == request_id:
                return run
        return None

    def _http(self) -> httpx.AsyncClient:
        if self._client is None:
            self._client = httpx.AsyncClient(
                base_url=f"{self.api_url}/v1/organizations/{self.org_id}",
                headers={
                    "Authorization": f"Bearer {self._api_key}",
                    "Accept": "application/json",
                    "User-Agent": self._user_agent,
                },
                timeout=self._timeout,
            )
        return self._client

    async def _call(
        self,
        method: str,
        path: str,
        bucket: Bucket,
        *,
        action: str,
        json: dict[str, Any] | None = None,
        params: dict[str, Any] | None = None,
        on_ambiguous: Callable[[], Awaitable[dict[str, Any] | None]] | None = None,
    ) -> dict[str, Any]:
        changes = method != "GET"
        failures = 0
        limited = 0
        while True:
            try:
                response = await self._send(method, path, bucket, json=json, params=params)
            except _NOT_SENT as exc:
                failures = await self._failed(failures, action, f"cannot connect: {type(exc).__name__}")
                continue
            except httpx.TransportError as exc:
                reason = f"the connection failed: {type(exc).__name__}"
                if changes:
                    response_data = await self._settle(action, reason, on_ambiguous)
                    if response_data is not None:
                        return response_data
                failures = await self._failed(failures, action, reason)
                continue
            status = response.status_code
            if status < 300:
                return _json_object(response, action)
            message = _message(response)
            if status == 429:
                limited += 1
                await self._rate_limited(response, bucket, limited, action, message)
                continue
            if status >= 500:
                reason = f"HTTP {status}: {message}"
                if changes and status not in _NOT_ACTED_ON:
                    response_data = await self._settle(action, reason, on_ambiguous)
                    if response_data is not None:
                        return response_data
                failures = await self._failed(failures, action, reason)
                continue
            raise _error_for(status, message, action)

    async def _send(
        self,
        method: str,
        path: str,
        bucket: Bucket,
        *,
        json: dict[str, Any] | None,
        params: dict[str, Any] | None,
    ) -> httpx.Response:
        await self.limiter.acquire(bucket)
        return await self._http().request(method, path, json=json, params=params)

    async def _settle(
        self,
        action: str,
        reason: str,
        on_ambiguous: Callable[[], Awaitable[dict[str, Any] | None]] | None,
    ) -> dict[str, Any] | None:
        """After a change may have happened: what it made, if it can be found; None to send it again."""
        if on_ambiguous is None:
            raise CodegenUnavailable(
                f"Codegen {action}: {reason}; it may or may not have been received, so it is not sent again"
            )
        return await on_ambiguous()

    async def _failed(self, failures: int, action: str, reason: str) -> int:
        if failures >= self.retry.max_retries:
            raise CodegenUnavailable(f"Codegen {action}: {reason} (after {failures + 1} attempts)")
        await asyncio.sleep(self.retry.backoff(failures))
        return failures + 1

    async def _rate_limited(
        self, response: httpx.Response, bucket: Bucket, count: int, action: str, message: str
    ) -> None:
        window = self.limiter.window(bucket)
        asked = http.retry_after_seconds(response.headers)
        now = time.monotonic()
        wait = asked if asked is not None else max(window.room_at(now), self.retry.backoff(count - 1))
        if count > self.retry.max_rate_limit_retries or wait > self.retry.max_rate_limit_wait:
            raise CodegenError.for_status(
                429, f"Codegen {action}: HTTP 429: {message} (rate limit: retry after {wait:.1f} s)", retry_after=wait
            )
        # Everyone sharing the limit waits: sending more now would only earn more 429s.
        window.block(now + wait)


# What a refusal's message adds to Codegen's own words: what to check or do.
_HINTS = {
    401: "check CODEGEN_API_KEY",
    402: "the Codegen plan's limit on agent runs is reached: upgrade the plan or wait for it to renew",
    403: "check CODEGEN_ORG_ID and the key's membership",
}


def _error_for(status: int, message: str, action: str) -> CodegenError:
    detail = f"Codegen {action}: HTTP {status}: {message}"
    if status in _HINTS:
        detail = f"{detail} ({_HINTS[status]})"
    if status == 402:
        return CodegenPlanLimit(detail, status=status)
    return CodegenError.for_status(status, detail)


def _message(response: httpx.Response) -> str:
    """The service's own words: `message` (Codegen's errors), `detail` (FastAPI's, a string or field errors)."""
    try:
        data = response.json()
    except ValueError:
        text = response.text.strip()
        return text[:300] if text else response.reason_phrase
    if isinstance(data, dict):
        if isinstance(data.get("message"), str):
            return str(data["message"])
        detail = data.get("detail")
        if isinstance(detail, str):
            return detail
        if isinstance(detail, list):
            parts = []
            for item in detail[:10]:
                if isinstance(item, dict):
                    where = ".".join(str(part) for part in item.get("loc", []) if part != "body")
                    parts.append(f"{where or '(body)'}: {item.get('msg', 'invalid')}")
            if parts:
                return "; ".join(parts)
    return str(data)[:300]


def _json_object(response: httpx.Response, action: str) -> dict[str, Any]:
    try:
        data = response.json()
    except ValueError:
        raise CodegenError(f"Codegen {action}: the answer is not JSON", status=response.status_code) from None
    if not isinstance(data, dict):
        raise CodegenError(f"Codegen {action}: the answer is not a JSON object", status=response.status_code)
    return data


def _items(data: dict[str, Any], action: str) -> list[dict[str, Any]]:
    items = data.get("items")
    if not isinstance(items, list) or not all(isinstance(item, dict) for item in items):
        raise CodegenError(f"Codegen {action}: the answer has no list of items")
    return items


def _parse(model: type[_M], data: Mapping[str, Any], action: str) -> _M:
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        first = exc.errors(include_url=False, include_input=False)[0]
        where = ".".join(str(part) for part in first["loc"]) or "(root)"
        raise CodegenError(f"Codegen {action}: unexpected answer: {where}: {first['msg']}") from None
