"""`Forge` on GitHub's REST API through githubkit (github.com or GitHub Enterprise Server), with a personal
token or as a GitHub App installation.
"""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import AsyncGenerator, Awaitable, Callable, Generator, Sequence
from contextlib import asynccontextmanager, contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar
from urllib.parse import quote

import httpx
from cryptography.hazmat.primitives.serialization import load_pem_private_key
from githubkit import AppAuthStrategy, AppInstallationAuthStrategy, GitHub, TokenAuthStrategy
from githubkit.cache import MemCacheStrategy
from githubkit.config import Config, get_config
from githubkit.exception import (
    AuthCredentialError,
    GitHubException,
    RateLimitExceeded,
    RequestError,
    RequestFailed,
    RequestTimeout,
)
from githubkit.rest import Paginator
from githubkit.throttling import BaseThrottler
from githubkit.typing import RetryOption
from githubkit_schemas.latest.models import IssueComment

from taskmaster.core.errors import InvalidInput
from taskmaster.core.redact import redact
from taskmaster.forges.base import (
    Annotation,
    CheckRunSpec,
    CheckStatus,
    CommitState,
    ForgeAuthError,
    ForgeCapabilities,
    ForgeError,
    ForgeNotFound,
    ForgeUnavailable,
    IssueRef,
    Permission,
    PullRequestDetails,
    PullRequestRef,
    annotation_batches,
    error_for_status,
    is_marked,
    marked_body,
)
from taskmaster.forges.throttle import (
    IDEMPOTENT_METHODS,
    MIN_RETRY_WAIT,
    RetryPolicy,
    ThrottleSettings,
    WriteThrottle,
)

T = TypeVar("T")

DEFAULT_BASE_URL = "https://api.github.com"
FORGE = "GitHub"
# GitHub's limits: a commit status description is 140 characters, a check run's summary and text 65535.
_STATUS_DESCRIPTION_MAX = 140
_OUTPUT_TEXT_MAX = 65535
_COMMENTS_PER_PAGE = 100

# GitHub's commit statuses know pending/success/failure/error only. Skipped counts as passing, as GitHub itself
# treats a skipped required check; canceled did not complete, which GitHub calls an error.
_STATUS_STATE: dict[CommitState, str] = {
    CommitState.PENDING: "pending",
    CommitState.RUNNING: "pending",
    CommitState.SUCCESS: "success",
    CommitState.FAILURE: "failure",
    CommitState.ERROR: "error",
    CommitState.CANCELED: "error",
    CommitState.SKIPPED: "success",
}


