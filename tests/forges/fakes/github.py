"""A fake GitHub REST API: the endpoints `GitHubForge` calls, answering bodies that githubkit's response models
validate (full objects, minimal values), with GitHub's auth rules (personal token, App JWT, installation tokens),
`Link` pagination, and injectable failures (a secondary rate limit with Retry-After, a 502).
"""

from __future__ import annotations

import asyncio
import base64
import itertools
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import unquote

import jwt
from fastapi.responses import JSONResponse, Response

from tests.forges.fakes.recording import Call, RecordingServer
from tests.support import live_server

PERSONAL_TOKEN = "ghp_fake0123456789abcdefghijklmnopqrstuv"
NOW = "2024-05-01T12:00:00Z"
_SEGMENT = r"[^/]+"

USER_URLS = [
    "followers_url",
    "following_url",
    "gists_url",
    "starred_url",
    "subscriptions_url",
    "organizations_url",
    "repos_url",
    "events_url",
    "received_events_url",
]
REPOSITORY_URLS = [
    "archive_url",
    "assignees_url",
    "blobs_url",
    "branches_url",
    "collaborators_url",
    "comments_url",
    "commits_url",
    "compare_url",
    "contents_url",
    "contributors_url",
    "deployments_url",
    "downloads_url",
    "events_url",
    "forks_url",
    "git_commits_url",
    "git_refs_url",
    "git_tags_url",
    "git_url",
    "issue_comment_url",
    "issue_events_url",
    "issues_url",
    "keys_url",
    "labels_url",
    "languages_url",
    "merges_url",
    "milestones_url",
    "notifications_url",
    "pulls_url",
    "releases_url",
    "ssh_url",
    "stargazers_url",
    "statuses_url",
    "subscribers_url",
    "subscription_url",
    "tags_url",
    "teams_url",
    "trees_url",
    "clone_url",
    "hooks_url",
    "svn_url",
]
PULL_REQUEST_URLS = [
    "diff_url",
    "patch_url",
    "issue_url",
    "commits_url",
    "review_comments_url",
    "review_comment_url",
    "comments_url",
    "statuses_url",
]


def user(base: str, login: str, user_id: int = 1, kind: str = "User") -> dict[str, Any]:
    """A `simple-user` object."""
    return {
        "login": login,
        "id": user_id,
        "node_id": f"U_{user_id}",
        "avatar_url": f"{base}/avatars/{login}",
        "gravatar_id": None,
        "url": f"{base}/users/{login}",
        "html_url": f"{base}/{login}",
        **{name: f"{base}/users/{login}/{name.removesuffix('_url')}" for name in USER_URLS},
        "type": kind,
        "site_admin": False,
    }


def repository(base: str, full_name: str) -> dict[str, Any]:
    """A `repository` object."""
    owner, name = full_name.split("/")
    url = f"{base}/repos/{full_name}"
    return {
        "id": 1000,
        "node_id": "R_1000",
        "name": name,
        "full_name": full_name,
        "license": None,
        "forks": 0,
        "owner": user(base, owner, 2, "Organization"),
        "private": False,
        "html_url": f"{base}/{full_name}",
        "description": None,
        "fork": False,
        "url": url,
        **{name: f"{url}/{name.removesuffix('_url')}" for name in REPOSITORY_URLS},
        "mirror_url": None,
        "homepage": None,
        "language": None,
        "forks_count": 0,
        "stargazers_count": 0,
        "watchers_count": 0,
        "size": 0,
        "default_branch": "main",
        "open_issues_count": 0,
        "has_pages": False,
        "disabled": False,
        "pushed_at": None,
        "created_at": None,
        "updated_at": None,
        "open_issues": 0,
        "watchers": 0,
    }


