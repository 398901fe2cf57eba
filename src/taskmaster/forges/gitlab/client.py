"""`Forge` on GitLab's REST API v4: a small async httpx client (gitlab.com or a self-managed instance).

GitLab has no check runs: its `capabilities` say so, and a pipeline is reported with commit statuses and the merge
request comment alone (the check-run methods raise `ForgeRejected`). A review is a discussion per inline comment,
positioned with the merge request's `diff_refs`, and its body a note. It is a `PullRequestLookup`: it finds a
branch's open merge request, so code generation links the one an earlier attempt opened.
"""

from __future__ import annotations

import asyncio
import time
import weakref
from collections.abc import Mapping, Sequence
from typing import Any, Literal
from urllib.parse import quote

import httpx

from taskmaster.core.errors import InvalidInput
from taskmaster.core.redact import redact
from taskmaster.forges.base import (
    CheckRunSpec,
    CommitState,
    ForgeCapabilities,
    ForgeError,
    ForgeNotFound,
    ForgeRejected,
    ForgeUnavailable,
    IssueRef,
    Permission,
    PullRequestDetails,
    PullRequestRef,
    ReviewComment,
    error_for_status,
    is_marked,
    marked_body,
)
from taskmaster.forges.events import PullRequestState
from taskmaster.forges.throttle import (
    IDEMPOTENT_METHODS,
    RetryPolicy,
    ThrottleSettings,
    WriteThrottle,
    retry_after_seconds,
)

DEFAULT_BASE_URL = "https://gitlab.com"
FORGE = "GitLab"
_DESCRIPTION_MAX = 255
_NOTES_PER_PAGE = 100
_MERGE_REQUESTS_PER_PAGE = 100
# GitLab does not pace writes the way GitHub asks; a short gap still keeps bursts polite.
DEFAULT_THROTTLE = ThrottleSettings(max_concurrency=10, min_write_interval=0.1)

_STATUS_STATE: dict[CommitState, str] = {
    CommitState.PENDING: "pending",
    CommitState.RUNNING: "running",
    CommitState.SUCCESS: "success",
    CommitState.FAILURE: "failed",
    CommitState.ERROR: "failed",
    CommitState.CANCELED: "canceled",
    CommitState.SKIPPED: "skipped",
}

# Access levels: 5 minimal, 10 guest, 15 planner, 20 reporter, 30 developer, 40 maintainer, 50 owner.
_ACCESS_LEVELS: tuple[tuple[int, Permission], ...] = (
    (50, Permission.ADMIN),
    (40, Permission.MAINTAIN),
    (30, Permission.WRITE),
    (20, Permission.TRIAGE),
    (10, Permission.READ),
)