class GitHubForge:
    """A `Forge` on GitHub. Give either `token` (a personal or fine-grained token) or `app_id` + `private_key`
    (PEM) for a GitHub App; `installation_id` pins the App's installation, otherwise each repository's
    installation is looked up once and remembered.

    Installation tokens are obtained and cached by githubkit (until a minute before they expire); the first call
    through an installation runs alone so that concurrent first calls do not each request a token. Each
    installation (or the token) has its own `WriteThrottle`. Retries follow `retry` (see `RetryPolicy`) through
    githubkit's `auto_retry` hook; 5xx answers are retried whatever the method, as GitHub's own clients do (a
    create that GitHub stored behind a failing gateway may then exist twice; statuses and check runs are keyed
    by name, and comments are found again by their marker). Every request goes through githubkit's async
    methods over one shared connection pool.
    """

    def __init__(
        self,
        *,
        token: str | None = None,
        app_id: int | str | None = None,
        private_key: str | None = None,
        installation_id: int | None = None,
        base_url: str = DEFAULT_BASE_URL,
        timeout: float = 30.0,
        retry: RetryPolicy | None = None,
        throttle: ThrottleSettings | None = None,
        user_agent: str = "Taskmaster",
        ssl_verify: bool = True,
    ) -> None:
        if (token is None) == (app_id is None):
            raise InvalidInput("GitHubForge needs either a token or a GitHub App id and private key, not both")
        if app_id is not None:
            if not private_key:
                raise InvalidInput("a GitHub App needs its private key (PEM)")
            try:
                load_pem_private_key(private_key.encode(), password=None)
            except (ValueError, TypeError):
                raise InvalidInput("the GitHub App private key is not an unencrypted PEM private key") from None
        self._token = token
        self._app_id = app_id
        self._private_key = private_key
        self._installation_id = installation_id
        self._base_url = base_url
        self._timeout = timeout
        self._retry = retry or RetryPolicy()
        self._throttle = throttle or ThrottleSettings()
        self._user_agent = user_agent
        self._ssl_verify = ssl_verify
        self._transport: _SharedTransport | None = None
        # Per forge, not githubkit's process-wide default: tokens of two Apps or two servers never mix.
        self._cache = MemCacheStrategy()
        self._clients: dict[int | None, GitHub[Any]] = {}
        self._app_client: GitHub[Any] | None = None
        self._installations: dict[tuple[str, str], int] = {}
        self._tokens_ready: set[int] = set()
        self._first_use: dict[int, asyncio.Lock] = {}
        self._comment_locks: weakref.WeakValueDictionary[tuple[str, int, str], asyncio.Lock] = (
            weakref.WeakValueDictionary()
        )
        self._closed = False

    def __repr__(self) -> str:
        mode = f"app_id={self._app_id!r}" if self._app_id is not None else "token=[redacted]"
        return f"GitHubForge(base_url={self._base_url!r}, {mode})"

    @property
    def name(self) -> str:
        return "github"

    @property
    def capabilities(self) -> ForgeCapabilities:
        # GitHub lets only Apps write check runs; a token reports with commit statuses.
        as_app = self._app_id is not None
        return ForgeCapabilities(check_runs=as_app, annotations=as_app, inline_review_comments=False)

    async def set_commit_status(
        self,
        repo: str,
        sha: str,
        *,
        context: str,
        state: CommitState,
        description: str | None = None,
        target_url: str | None = None,
    ) -> None:
        body: Any = {"state": _STATUS_STATE[state], "context": context}
        if description:
            body["description"] = _shorten(description, _STATUS_DESCRIPTION_MAX)
        if target_url:
            body["target_url"] = target_url

        async def call(gh: GitHub[Any], owner: str, name: str) -> None:
            await gh.rest.repos.async_create_commit_status(owner, name, sha, data=body)

        await self._call(repo, f"set status {context!r} on {sha[:12]}", call)

    async def create_check_run(self, repo: str, spec: CheckRunSpec) -> str:
        batches = annotation_batches(spec.annotations)
        body: Any = {"name": spec.name, "head_sha": spec.head_sha, **_check_fields(spec, batches[0])}

        async def call(gh: GitHub[Any], owner: str, name: str) -> str:
            response = await gh.rest.checks.async_create(owner, name, data=body)
            check_run_id = response.parsed_data.id
            await self._add_annotations(gh, owner, name, check_run_id, spec, batches[1:])
            return str(check_run_id)

        return await self._call(repo, f"create check run {spec.name!r}", call)

    async def update_check_run(self, repo: str, check_run_id: str, spec: CheckRunSpec) -> None:
        batches = annotation_batches(spec.annotations)
        body: Any = {"name": spec.name, **_check_fields(spec, batches[0])}
        number = _check_run_number(check_run_id)

        async def call(gh: GitHub[Any], owner: str, name: str) -> None:
            await gh.rest.checks.async_update(owner, name, number, data=body)
            await self._add_annotations(gh, owner, name, number, spec, batches[1:])

        await self._call(repo, f"update check run {spec.name!r}", call)

    async def _add_annotations(
        self,
        gh: GitHub[Any],
        owner: str,
        name: str,
        check_run_id: int,
        spec: CheckRunSpec,
        batches: Sequence[tuple[Annotation, ...]],
    ) -> None:
        # GitHub appends the annotations of each update to the run's; the output text is repeated so it stays.
        for batch in batches:
            data: Any = {"output": _output(spec, batch)}
            await gh.rest.checks.async_update(owner, name, check_run_id, data=data)

    async def upsert_comment(self, repo: str, number: int, *, marker: str, body: str) -> str:
        text = marked_body(marker, body)
        key = (repo, number, marker)
        lock = self._comment_locks.get(key)
        if lock is None:
            lock = self._comment_locks[key] = asyncio.Lock()

        async def call(gh: GitHub[Any], owner: str, name: str) -> str:
            comments: Paginator[IssueComment] = gh.rest.paginate(
                gh.rest.issues.async_list_comments,
                owner=owner,
                repo=name,
                issue_number=number,
                per_page=_COMMENTS_PER_PAGE,
            )
            async for comment in comments:
                existing = comment.body if isinstance(comment.body, str) else None
                if is_marked(existing, marker):
                    if existing != text:
                        await gh.rest.issues.async_update_comment(owner, name, comment.id, body=text)
                    return str(comment.id)
            created = await gh.rest.issues.async_create_comment(owner, name, number, body=text)
            return str(created.parsed_data.id)

        async with lock:
            return await self._call(repo, f"comment on #{number}", call)

    async def create_branch(self, repo: str, name: str, from_sha: str) -> None:
        async def call(gh: GitHub[Any], owner: str, repo_name: str) -> None:
            await gh.rest.git.async_create_ref(owner, repo_name, ref=f"refs/heads/{name}", sha=from_sha)

        await self._call(repo, f"create branch {name!r}", call)

    async def create_pull_request(
        self, repo: str, *, head: str, base: str, title: str, body: str, draft: bool = False
    ) -> PullRequestRef:
        async def call(gh: GitHub[Any], owner: str, name: str) -> PullRequestRef:
            response = await gh.rest.pulls.async_create(
                owner, name, head=head, base=base, title=title, body=body, draft=draft
            )
            return PullRequestRef(number=response.parsed_data.number, url=response.parsed_data.html_url)

        return await self._call(repo, f"open a pull request from {head!r} into {base!r}", call)

    async def get_pull_request(self, repo: str, number: int) -> PullRequestDetails:
        async def call(gh: GitHub[Any], owner: str, name: str) -> PullRequestDetails:
            response = await gh.rest.pulls.async_get(owner, name, number)
            pull = response.parsed_data
            merged = bool(pull.merged) or pull.merged_at is not None
            # githubkit's model omits `merge_commit_sha`, which the API sends: read it from the JSON.
            merge_sha = response.json().get("merge_commit_sha") if merged else None
            return PullRequestDetails(
                number=pull.number, url=pull.html_url, title=pull.title,
                state="merged" if merged else ("open" if pull.state == "open" else "closed"),
                draft=bool(pull.draft), head_ref=pull.head.ref, head_sha=pull.head.sha, base_ref=pull.base.ref,
                merge_commit_sha=str(merge_sha) if merge_sha else None,
            )  # fmt: skip

        return await self._call(repo, f"read pull request #{number}", call)

    async def find_pull_request(self, repo: str, *, head: str, base: str | None = None) -> PullRequestRef | None:
        async def call(gh: GitHub[Any], owner: str, name: str) -> PullRequestRef | None:
            if base:
                response = await gh.rest.pulls.async_list(owner, name, state="open", head=f"{owner}:{head}", base=base)
            else:
                response = await gh.rest.pulls.async_list(owner, name, state="open", head=f"{owner}:{head}")
            pulls: list[Any] = list(response.parsed_data or [])
            for pull in pulls:
                if pull.head.ref == head:
                    return PullRequestRef(number=pull.number, url=pull.html_url)
            return None

        return await self._call(repo, f"find the pull request of {head}", call)

    async def merge_pull_request(self, repo: str, number: int, *, squash: bool = False, sha: str | None = None) -> str:
        body: Any = {"merge_method": "squash" if squash else "merge"}
        if sha is not None:
            body["sha"] = sha

        async def call(gh: GitHub[Any], owner: str, name: str) -> str:
            return (await gh.rest.pulls.async_merge(owner, name, number, data=body)).parsed_data.sha

        return await self._call(repo, f"merge pull request #{number}", call)

    async def close_pull_request(self, repo: str, number: int) -> None:
        async def call(gh: GitHub[Any], owner: str, name: str) -> None:
            await gh.rest.pulls.async_update(owner, name, number, data={"state": "closed"})

        await self._call(repo, f"close pull request #{number}", call)

    async def create_issue(self, repo: str, *, title: str, body: str, labels: Sequence[str] = ()) -> IssueRef:
        async def call(gh: GitHub[Any], owner: str, name: str) -> IssueRef:
            response = await gh.rest.issues.async_create(owner, name, title=title, body=body, labels=list(labels))
            return IssueRef(number=response.parsed_data.number, url=response.parsed_data.html_url)

        return await self._call(repo, "open an issue", call)

    async def read_file(self, repo: str, path: str, ref: str) -> bytes | None:
        async def call(gh: GitHub[Any], owner: str, name: str) -> bytes | None:
            # The raw media type answers the file's bytes, for files up to 100 MB (JSON+base64 stops at 1 MB).
            response = await gh.rest.repos.async_get_content(
                owner,
                name,
                quote(path.lstrip("/"), safe="/"),
                ref=ref,
                headers={"Accept": "application/vnd.github.raw+json"},
            )
            return response.content

        try:
            return await self._call(repo, f"read {path!r} at {ref!r}", call)
        except ForgeNotFound:
            return None

    async def user_permission(self, repo: str, login: str) -> Permission:
        async def call(gh: GitHub[Any], owner: str, name: str) -> Permission:
            response = await gh.rest.repos.async_get_collaborator_permission_level(owner, name, login)
            data = response.parsed_data
            # `role_name` tells maintain and triage apart (`permission` folds them into write and read); a custom
            # role's name is unknown here, and then `permission` is its base role.
            for candidate in (data.role_name, data.permission):
                if candidate.upper() in Permission.__members__:
                    return Permission[candidate.upper()]
            return Permission.NONE

        try:
            return await self._call(repo, f"read {login!r}'s permission", call)
        except ForgeNotFound:
            return Permission.NONE

    async def aclose(self) -> None:
        self._closed = True
        self._clients.clear()
        self._app_client = None
        if self._transport is not None:
            await self._transport.inner.aclose()
            self._transport = None

    async def _call(self, repo: str, action: str, op: Callable[[GitHub[Any], str, str], Awaitable[T]]) -> T:
        """Run `op` with the client for `repo`'s installation, turning githubkit's errors into ours."""
        if self._closed:
            raise ForgeError(f"{FORGE} client for {self._base_url} is closed", forge=FORGE)
        owner, name = _split_repo(repo)
        try:
            installation = await self._installation_for(owner, name)
            gh = self._client(installation)
            if installation is not None and installation not in self._tokens_ready:
                lock = self._first_use.setdefault(installation, asyncio.Lock())
                async with lock:
                    if installation not in self._tokens_ready:
                        result = await op(gh, owner, name)
                        self._tokens_ready.add(installation)
                        return result
            return await op(gh, owner, name)
        except GitHubException as exc:
            # `from None`: githubkit's exceptions hold the request, whose headers carry the token.
            raise self._error(exc, f"{action} on {repo}") from None

    async def _installation_for(self, owner: str, name: str) -> int | None:
        if self._app_id is None:
            return None
        if self._installation_id is not None:
            return self._installation_id
        known = self._installations.get((owner, name))
        if known is not None:
            return known
        try:
            response = await self._app().rest.apps.async_get_repo_installation(owner, name)
        except RequestFailed as exc:
            if exc.response.status_code == 404:
                raise ForgeNotFound(
                    f"{FORGE}: App {self._app_id} is not installed on {owner}/{name}", forge=FORGE, status=404
                ) from None
            raise
        installation = response.parsed_data.id
        self._installations[(owner, name)] = installation
        return installation

    def _client(self, installation: int | None) -> GitHub[Any]:
        gh = self._clients.get(installation)
        if gh is None:
            if installation is None:
                assert self._token is not None
                gh = GitHub(TokenAuthStrategy(self._token), config=self._config())
            else:
                assert self._app_id is not None and self._private_key is not None
                auth = AppInstallationAuthStrategy(self._app_id, self._private_key, installation)
                gh = GitHub(auth, config=self._config())
            self._clients[installation] = gh
        return gh

    def _app(self) -> GitHub[Any]:
        """The client authenticated as the App itself (a JWT), for finding installations."""
        if self._app_client is None:
            assert self._app_id is not None and self._private_key is not None
            self._app_client = GitHub(AppAuthStrategy(self._app_id, self._private_key), config=self._config())
        return self._app_client

    def _config(self) -> Config:
        if self._transport is None:
            self._transport = _SharedTransport(httpx.AsyncHTTPTransport(verify=self._ssl_verify))
        return get_config(
            base_url=self._base_url,
            user_agent=self._user_agent,
            timeout=self._timeout,
            async_transport=self._transport,
            cache_strategy=self._cache,
            # The HTTP cache is for reads repeated with ETags; Taskmaster mostly writes, and reads fresh content.
            http_cache=False,
            throttler=_Throttler(WriteThrottle(self._throttle)),
            auto_retry=_RetryDecision(self._retry),
        )

    def _error(self, exc: GitHubException, action: str) -> ForgeError:
        secrets = [self._token, self._private_key]
        inner = _unwrap(exc)
        if isinstance(inner, RequestFailed):
            status = inner.response.status_code
            message = redact(_failure_message(inner.response.raw_response), secrets)
            retry_after = inner.retry_after.total_seconds() if isinstance(inner, RateLimitExceeded) else None
            return error_for_status(FORGE, status, message, action, retry_after=retry_after)
        if isinstance(inner, AuthCredentialError):
            return ForgeAuthError(f"{FORGE} {action}: {redact(str(inner), secrets)}", forge=FORGE)
        if isinstance(inner, RequestTimeout):
            return ForgeUnavailable(f"{FORGE} {action}: timed out after {self._timeout:g} s", forge=FORGE)
        if isinstance(inner, RequestError):
            reason = redact(f"{type(inner.exc).__name__}: {inner.exc}", secrets)
            return ForgeUnavailable(
                f"{FORGE} at {self._base_url} {action}: could not be reached: {reason}", forge=FORGE
            )
        return ForgeError(f"{FORGE} {action}: {redact(repr(inner), secrets)}", forge=FORGE)