@dataclass
class GitHubState:
    """What the fake GitHub holds; tests read it to see the effect of the client's calls."""

    statuses: list[dict[str, Any]] = field(default_factory=list)
    check_runs: dict[int, dict[str, Any]] = field(default_factory=dict)
    comments: dict[int, dict[str, Any]] = field(default_factory=dict)
    refs: dict[tuple[str, str], str] = field(default_factory=dict)
    pulls: list[dict[str, Any]] = field(default_factory=list)
    issues: list[dict[str, Any]] = field(default_factory=list)
    files: dict[tuple[str, str, str], bytes] = field(default_factory=dict)
    permissions: dict[tuple[str, str], str] = field(default_factory=dict)
    jwt_claims: list[dict[str, Any]] = field(default_factory=list)
    issued_tokens: dict[str, tuple[int, float]] = field(default_factory=dict)


class FakeGitHub(RecordingServer):
    """Serve it with `serve_github()`. `installations` maps `owner/name` to the App installation that covers it;
    `app_id` and `app_public_key` (PEM) let it verify App JWTs; `page_size` caps `per_page` to exercise paging;
    `check_runs_need_app` refuses check run writes made with the personal token, as GitHub does.
    """

    def __init__(self) -> None:
        super().__init__()
        self.app_id: int | None = None
        self.app_public_key: str | None = None
        self.installations: dict[str, int] = {}
        self.check_runs_need_app = False
        self.token_lifetime = 3600.0
        self.page_size = 100
        self.pull_delay = 0.0
        """Seconds a pull request creation waits after it is stored and before it answers (a crash window)."""
        self.state = GitHubState()
        self._ids = itertools.count(101)
        repo = rf"/repos/(?P<owner>{_SEGMENT})/(?P<repo>{_SEGMENT})"
        self.route("POST", r"/app/installations/(?P<installation>\d+)/access_tokens", self._access_token)
        self.route("GET", rf"{repo}/installation", self._repo_installation)
        self.route("POST", rf"{repo}/statuses/(?P<sha>\w+)", self._create_status)
        self.route("POST", rf"{repo}/check-runs", self._create_check_run)
        self.route("PATCH", rf"{repo}/check-runs/(?P<id>\d+)", self._update_check_run)
        self.route("GET", rf"{repo}/issues/(?P<number>\d+)/comments", self._list_comments)
        self.route("POST", rf"{repo}/issues/(?P<number>\d+)/comments", self._create_comment)
        self.route("PATCH", rf"{repo}/issues/comments/(?P<id>\d+)", self._update_comment)
        self.route("POST", rf"{repo}/git/refs", self._create_ref)
        self.route("POST", rf"{repo}/pulls", self._create_pull)
        self.route("GET", rf"{repo}/pulls", self._list_pulls)
        self.route("GET", rf"{repo}/pulls/(?P<number>\d+)", self._get_pull)
        self.route("PATCH", rf"{repo}/pulls/(?P<number>\d+)", self._update_pull)
        self.route("PUT", rf"{repo}/pulls/(?P<number>\d+)/merge", self._merge_pull)
        self.route("POST", rf"{repo}/issues", self._create_issue)
        self.route("GET", rf"{repo}/contents/(?P<path>.+)", self._get_content)
        self.route("GET", rf"{repo}/collaborators/(?P<login>{_SEGMENT})/permission", self._permission)

    def reset(self) -> None:
        """A clean slate between tests sharing one server."""
        self.clear_log()
        self.app_id = None
        self.app_public_key = None
        self.installations = {}
        self.check_runs_need_app = False
        self.token_lifetime = 3600.0
        self.page_size = 100
        self.pull_delay = 0.0
        self.state = GitHubState()

    def secondary_rate_limit(self, *, retry_after: int = 1, method: str | None = None, path: str | None = None) -> None:
        """The next matching request gets GitHub's 403 secondary rate limit answer."""
        self.inject(
            403,
            {
                "message": "You have exceeded a secondary rate limit. Please wait a few minutes before you try again.",
                "documentation_url": "https://docs.github.com/rest/overview/rate-limits-for-the-rest-api",
            },
            headers={"Retry-After": str(retry_after), "x-ratelimit-remaining": "4321"},
            method=method,
            path_contains=path,
        )

    def server_error(
        self, *, status: int = 502, times: int = 1, method: str | None = None, path: str | None = None
    ) -> None:
        self.inject(status, {"message": "Server Error"}, method=method, path_contains=path, times=times)

    def token_requests(self) -> int:
        return len(self.matching("POST", "/access_tokens"))

    # --- auth -------------------------------------------------------------------------------------------------

    def _credential(self, call: Call) -> str | None:
        header = call.headers.get("authorization", "")
        scheme, _, value = header.partition(" ")
        return value if scheme.lower() in ("token", "bearer") and value else None

    def _check_jwt(self, call: Call) -> JSONResponse | None:
        token = self._credential(call)
        if token is None or self.app_public_key is None:
            return _error(401, "A JSON web token could not be decoded")
        try:
            claims = jwt.decode(token, self.app_public_key, algorithms=["RS256"], leeway=120)
        except jwt.PyJWTError as exc:
            return _error(401, f"A JSON web token could not be decoded: {exc}")
        if str(claims.get("iss")) != str(self.app_id):
            return _error(401, "'Issuer' claim ('iss') must be the App's id")
        self.state.jwt_claims.append(claims)
        return None

    def _check_token(self, call: Call) -> JSONResponse | None:
        token = self._credential(call)
        if token == PERSONAL_TOKEN:
            return None
        issued = self.state.issued_tokens.get(token or "")
        if issued is None or issued[1] < time.time():
            return _error(401, "Bad credentials")
        full_name = f"{call.params['owner']}/{call.params['repo']}"
        if self.installations.get(full_name, issued[0]) != issued[0]:
            return _error(404, "Not Found")
        return None

    def _check_app_token(self, call: Call) -> JSONResponse | None:
        """Check runs are written by Apps only: GitHub answers a personal token 403."""
        if self.check_runs_need_app and self._credential(call) == PERSONAL_TOKEN:
            return _error(403, "Resource not accessible by personal access token")
        return self._check_token(call)

    # --- App ----------------------------------------------------------------------------------------------------

    async def _access_token(self, call: Call) -> Response:
        if (denied := self._check_jwt(call)) is not None:
            return denied
        installation = int(call.params["installation"])
        if installation not in self.installations.values():
            return _error(404, "Not Found")
        token = f"ghs_fake{next(self._ids):06d}{'x' * 26}"
        expires = datetime.now(UTC) + timedelta(seconds=self.token_lifetime)
        self.state.issued_tokens[token] = (installation, expires.timestamp())
        body = {
            "token": token,
            "expires_at": expires.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "permissions": {"checks": "write", "statuses": "write", "contents": "write"},
            "repository_selection": "all",
        }
        return JSONResponse(body, status_code=201)

    async def _repo_installation(self, call: Call) -> Response:
        if (denied := self._check_jwt(call)) is not None:
            return denied
        full_name = f"{call.params['owner']}/{call.params['repo']}"
        installation = self.installations.get(full_name)
        if installation is None:
            return _error(404, "Not Found")
        base = call.base_url
        return JSONResponse(
            {
                "id": installation,
                "account": user(base, call.params["owner"], 2, "Organization"),
                "repository_selection": "all",
                "access_tokens_url": f"{base}/app/installations/{installation}/access_tokens",
                "repositories_url": f"{base}/installation/repositories",
                "html_url": f"{base}/settings/installations/{installation}",
                "app_id": self.app_id,
                "target_id": 2,
                "target_type": "Organization",
                "permissions": {"checks": "write", "statuses": "write"},
                "events": ["pull_request", "push"],
                "created_at": NOW,
                "updated_at": NOW,
                "single_file_name": None,
                "app_slug": "taskmaster",
                "suspended_by": None,
                "suspended_at": None,
            }
        )

    # --- statuses and check runs --------------------------------------------------------------------------------

    async def _create_status(self, call: Call) -> Response:
        if (denied := self._check_token(call)) is not None:
            return denied
        body = call.body or {}
        if body.get("state") not in ("error", "failure", "pending", "success"):
            return _validation_failed("state is not included in the list")
        status_id = next(self._ids)
        stored = {"repo": f"{call.params['owner']}/{call.params['repo']}", "sha": call.params["sha"], **body}
        self.state.statuses.append(stored)
        return JSONResponse(
            {
                "url": f"{call.base_url}/repos/x/statuses/{call.params['sha']}",
                "avatar_url": None,
                "id": status_id,
                "node_id": f"SC_{status_id}",
                "state": body["state"],
                "description": body.get("description"),
                "target_url": body.get("target_url"),
                "context": body.get("context", "default"),
                "created_at": NOW,
                "updated_at": NOW,
                "creator": None,
            },
            status_code=201,
        )

    async def _create_check_run(self, call: Call) -> Response:
        if (denied := self._check_app_token(call)) is not None:
            return denied
        body = call.body or {}
        if not body.get("name") or not body.get("head_sha"):
            return _validation_failed("name and head_sha are required")
        check_id = next(self._ids)
        run = {"id": check_id, "repo": f"{call.params['owner']}/{call.params['repo']}", "annotations": []}
        self._apply_check(run, body)
        self.state.check_runs[check_id] = run
        return JSONResponse(self._check_run_body(call.base_url, run), status_code=201)

    async def _update_check_run(self, call: Call) -> Response:
        if (denied := self._check_app_token(call)) is not None:
            return denied
        run = self.state.check_runs.get(int(call.params["id"]))
        if run is None:
            return _error(404, "Not Found")
        self._apply_check(run, call.body or {})
        return JSONResponse(self._check_run_body(call.base_url, run))

    def _apply_check(self, run: dict[str, Any], body: dict[str, Any]) -> None:
        output = body.get("output") or {}
        run["annotations"].extend(output.get("annotations") or [])
        for key in ("name", "head_sha", "status", "conclusion", "details_url", "external_id", "started_at"):
            if key in body:
                run[key] = body[key]
        if "completed_at" in body or body.get("status") == "completed":
            run["completed_at"] = body.get("completed_at", NOW)
        for key in ("title", "summary", "text"):
            if key in output:
                run[key] = output[key]
        run.setdefault("status", "queued")

    def _check_run_body(self, base: str, run: dict[str, Any]) -> dict[str, Any]:
        url = f"{base}/repos/{run['repo']}/check-runs/{run['id']}"
        return {
            "id": run["id"],
            "head_sha": run["head_sha"],
            "node_id": f"CR_{run['id']}",
            "external_id": run.get("external_id"),
            "url": url,
            "html_url": f"{base}/{run['repo']}/runs/{run['id']}",
            "details_url": run.get("details_url"),
            "status": run["status"],
            "conclusion": run.get("conclusion"),
            "started_at": run.get("started_at"),
            "completed_at": run.get("completed_at"),
            "output": {
                "title": run.get("title"),
                "summary": run.get("summary"),
                "text": run.get("text"),
                "annotations_count": len(run["annotations"]),
                "annotations_url": f"{url}/annotations",
            },
            "name": run["name"],
            "check_suite": None,
            "app": None,
            "pull_requests": [],
        }

    # --- comments -----------------------------------------------------------------------------------------------

    def add_comment(self, repo: str, number: int, body: str, author: str = "someone") -> int:
        """A comment someone else wrote, already on the pull request."""
        comment_id = next(self._ids)
        self.state.comments[comment_id] = {
            "id": comment_id,
            "repo": repo,
            "number": number,
            "body": body,
            "author": author,
        }
        return comment_id

    def comments_on(self, repo: str, number: int) -> list[dict[str, Any]]:
        return [c for c in self.state.comments.values() if c["repo"] == repo and c["number"] == number]

    def _comment_body(self, base: str, comment: dict[str, Any]) -> dict[str, Any]:
        repo_url = f"{base}/repos/{comment['repo']}"
        return {
            "id": comment["id"],
            "node_id": f"IC_{comment['id']}",
            "url": f"{repo_url}/issues/comments/{comment['id']}",
            "html_url": f"{base}/{comment['repo']}/pull/{comment['number']}#issuecomment-{comment['id']}",
            "body": comment["body"],
            "user": user(base, comment["author"], 7),
            "created_at": NOW,
            "updated_at": NOW,
            "issue_url": f"{repo_url}/issues/{comment['number']}",
            "author_association": "NONE",
        }

    async def _list_comments(self, call: Call) -> Response:
        if (denied := self._check_token(call)) is not None:
            return denied
        repo = f"{call.params['owner']}/{call.params['repo']}"
        number = int(call.params["number"])
        query = call.request.query_params
        per_page = min(int(query.get("per_page", "30")), self.page_size)
        page = int(query.get("page", "1"))
        everything = sorted(self.comments_on(repo, number), key=lambda c: c["id"])
        chunk = everything[(page - 1) * per_page : page * per_page]
        headers = {}
        pages = max(1, -(-len(everything) // per_page))
        if page < pages:
            path = call.request.url.path
            link = f"{call.base_url}{path}?per_page={per_page}&page="
            headers["Link"] = f'<{link}{page + 1}>; rel="next", <{link}{pages}>; rel="last"'
        return JSONResponse([self._comment_body(call.base_url, c) for c in chunk], headers=headers)

    async def _create_comment(self, call: Call) -> Response:
        if (denied := self._check_token(call)) is not None:
            return denied
        repo = f"{call.params['owner']}/{call.params['repo']}"
        comment_id = self.add_comment(repo, int(call.params["number"]), (call.body or {})["body"], "taskmaster[bot]")
        return JSONResponse(self._comment_body(call.base_url, self.state.comments[comment_id]), status_code=201)

    async def _update_comment(self, call: Call) -> Response:
        if (denied := self._check_token(call)) is not None:
            return denied
        comment = self.state.comments.get(int(call.params["id"]))
        if comment is None:
            return _error(404, "Not Found")
        comment["body"] = (call.body or {})["body"]
        return JSONResponse(self._comment_body(call.base_url, comment))

    # --- branches, pull requests, issues ------------------------------------------------------------------------

    async def _create_ref(self, call: Call) -> Response:
        if (denied := self._check_token(call)) is not None:
            return denied
        repo = f"{call.params['owner']}/{call.params['repo']}"
        body = call.body or {}
        ref, sha = body.get("ref", ""), body.get("sha", "")
        if not ref.startswith("refs/") or ref.count("/") < 2:
            return _validation_failed("ref must start with 'refs' and have at least two slashes")
        if (repo, ref) in self.state.refs:
            return _validation_failed("Reference already exists", status=422, plain=True)
        self.state.refs[(repo, ref)] = sha
        url = f"{call.base_url}/repos/{repo}/git/{ref}"
        return JSONResponse(
            {
                "ref": ref,
                "node_id": "REF_1",
                "url": url,
                "object": {"type": "commit", "sha": sha, "url": f"{call.base_url}/repos/{repo}/git/commits/{sha}"},
            },
            status_code=201,
        )

    async def _create_pull(self, call: Call) -> Response:
        if (denied := self._check_token(call)) is not None:
            return denied
        repo = f"{call.params['owner']}/{call.params['repo']}"
        body = call.body or {}
        for other in self.state.pulls:
            if other["repo"] == repo and other["state"] == "open" and other.get("head") == body.get("head"):
                owner = call.params["owner"]
                return _validation_failed(f"A pull request already exists for {owner}:{body.get('head')}.")
        number = len(self.state.pulls) + len(self.state.issues) + 1
        pull = {"repo": repo, "number": number, "state": "open", "merged": False, "mergeable": True, **body}
        self.state.pulls.append(pull)
        if self.pull_delay:
            await asyncio.sleep(self.pull_delay)
        return JSONResponse(self._pull_body(call.base_url, pull), status_code=201)

    async def _list_pulls(self, call: Call) -> Response:
        """`GET /repos/{owner}/{repo}/pulls?state=&head=owner:branch&base=`, as GitHub filters them."""
        if (denied := self._check_token(call)) is not None:
            return denied
        repo = f"{call.params['owner']}/{call.params['repo']}"
        query = call.request.query_params
        state, head, base = query.get("state", "open"), query.get("head"), query.get("base")
        found = [
            p for p in self.state.pulls
            if p["repo"] == repo and (state == "all" or p["state"] == state)
            and (head is None or f"{call.params['owner']}:{p.get('head')}" == head)
            and (base is None or p.get("base") == base)
        ]  # fmt: skip
        return JSONResponse([self._pull_body(call.base_url, pull) for pull in found])

    def _pull_body(self, base: str, pull: dict[str, Any]) -> dict[str, Any]:
        repo, number, body = pull["repo"], pull["number"], pull
        repo_body = repository(base, repo)
        api = f"{base}/repos/{repo}/pulls/{number}"
        html = f"{base}/{repo}/pull/{number}"
        author = user(base, "taskmaster[bot]", 9, "Bot")
        return {
            "url": api,
            "id": 5000 + number,
            "node_id": f"PR_{number}",
            "html_url": html,
            **{name: f"{api}/{name.removesuffix('_url')}" for name in PULL_REQUEST_URLS},
            "number": number,
            "state": pull["state"],
            "locked": False,
            "title": body.get("title"),
            "user": author,
            "body": body.get("body"),
            "labels": [],
            "milestone": None,
            "created_at": NOW,
            "updated_at": NOW,
            "closed_at": None,
            "merged_at": NOW if pull["merged"] else None,
            "head": {
                "label": f"x:{body['head']}",
                "ref": body["head"],
                "repo": repo_body,
                "sha": "a" * 40,
                "user": author,
            },
            "base": {
                "label": f"x:{body['base']}",
                "ref": body["base"],
                "repo": repo_body,
                "sha": "b" * 40,
                "user": author,
            },
            "_links": {
                name: {"href": f"{api}/{name}"}
                for name in (
                    "comments",
                    "commits",
                    "statuses",
                    "html",
                    "issue",
                    "review_comments",
                    "review_comment",
                    "self",
                )
            },
            "author_association": "NONE",
            "auto_merge": None,
            "draft": bool(body.get("draft", False)),
            "merged": pull["merged"],
            "merge_commit_sha": pull.get("merge_commit_sha"),
            "mergeable": None,
            "mergeable_state": "unknown",
            "merged_by": None,
            "comments": 0,
            "review_comments": 0,
            "maintainer_can_modify": False,
            "commits": 1,
            "additions": 1,
            "deletions": 0,
            "changed_files": 1,
        }

    def _find_pull(self, call: Call) -> tuple[dict[str, Any] | None, Response | None]:
        if (denied := self._check_token(call)) is not None:
            return None, denied
        repo, number = f"{call.params['owner']}/{call.params['repo']}", int(call.params["number"])
        found = next((p for p in self.state.pulls if p["repo"] == repo and p["number"] == number), None)
        return found, None if found else _error(404, "Not Found")

    async def _get_pull(self, call: Call) -> Response:
        pull, denied = self._find_pull(call)
        return denied or JSONResponse(self._pull_body(call.base_url, pull or {}))

    async def _update_pull(self, call: Call) -> Response:
        pull, denied = self._find_pull(call)
        if denied is not None or pull is None:
            return denied or _error(404, "Not Found")
        if (call.body or {}).get("state") == "closed":
            pull["state"] = "closed"
        return JSONResponse(self._pull_body(call.base_url, pull))

    async def _merge_pull(self, call: Call) -> Response:
        pull, denied = self._find_pull(call)
        if denied is not None or pull is None:
            return denied or _error(404, "Not Found")
        body = call.body or {}
        if pull["state"] != "open" or not pull["mergeable"]:
            return _error(405, "Pull Request is not mergeable")
        if body.get("sha") not in (None, "a" * 40):
            return _error(409, "Head branch was modified. Review and try the merge again.")
        pull["state"], pull["merged"], pull["merge_commit_sha"] = "closed", True, f"{next(self._ids):040x}"
        pull["merge_method"] = body.get("merge_method", "merge")
        return JSONResponse(
            {"sha": pull["merge_commit_sha"], "merged": True, "message": "Pull Request successfully merged"}
        )

    async def _create_issue(self, call: Call) -> Response:
        if (denied := self._check_token(call)) is not None:
            return denied
        repo = f"{call.params['owner']}/{call.params['repo']}"
        body = call.body or {}
        number = len(self.state.pulls) + len(self.state.issues) + 1
        self.state.issues.append({"repo": repo, "number": number, **body})
        base = call.base_url
        api = f"{base}/repos/{repo}/issues/{number}"
        return JSONResponse(
            {
                "id": 7000 + number,
                "node_id": f"I_{number}",
                "url": api,
                "repository_url": f"{base}/repos/{repo}",
                "labels_url": f"{api}/labels{{/name}}",
                "comments_url": f"{api}/comments",
                "events_url": f"{api}/events",
                "html_url": f"{base}/{repo}/issues/{number}",
                "number": number,
                "state": "open",
                "title": body.get("title"),
                "body": body.get("body"),
                "user": user(base, "taskmaster[bot]", 9, "Bot"),
                "labels": [
                    {
                        "id": i,
                        "node_id": f"L_{i}",
                        "url": f"{base}/labels/{name}",
                        "name": name,
                        "color": "ededed",
                        "default": False,
                        "description": None,
                    }
                    for i, name in enumerate(body.get("labels") or [], start=1)
                ],
                "milestone": None,
                "locked": False,
                "comments": 0,
                "closed_at": None,
                "created_at": NOW,
                "updated_at": NOW,
                "author_association": "NONE",
            },
            status_code=201,
        )

    # --- contents and permissions -------------------------------------------------------------------------------

    async def _get_content(self, call: Call) -> Response:
        if (denied := self._check_token(call)) is not None:
            return denied
        repo = f"{call.params['owner']}/{call.params['repo']}"
        ref = call.request.query_params.get("ref", "main")
        path = unquote(call.params["path"])
        content = self.state.files.get((repo, ref, path))
        if content is None:
            return _error(404, "Not Found")
        if "raw" in call.headers.get("accept", ""):
            return Response(content, media_type="application/vnd.github.raw+json")
        return JSONResponse(
            {"type": "file", "encoding": "base64", "content": base64.b64encode(content).decode(), "path": path}
        )

    async def _permission(self, call: Call) -> Response:
        if (denied := self._check_token(call)) is not None:
            return denied
        repo = f"{call.params['owner']}/{call.params['repo']}"
        login = call.params["login"]
        role = self.state.permissions.get((repo, login))
        if role is None:
            return _error(404, f"{login} is not a user")
        legacy = {"maintain": "write", "triage": "read"}.get(role, role)
        person = {**user(call.base_url, login, 11), "role_name": role}
        return JSONResponse({"permission": legacy, "role_name": role, "user": person})


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"message": message, "documentation_url": "https://docs.github.com/rest"}, status_code=status)


def _validation_failed(message: str, *, status: int = 422, plain: bool = False) -> JSONResponse:
    if plain:
        return _error(status, message)
    return JSONResponse(
        {
            "message": "Validation Failed",
            "errors": [{"message": message}],
            "documentation_url": "https://docs.github.com/rest",
        },
        status_code=status,
    )


@contextmanager
def serve_github() -> Iterator[tuple[str, FakeGitHub]]:
    """Start a fake GitHub on loopback; yields its base URL (what `GitHubForge(base_url=...)` takes) and state."""
    fake = FakeGitHub()
    with live_server(fake.app()) as url:
        yield url, fake