class GitLabForge:
    """A `Forge` on GitLab with a personal, project or group access token (sent as `PRIVATE-TOKEN`, or as
    `Authorization: Bearer` for OAuth tokens when `auth_header="bearer"`).

    Retries 429 (after `Retry-After` / `RateLimit-Reset`, up to `retry.max_rate_limit_wait`), 5xx and failed
    connections with backoff, `retry.max_retries` times; one `WriteThrottle` paces the token's requests.
    """

    def __init__(
        self,
        *,
        token: str,
        base_url: str = DEFAULT_BASE_URL,
        auth_header: Literal["private-token", "bearer"] = "private-token",
        timeout: float = 30.0,
        retry: RetryPolicy | None = None,
        throttle: ThrottleSettings | None = None,
        user_agent: str = "Taskmaster",
        ssl_verify: bool = True,
    ) -> None:
        if not token:
            raise InvalidInput("GitLabForge needs an access token")
        self._token = token
        root = base_url.rstrip("/")
        self._api_url = root if root.endswith("/api/v4") else f"{root}/api/v4"
        self._auth_header = auth_header
        self._timeout = timeout
        self._retry = retry or RetryPolicy()
        self._throttle = WriteThrottle(throttle or DEFAULT_THROTTLE)
        self._user_agent = user_agent
        self._ssl_verify = ssl_verify
        self._client: httpx.AsyncClient | None = None
        self._comment_locks: weakref.WeakValueDictionary[tuple[str, int, str], asyncio.Lock] = (
            weakref.WeakValueDictionary()
        )
        self._closed = False

    def __repr__(self) -> str:
        return f"GitLabForge(api_url={self._api_url!r}, token=[redacted])"

    @property
    def name(self) -> str:
        return "gitlab"

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
        await self._post_status(
            repo, sha, name=context, state=_STATUS_STATE[state], description=description, target_url=target_url
        )

    @property
    def capabilities(self) -> ForgeCapabilities:
        return ForgeCapabilities(check_runs=False, annotations=False, inline_review_comments=True)

    async def create_check_run(self, repo: str, spec: CheckRunSpec) -> str:
        raise _no_check_runs(spec)

    async def update_check_run(self, repo: str, check_run_id: str, spec: CheckRunSpec) -> None:
        raise _no_check_runs(spec)

    async def _post_status(
        self,
        repo: str,
        sha: str,
        *,
        name: str,
        state: str,
        description: str | None,
        target_url: str | None,
    ) -> dict[str, Any]:
        body: dict[str, Any] = {"state": state, "name": name}
        if description:
            body["description"] = _shorten(description, _DESCRIPTION_MAX)
        if target_url:
            body["target_url"] = target_url
        action = f"set status {name!r} on {sha[:12]} of {repo}"
        try:
            response = await self._request("POST", f"{_project(repo)}/statuses/{sha}", action, json=body)
        except ForgeRejected as exc:
            # Posting the state a status already has is refused ("Cannot transition status via :run from
            # :running"); the status is then exactly what was asked.
            if "cannot transition status" in exc.detail.lower():
                return {}
            raise
        return _json_object(response)

    async def upsert_comment(self, repo: str, number: int, *, marker: str, body: str) -> str:
        text = marked_body(marker, body)
        notes = f"{_project(repo)}/merge_requests/{number}/notes"
        action = f"comment on !{number} of {repo}"
        key = (repo, number, marker)
        lock = self._comment_locks.get(key)
        if lock is None:
            lock = self._comment_locks[key] = asyncio.Lock()
        async with lock:
            page: str | None = "1"
            while page:
                params = {"per_page": str(_NOTES_PER_PAGE), "page": page, "sort": "asc", "order_by": "created_at"}
                response = await self._request("GET", notes, action, params=params)
                for note in _json_list(response):
                    if not note.get("system") and is_marked(note.get("body"), marker):
                        if note.get("body") != text:
                            await self._request("PUT", f"{notes}/{note['id']}", action, json={"body": text})
                        return str(note["id"])
                page = response.headers.get("x-next-page", "").strip() or None
            created = await self._request("POST", notes, action, json={"body": text})
            return str(_json_object(created)["id"])

    async def create_review(
        self, repo: str, number: int, *, commit_sha: str, body: str, comments: Sequence[ReviewComment]
    ) -> str:
        """One discussion per comment on the new side of the diff at `commit_sha`, then `body` as a note (whose id
        is returned; without a body, the first discussion's). GitLab has no review object to post at once: a comment
        it refuses (a line outside the diff) stops the review there, the discussions before it stay."""
        if not body and not comments:
            raise InvalidInput(f"a review of !{number} needs a body or at least one comment")
        action = f"review merge request !{number} of {repo}"
        merge_request = f"{_project(repo)}/merge_requests/{number}"
        refs = await self._diff_refs(merge_request, commit_sha, action)
        first: str | None = None
        for comment in comments:
            position = {
                "position_type": "text",
                **refs,
                "old_path": comment.path,
                "new_path": comment.path,
                "new_line": comment.line,
            }
            text = comment.body
            if comment.start_line is not None and comment.start_line < comment.line:
                # A text position names one line; the range is said in words rather than through line codes.
                text = f"Lines {comment.start_line}–{comment.line}:\n\n{comment.body}"
            created = await self._request(
                "POST", f"{merge_request}/discussions", action, json={"body": text, "position": position}
            )
            first = first or str(_json_object(created)["id"])
        if body:
            note = await self._request("POST", f"{merge_request}/notes", action, json={"body": body})
            return str(_json_object(note)["id"])
        assert first is not None
        return first

    async def _diff_refs(self, merge_request: str, commit_sha: str, action: str) -> dict[str, str]:
        """`base_sha`, `start_sha` and `head_sha` of the merge request's diff at `commit_sha`: its current
        `diff_refs`, or the version (an earlier push) whose head that commit is."""
        current = _json_object(await self._request("GET", merge_request, action)).get("diff_refs") or {}
        if current.get("head_sha") == commit_sha:
            return {key: str(current[key]) for key in ("base_sha", "start_sha", "head_sha")}
        for version in _json_list(await self._request("GET", f"{merge_request}/versions", action)):
            if version.get("head_commit_sha") == commit_sha:
                return {
                    "base_sha": str(version["base_commit_sha"]),
                    "start_sha": str(version["start_commit_sha"]),
                    "head_sha": commit_sha,
                }
        raise ForgeRejected(f"{FORGE} {action}: commit {commit_sha[:12]} is not a version of it", forge=FORGE)

    async def create_branch(self, repo: str, name: str, from_sha: str) -> None:
        await self._request(
            "POST",
            f"{_project(repo)}/repository/branches",
            f"create branch {name!r} on {repo}",
            json={"branch": name, "ref": from_sha},
        )

    async def create_pull_request(
        self, repo: str, *, head: str, base: str, title: str, body: str, draft: bool = False
    ) -> PullRequestRef:
        # GitLab marks a draft by its title's prefix.
        if draft and not title.lower().startswith(("draft:", "[draft]", "(draft)")):
            title = f"Draft: {title}"
        response = await self._request(
            "POST",
            f"{_project(repo)}/merge_requests",
            f"open a merge request from {head!r} into {base!r} on {repo}",
            json={"source_branch": head, "target_branch": base, "title": title, "description": body},
        )
        data = _json_object(response)
        return PullRequestRef(number=int(data["iid"]), url=str(data["web_url"]))

    async def find_pull_request(self, repo: str, *, head: str, base: str | None = None) -> PullRequestRef | None:
        """The open merge request from branch `head` of the project itself (into `base`, when given), or None.

        GitLab filters by branch and state; the answer is checked again because a merge request from a fork can
        share the branch name (it is not ours: Taskmaster pushes to the project), and old GitLab versions ignored
        the branch filters."""
        action = f"find the merge request of {head!r} on {repo}"
        params = {"source_branch": head, "state": "opened", "per_page": str(_MERGE_REQUESTS_PER_PAGE)}
        if base:
            params["target_branch"] = base
        page: str | None = "1"
        while page:
            response = await self._request(
                "GET", f"{_project(repo)}/merge_requests", action, params={**params, "page": page}
            )
            for data in _json_list(response):
                same_project = data.get("source_project_id", data.get("project_id")) == data.get("project_id")
                if (
                    data.get("source_branch") == head
                    and (not base or data.get("target_branch") == base)
                    and same_project
                ):
                    return PullRequestRef(number=int(data["iid"]), url=str(data["web_url"]))
            page = response.headers.get("x-next-page", "").strip() or None
        return None

    async def get_pull_request(self, repo: str, number: int) -> PullRequestDetails:
        response = await self._request(
            "GET", f"{_project(repo)}/merge_requests/{number}", f"read merge request !{number} of {repo}"
        )
        return _merge_request(_json_object(response))

    async def merge_pull_request(self, repo: str, number: int, *, squash: bool = False, sha: str | None = None) -> str:
        body: dict[str, Any] = {"squash": squash}
        if sha is not None:
            body["sha"] = sha
        response = await self._request(
            "PUT", f"{_project(repo)}/merge_requests/{number}/merge", f"merge merge request !{number} of {repo}",
            json=body,
        )  # fmt: skip
        merged = _merge_request(_json_object(response))
        if merged.merge_commit_sha is None:
            raise ForgeError(f"{FORGE} merge merge request !{number} of {repo}: no merge commit in the answer")
        return merged.merge_commit_sha

    async def close_pull_request(self, repo: str, number: int) -> None:
        await self._request(
            "PUT", f"{_project(repo)}/merge_requests/{number}", f"close merge request !{number} of {repo}",
            json={"state_event": "close"},
        )  # fmt: skip

    async def create_issue(self, repo: str, *, title: str, body: str, labels: Sequence[str] = ()) -> IssueRef:
        payload: dict[str, Any] = {"title": title, "description": body}
        if labels:
            payload["labels"] = ",".join(labels)
        response = await self._request("POST", f"{_project(repo)}/issues", f"open an issue on {repo}", json=payload)
        data = _json_object(response)
        return IssueRef(number=int(data["iid"]), url=str(data["web_url"]))

    async def read_file(self, repo: str, path: str, ref: str) -> bytes | None:
        file_path = quote(path.lstrip("/"), safe="")
        try:
            response = await self._request(
                "GET",
                f"{_project(repo)}/repository/files/{file_path}/raw",
                f"read {path!r} at {ref!r} of {repo}",
                params={"ref": ref},
            )
        except ForgeNotFound:
            return None
        return response.content

    async def user_permission(self, repo: str, login: str) -> Permission:
        action = f"read {login!r}'s permission on {repo}"
        users = _json_list(await self._request("GET", "users", action, params={"username": login}))
        if not users:
            return Permission.NONE
        try:
            response = await self._request("GET", f"{_project(repo)}/members/all/{int(users[0]['id'])}", action)
        except ForgeNotFound:
            return Permission.NONE
        level = int(_json_object(response).get("access_level", 0))
        return next((permission for floor, permission in _ACCESS_LEVELS if level >= floor), Permission.NONE)

    async def aclose(self) -> None:
        self._closed = True
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    def _http(self) -> httpx.AsyncClient:
        if self._closed:
            raise ForgeError(f"{FORGE} client for {self._api_url} is closed", forge=FORGE)
        if self._client is None:
            auth = (
                {"PRIVATE-TOKEN": self._token}
                if self._auth_header == "private-token"
                else {"Authorization": f"Bearer {self._token}"}
            )
            self._client = httpx.AsyncClient(
                base_url=self._api_url + "/",
                headers={"User-Agent": self._user_agent, "Accept": "application/json", **auth},
                timeout=self._timeout,
                verify=self._ssl_verify,
            )
        return self._client

    async def _request(
        self,
        method: str,
        path: str,
        action: str,
        *,
        params: Mapping[str, str] | None = None,
        json: Any = None,
    ) -> httpx.Response:
        """One API call with retries; an error answer left after them becomes a `ForgeError`."""
        client = self._http()
        retry = 0
        while True:
            wait: float | None = None
            try:
                async with self._throttle.slot(method):
                    response = await client.request(method, path, params=params, json=json)
            except (httpx.ConnectError, httpx.ConnectTimeout) as exc:
                # Nothing reached the server, so even a POST is safe to send again.
                if retry >= self._retry.max_retries:
                    raise self._unreachable(action, exc) from None
                wait = self._retry.backoff(retry)
            except httpx.TimeoutException as exc:
                if method not in IDEMPOTENT_METHODS or retry >= self._retry.max_retries:
                    raise self._unreachable(action, exc) from None
                wait = self._retry.backoff(retry)
            except httpx.HTTPError as exc:
                raise self._unreachable(action, exc) from None
            else:
                if response.is_success:
                    return response
                wait = self._retry_wait(response, retry, action)
            retry += 1
            await asyncio.sleep(wait)

    def _retry_wait(self, response: httpx.Response, retry: int, action: str) -> float:
        """The pause before trying again, or the error to raise when this answer is final."""
        status = response.status_code
        message = redact(_failure_message(response), [self._token])
        if status == 429:
            asked = retry_after_seconds(response.headers, now=time.time())
            if asked is not None and asked > self._retry.max_rate_limit_wait:
                raise error_for_status(FORGE, status, message, action, retry_after=asked)
            if retry < self._retry.max_retries:
                return asked if asked is not None else self._retry.backoff(retry)
            raise error_for_status(FORGE, status, message, action, retry_after=asked or 0.0)
        if status >= 500 and retry < self._retry.max_retries:
            return self._retry.backoff(retry)
        raise error_for_status(FORGE, status, message, action)

    def _unreachable(self, action: str, exc: httpx.HTTPError) -> ForgeUnavailable:
        reason = redact(f"{type(exc).__name__}: {exc}", [self._token])
        return ForgeUnavailable(f"{FORGE} at {self._api_url} {action}: could not be reached: {reason}", forge=FORGE)