class _SharedTransport(httpx.AsyncBaseTransport):
    """One connection pool for every client of a forge: githubkit opens (and closes) an httpx client per request
    unless its context is entered, and a context is bound to one task; closing is left to `GitHubForge.aclose`.
    """

    def __init__(self, inner: httpx.AsyncHTTPTransport) -> None:
        self.inner = inner

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        return await self.inner.handle_async_request(request)

    async def aclose(self) -> None:
        return None


class _Throttler(BaseThrottler):
    """githubkit's throttling hook, over our `WriteThrottle` (githubkit's own limits concurrency only)."""

    def __init__(self, throttle: WriteThrottle) -> None:
        self.throttle = throttle

    @contextmanager
    def acquire(self, request: httpx.Request) -> Generator[None, Any, Any]:
        raise RuntimeError("GitHubForge makes async requests only")
        yield  # pragma: no cover

    @asynccontextmanager
    async def async_acquire(self, request: httpx.Request) -> AsyncGenerator[None, Any]:
        async with self.throttle.slot(request.method):
            yield


class _RetryDecision:
    """githubkit's `auto_retry` hook: rate limits waited out up to the policy's bound, backoff on 5xx and on
    connections that failed before the request was sent (or timed out, for idempotent methods).
    """

    def __init__(self, policy: RetryPolicy) -> None:
        self.policy = policy

    def __call__(self, exc: GitHubException, retry_count: int) -> RetryOption:
        if retry_count >= self.policy.max_retries:
            return RetryOption(False)
        inner = _unwrap(exc)
        if isinstance(inner, RateLimitExceeded):
            wait = inner.retry_after.total_seconds()
            if wait > self.policy.max_rate_limit_wait:
                return RetryOption(False)
            return RetryOption(True, timedelta(seconds=max(wait, MIN_RETRY_WAIT)))
        if isinstance(inner, RequestFailed):
            if inner.response.status_code >= 500 or inner.response.status_code == 429:
                return RetryOption(True, timedelta(seconds=self.policy.backoff(retry_count)))
            return RetryOption(False)
        if isinstance(inner, RequestTimeout):
            if inner.request.method in IDEMPOTENT_METHODS:
                return RetryOption(True, timedelta(seconds=self.policy.backoff(retry_count)))
            return RetryOption(False)
        if isinstance(inner, RequestError) and isinstance(inner.exc, httpx.ConnectError | httpx.ConnectTimeout):
            return RetryOption(True, timedelta(seconds=self.policy.backoff(retry_count)))
        return RetryOption(False)