def _project(repo: str) -> str:
    """`projects/<id>`: a numeric id as it is, a path URL-encoded whole (`group%2Fproject`)."""
    repo = repo.strip("/")
    if not repo:
        raise InvalidInput("a GitLab project is a numeric id or a path like group/project")
    return f"projects/{repo if repo.isdigit() else quote(repo, safe='')}"


def _no_check_runs(spec: CheckRunSpec) -> ForgeRejected:
    return ForgeRejected(
        f"{FORGE} has no check runs ({spec.name!r}): report with commit statuses (capabilities.check_runs is False)",
        forge=FORGE,
    )


_MR_STATES: dict[str, PullRequestState] = {"opened": "open", "merged": "merged", "closed": "closed", "locked": "closed"}


def _merge_request(data: dict[str, Any]) -> PullRequestDetails:
    """A merge request of the API as `PullRequestDetails` (a squash merge's commit is its `squash_commit_sha`)."""
    state = _MR_STATES.get(str(data.get("state")), "closed")
    merged_sha = data.get("merge_commit_sha") or data.get("squash_commit_sha")
    return PullRequestDetails(
        number=int(data["iid"]), url=str(data["web_url"]), title=str(data.get("title") or ""), state=state,
        draft=bool(data.get("draft", data.get("work_in_progress", False))), head_ref=str(data["source_branch"]),
        head_sha=str(data.get("sha") or ""), base_ref=str(data["target_branch"]),
        merge_commit_sha=str(merged_sha) if state == "merged" and merged_sha else None,
    )  # fmt: skip


def _failure_message(response: httpx.Response) -> str:
    """GitLab's error text: `message` (a string, or field -> problems) or `error`."""
    try:
        body = response.json()
    except ValueError:
        return response.reason_phrase or "error"
    if isinstance(body, dict):
        message = body.get("message", body.get("error"))
        if isinstance(message, dict):
            return "; ".join(
                f"{field} {', '.join(map(str, problems)) if isinstance(problems, list) else problems}"
                for field, problems in message.items()
            )
        if isinstance(message, list):
            return "; ".join(map(str, message))
        if message:
            return str(message)
    return response.reason_phrase or "error"


def _json_object(response: httpx.Response) -> dict[str, Any]:
    data = response.json()
    if not isinstance(data, dict):
        raise ForgeError(f"{FORGE} answered {type(data).__name__} where an object was expected", forge=FORGE)
    return data


def _json_list(response: httpx.Response) -> list[dict[str, Any]]:
    data = response.json()
    if not isinstance(data, list):
        raise ForgeError(f"{FORGE} answered {type(data).__name__} where a list was expected", forge=FORGE)
    return [item for item in data if isinstance(item, dict)]


def _shorten(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"