def _unwrap(exc: GitHubException) -> GitHubException:
    """The real error: a failure inside the auth flow (the installation token request) arrives wrapped in a
    `RequestError` around githubkit's own exception.
    """
    while isinstance(exc, RequestError) and isinstance(exc.exc, GitHubException) and exc.exc is not exc:
        exc = exc.exc
    return exc


def _failure_message(response: httpx.Response) -> str:
    """GitHub's error text: `message`, plus the `errors` details a 422 carries."""
    try:
        body = response.json()
    except ValueError:
        return response.reason_phrase or "error"
    if not isinstance(body, dict):
        return response.reason_phrase or "error"
    message = str(body.get("message") or response.reason_phrase or "error")
    details = []
    for item in body.get("errors") or []:
        if isinstance(item, dict):
            text = item.get("message") or " ".join(str(item[k]) for k in ("resource", "field", "code") if k in item)
            details.append(str(text))
        else:
            details.append(str(item))
    return f"{message} ({'; '.join(details)})" if details else message


def _split_repo(repo: str) -> tuple[str, str]:
    owner, _, name = repo.partition("/")
    if not owner or not name or "/" in name:
        raise InvalidInput(f"a GitHub repository is named owner/name, got {repo!r}")
    return owner, name


def _check_run_number(check_run_id: str) -> int:
    try:
        return int(check_run_id)
    except ValueError:
        raise InvalidInput(f"a GitHub check run id is a number, got {check_run_id!r}") from None


def _check_fields(spec: CheckRunSpec, annotations: tuple[Annotation, ...]) -> dict[str, Any]:
    """The create/update body except name and head_sha, with the first batch of annotations."""
    fields: dict[str, Any] = {"status": spec.status.value}
    if spec.status is CheckStatus.COMPLETED and spec.conclusion is not None:
        fields["conclusion"] = spec.conclusion.value
    if spec.details_url:
        fields["details_url"] = spec.details_url
    if spec.external_id:
        fields["external_id"] = spec.external_id
    if spec.started_at:
        fields["started_at"] = _timestamp(spec.started_at)
    if spec.completed_at:
        fields["completed_at"] = _timestamp(spec.completed_at)
    if spec.title or spec.summary or spec.text or annotations:
        fields["output"] = _output(spec, annotations)
    return fields


def _output(spec: CheckRunSpec, annotations: tuple[Annotation, ...]) -> dict[str, Any]:
    output: dict[str, Any] = {
        "title": spec.title or spec.name,
        "summary": _shorten(spec.summary, _OUTPUT_TEXT_MAX),
    }
    if spec.text:
        output["text"] = _shorten(spec.text, _OUTPUT_TEXT_MAX)
    if annotations:
        output["annotations"] = [_annotation(item) for item in annotations]
    return output


def _annotation(item: Annotation) -> dict[str, Any]:
    annotation: dict[str, Any] = {
        "path": item.path,
        "start_line": item.start_line,
        "end_line": item.end_line,
        "annotation_level": item.level.value,
        "message": item.message,
    }
    if item.title:
        annotation["title"] = item.title
    return annotation


def _timestamp(moment: datetime) -> str:
    if moment.tzinfo is None:
        raise InvalidInput(f"check run times must be timezone-aware, got {moment.isoformat()}")
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _shorten(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"
