"""A fake GitLab REST API v4: the endpoints `GitLabForge` calls, routed on the raw path (a project is its numeric
id or its URL-encoded path, `group%2Fproject`, as on GitLab), with token auth, `X-Next-Page` pagination,
GitLab's refusal to re-post a status's current state or to open a second open merge request between the same
branches, merge requests listed by state and branches (forks' included, as GitLab lists them), and injectable
failures (429 with Retry-After, 5xx, a reply lost after the request was carried out).
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote

from fastapi.responses import JSONResponse, Response

from tests.forges.fakes.recording import Call, RecordingServer
from tests.support import live_server

TOKEN = "glpat-fake0123456789abcdef"
NOW = "2024-05-01T12:00:00.000Z"
STATES = ("pending", "running", "success", "failed", "canceled", "skipped")
# GitLab's state machine event for moving a status into each state, as its error message names them.
_EVENTS = {
    "pending": "enqueue",
    "running": "run",
    "success": "success",
    "failed": "drop",
    "canceled": "cancel",
    "skipped": "skip",
}


@dataclass
class GitLabState:
    projects: dict[str, int] = field(default_factory=lambda: {"acme/platform/api": 42})
    statuses: list[dict[str, Any]] = field(default_factory=list)
    notes: dict[int, dict[str, Any]] = field(default_factory=dict)
    branches: dict[tuple[int, str], str] = field(default_factory=dict)
    merge_requests: list[dict[str, Any]] = field(default_factory=list)
    discussions: list[dict[str, Any]] = field(default_factory=list)
    diff_lines: dict[tuple[int, int], dict[str, set[int]]] = field(default_factory=dict)
    """Per merge request (project, iid), the new-side lines of each changed file; when set, positions must hit them."""
    issues: list[dict[str, Any]] = field(default_factory=list)
    files: dict[tuple[int, str, str], bytes] = field(default_factory=dict)
    users: dict[str, int] = field(default_factory=dict)
    members: dict[tuple[int, int], int] = field(default_factory=dict)


class FakeGitLab(RecordingServer):
    """Serve it with `serve_gitlab()`; the API lives under `/api/v4` of the yielded URL."""

    def __init__(self) -> None:
        super().__init__()
        self.page_size = 100
        self.state = GitLabState()
        self._ids = itertools.count(501)
        project = r"/api/v4/projects/(?P<project>[^/]+)"
        self.route("POST", rf"{project}/statuses/(?P<sha>\w+)", self._post_status)
        self.route("GET", rf"{project}/merge_requests/(?P<iid>\d+)/notes", self._list_notes)
        self.route("POST", rf"{project}/merge_requests/(?P<iid>\d+)/notes", self._create_note)
        self.route("PUT", rf"{project}/merge_requests/(?P<iid>\d+)/notes/(?P<id>\d+)", self._update_note)
        self.route("POST", rf"{project}/repository/branches", self._create_branch)
        self.route("POST", rf"{project}/merge_requests", self._create_merge_request)
        self.route("GET", rf"{project}/merge_requests", self._list_merge_requests)
        self.route("GET", rf"{project}/merge_requests/(?P<iid>\d+)", self._get_merge_request)
        self.route("PUT", rf"{project}/merge_requests/(?P<iid>\d+)/merge", self._merge_merge_request)
        self.route("POST", rf"{project}/merge_requests/(?P<iid>\d+)/discussions", self._create_discussion)
        self.route("GET", rf"{project}/merge_requests/(?P<iid>\d+)/versions", self._versions)
        self.route("PUT", rf"{project}/merge_requests/(?P<iid>\d+)", self._update_merge_request)
        self.route("POST", rf"{project}/issues", self._create_issue)
        self.route("GET", rf"{project}/repository/files/(?P<path>[^/]+)/raw", self._raw_file)
        self.route("GET", rf"{project}/members/all/(?P<user>\d+)", self._member)
        self.route("GET", r"/api/v4/users", self._users)

    def reset(self) -> None:
        self.clear_log()
        self.page_size = 100
        self.state = GitLabState()

    def rate_limited(self, *, retry_after: int = 1, method: str | None = None, path: str | None = None) -> None:
        """The next matching request gets GitLab's 429, with `Retry-After` and `RateLimit-Reset`."""
        self.inject(
            429,
            {"message": "Retry later"},
            headers={
                "Retry-After": str(retry_after),
                "RateLimit-Reset": str(int(time.time()) + retry_after),
                "RateLimit-Remaining": "0",
            },
            method=method,
            path_contains=path,
        )

    def server_error(
        self, *, status: int = 502, times: int = 1, method: str | None = None, path: str | None = None
    ) -> None:
        self.inject(status, {"message": "502 Bad Gateway"}, method=method, path_contains=path, times=times)

    def notes_on(self, project: int, iid: int) -> list[dict[str, Any]]:
        return [n for n in self.state.notes.values() if n["project"] == project and n["iid"] == iid]

    def add_note(self, project: int, iid: int, body: str, *, author: str = "someone", system: bool = False) -> int:
        note_id = next(self._ids)
        self.state.notes[note_id] = {
            "id": note_id,
            "project": project,
            "iid": iid,
            "body": body,
            "author": author,
            "system": system,
        }
        return note_id

    # --- helpers ------------------------------------------------------------------------------------------------

    def _authorized(self, call: Call) -> bool:
        bearer = call.headers.get("authorization", "")
        return call.headers.get("private-token") == TOKEN or bearer == f"Bearer {TOKEN}"

    def _project(self, call: Call) -> int | None:
        """The project's numeric id from a numeric id or an encoded path; a raw `/` never gets here (no match)."""
        raw = call.params["project"]
        if raw.isdigit():
            return int(raw) if int(raw) in self.state.projects.values() else None
        return self.state.projects.get(unquote(raw))

    def _guard(self, call: Call) -> tuple[int | None, JSONResponse | None]:
        if not self._authorized(call):
            return None, JSONResponse({"message": "401 Unauthorized"}, status_code=401)
        project = self._project(call)
        if project is None:
            return None, JSONResponse({"message": "404 Project Not Found"}, status_code=404)
        return project, None

    def _page(self, call: Call, items: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], dict[str, str]]:
        """The page of `items` the query asks for (`per_page`, 20 by default, at most `page_size`; `page`) and
        GitLab's pagination headers for it."""
        query = call.request.query_params
        per_page = min(int(query.get("per_page", "20")), self.page_size)
        page = int(query.get("page", "1"))
        pages = max(1, -(-len(items) // per_page))
        headers = {
            "X-Page": str(page),
            "X-Per-Page": str(per_page),
            "X-Total": str(len(items)),
            "X-Total-Pages": str(pages),
            "X-Next-Page": str(page + 1) if page < pages else "",
            "X-Prev-Page": str(page - 1) if page > 1 else "",
        }
        return items[(page - 1) * per_page : page * per_page], headers

    def _author(self, base: str, name: str) -> dict[str, Any]:
        return {"id": 3, "username": name, "name": name, "state": "active", "web_url": f"{base}/{name}"}

    # --- statuses -----------------------------------------------------------------------------------------------

    async def _post_status(self, call: Call) -> Response:
        project, denied = self._guard(call)
        if denied is not None:
            return denied
        body = call.body or {}
        state = body.get("state")
        if state not in STATES:
            return JSONResponse({"error": "state does not have a valid value"}, status_code=400)
        name = body.get("name", "default")
        sha = call.params["sha"]
        previous = [s for s in self.state.statuses if s["project"] == project and s["sha"] == sha and s["name"] == name]
        if previous and previous[-1]["status"] == state:
            event = _EVENTS[state]
            message = f"Cannot transition status via :{event} from :{state}"
            return JSONResponse({"message": f'{message} (Reason(s): Status cannot transition via "{event}")'}, 400)
        status_id = next(self._ids)
        stored = {
            "id": status_id,
            "project": project,
            "sha": sha,
            "name": name,
            "status": state,
            "description": body.get("description"),
            "target_url": body.get("target_url"),
        }
        self.state.statuses.append(stored)
        answer = {
            **{k: v for k, v in stored.items() if k != "project"},
            "ref": "feature",
            "created_at": NOW,
            "started_at": None,
            "finished_at": None,
            "allow_failure": False,
            "coverage": None,
            "author": self._author(call.base_url, "taskmaster"),
        }
        return JSONResponse(answer, status_code=201)

    # --- notes --------------------------------------------------------------------------------------------------

    def _note_body(self, base: str, note: dict[str, Any]) -> dict[str, Any]:
        return {
            "id": note["id"],
            "type": None,
            "body": note["body"],
            "author": self._author(base, note["author"]),
            "created_at": NOW,
            "updated_at": NOW,
            "system": note["system"],
            "noteable_id": 9000 + note["iid"],
            "noteable_type": "MergeRequest",
            "noteable_iid": note["iid"],
            "resolvable": False,
            "confidential": False,
            "internal": False,
        }

    async def _list_notes(self, call: Call) -> Response:
        project, denied = self._guard(call)
        if denied is not None or project is None:
            return denied or JSONResponse({}, status_code=404)
        everything = sorted(self.notes_on(project, int(call.params["iid"])), key=lambda n: n["id"])
        chunk, headers = self._page(call, everything)
        return JSONResponse([self._note_body(call.base_url, n) for n in chunk], headers=headers)

    async def _create_note(self, call: Call) -> Response:
        project, denied = self._guard(call)
        if denied is not None or project is None:
            return denied or JSONResponse({}, status_code=404)
        body = (call.body or {}).get("body")
        if not body:
            return JSONResponse({"message": {"note": ["can't be blank"]}}, status_code=400)
        note_id = self.add_note(project, int(call.params["iid"]), body, author="taskmaster")
        return JSONResponse(self._note_body(call.base_url, self.state.notes[note_id]), status_code=201)

    async def _update_note(self, call: Call) -> Response:
        project, denied = self._guard(call)
        if denied is not None:
            return denied
        note = self.state.notes.get(int(call.params["id"]))
        if note is None or note["project"] != project:
            return JSONResponse({"message": "404 Not found"}, status_code=404)
        note["body"] = (call.body or {})["body"]
        return JSONResponse(self._note_body(call.base_url, note))

    # --- branches, merge requests, issues -----------------------------------------------------------------------

    async def _create_branch(self, call: Call) -> Response:
        project, denied = self._guard(call)
        if denied is not None or project is None:
            return denied or JSONResponse({}, status_code=404)
        body = call.body or {}
        name, ref = body.get("branch"), body.get("ref")
        if not name or not ref:
            return JSONResponse({"error": "branch is missing, ref is missing"}, status_code=400)
        if (project, name) in self.state.branches:
            return JSONResponse({"message": "Branch already exists"}, status_code=400)
        self.state.branches[(project, name)] = ref
        return JSONResponse(
            {"name": name, "commit": {"id": ref, "short_id": ref[:8]}, "merged": False, "protected": False},
            status_code=201,
        )

    async def _create_merge_request(self, call: Call) -> Response:
        project, denied = self._guard(call)
        if denied is not None or project is None:
            return denied or JSONResponse({}, status_code=404)
        body = call.body or {}
        for open_mr in self.state.merge_requests:
            # GitLab refuses a second open merge request between the same two branches of the same projects.
            if (
                open_mr["project"] == project
                and open_mr["source_project"] == project
                and open_mr["state"] == "opened"
                and open_mr.get("source_branch") == body.get("source_branch")
                and open_mr.get("target_branch") == body.get("target_branch")
            ):
                return JSONResponse(
                    {
                        "message": [
                            f"Another open merge request already exists for this source branch: !{open_mr['iid']}"
                        ]
                    },
                    status_code=409,
                )
        stored = self.add_merge_request(project, **body)
        return JSONResponse(self._merge_request_body(call.base_url, stored), status_code=201)

    def add_merge_request(
        self, project: int, *, state: str = "opened", source_project: int | None = None, **fields: Any
    ) -> dict[str, Any]:
        """Store a merge request as GitLab would hold it (`source_branch`, `target_branch`, `title`, ... in
        `fields`); `source_project` is the fork it comes from, the project itself by default."""
        iid = len([m for m in self.state.merge_requests if m["project"] == project]) + 1
        stored = {"project": project, "iid": iid, "state": state, "sha": "a" * 40, "mergeable": True, **fields}
        stored["source_project"] = project if source_project is None else source_project
        # Each push is a version of the diff: (head, base, start) commits, newest first, as GitLab lists them.
        stored["versions"] = [{"head": "a" * 40, "base": "b" * 40, "start": "b" * 40}]
        self.state.merge_requests.append(stored)
        return stored

    async def _list_merge_requests(self, call: Call) -> Response:
        """`GET /projects/:id/merge_requests`: the project's merge requests, newest first, filtered by `state`
        (`all` by default), `source_branch` and `target_branch`, paged with `X-Next-Page`."""
        project, denied = self._guard(call)
        if denied is not None or project is None:
            return denied or JSONResponse({}, status_code=404)
        query = call.request.query_params
        state = query.get("state", "all")
        if state not in ("opened", "closed", "locked", "merged", "all"):
            return JSONResponse({"error": "state does not have a valid value"}, status_code=400)
        found = [
            m
            for m in self.state.merge_requests
            if m["project"] == project
            and state in ("all", m["state"])
            and query.get("source_branch") in (None, m.get("source_branch"))
            and query.get("target_branch") in (None, m.get("target_branch"))
        ]
        found.sort(key=lambda m: m["iid"], reverse=True)
        chunk, headers = self._page(call, found)
        return JSONResponse([self._merge_request_body(call.base_url, m) for m in chunk], headers=headers)

    def _merge_request_body(self, base: str, mr: dict[str, Any]) -> dict[str, Any]:
        path = next(p for p, i in self.state.projects.items() if i == mr["project"])
        title = mr.get("title", "")
        latest = mr.setdefault("versions", [{"head": mr["sha"], "base": "b" * 40, "start": "b" * 40}])[0]
        return {
            "id": 9000 + mr["iid"],
            "iid": mr["iid"],
            "project_id": mr["project"],
            "source_project_id": mr.get("source_project", mr["project"]),
            "target_project_id": mr["project"],
            "title": title,
            "description": mr.get("description"),
            "state": mr["state"],
            "draft": title.lower().startswith("draft:"),
            "source_branch": mr.get("source_branch"),
            "target_branch": mr.get("target_branch"),
            "sha": mr["sha"],
            "merge_commit_sha": mr.get("merge_commit_sha"),
            "squash_commit_sha": mr.get("squash_commit_sha"),
            "web_url": f"{base}/{path}/-/merge_requests/{mr['iid']}",
            "diff_refs": {"base_sha": latest["base"], "head_sha": latest["head"], "start_sha": latest["start"]},
        }

    def push(self, project: int, iid: int, head: str) -> None:
        """A new commit on the merge request's branch: a new head and a new diff version."""
        mr = next(m for m in self.state.merge_requests if m["project"] == project and m["iid"] == iid)
        mr["sha"] = head
        mr["versions"].insert(0, {"head": head, "base": "b" * 40, "start": "b" * 40})

    async def _versions(self, call: Call) -> Response:
        mr, denied = self._find_merge_request(call)
        if denied is not None or mr is None:
            return denied or JSONResponse({}, status_code=404)
        return JSONResponse(
            [
                {
                    "id": 700 + number,
                    "head_commit_sha": version["head"],
                    "base_commit_sha": version["base"],
                    "start_commit_sha": version["start"],
                    "created_at": NOW,
                    "merge_request_id": 9000 + mr["iid"],
                    "state": "collected",
                    "real_size": "1",
                }
                for number, version in enumerate(mr["versions"])
            ]
        )

    async def _create_discussion(self, call: Call) -> Response:
        mr, denied = self._find_merge_request(call)
        if denied is not None or mr is None:
            return denied or JSONResponse({}, status_code=404)
        body = call.body or {}
        if not body.get("body"):
            return JSONResponse({"message": {"note": ["can't be blank"]}}, status_code=400)
        position = body.get("position")
        if position is not None:
            refs = {(v["base"], v["start"], v["head"]) for v in mr["versions"]}
            lines = self.state.diff_lines.get((mr["project"], mr["iid"]))
            known = (position.get("base_sha"), position.get("start_sha"), position.get("head_sha")) in refs
            on_diff = lines is None or position.get("new_line") in lines.get(position.get("new_path"), set())
            if position.get("position_type") != "text" or not known or not on_diff:
                # What GitLab answers for a position it cannot place on the diff.
                message = '400 Bad request - Note {:line_code=>["can\'t be blank", "must be a valid line code"]}'
                return JSONResponse({"message": message}, status_code=400)
        note_id = next(self._ids)
        discussion_id = f"{note_id:040x}"
        self.state.discussions.append(
            {"id": discussion_id, "project": mr["project"], "iid": mr["iid"], "note_id": note_id, **body}
        )
        note = {
            "id": note_id,
            "type": "DiffNote" if position is not None else "DiscussionNote",
            "body": body["body"],
            "author": self._author(call.base_url, "taskmaster"),
            "created_at": NOW,
            "updated_at": NOW,
            "system": False,
            "noteable_id": 9000 + mr["iid"],
            "noteable_type": "MergeRequest",
            "noteable_iid": mr["iid"],
            "resolvable": True,
            "resolved": False,
            "position": position,
        }
        return JSONResponse({"id": discussion_id, "individual_note": False, "notes": [note]}, status_code=201)

    def _find_merge_request(self, call: Call) -> tuple[dict[str, Any] | None, JSONResponse | None]:
        project, denied = self._guard(call)
        if denied is not None:
            return None, denied
        iid = int(call.params["iid"])
        found = next((m for m in self.state.merge_requests if m["project"] == project and m["iid"] == iid), None)
        return found, None if found else JSONResponse({"message": "404 Not found"}, status_code=404)

    async def _get_merge_request(self, call: Call) -> Response:
        mr, denied = self._find_merge_request(call)
        return denied or JSONResponse(self._merge_request_body(call.base_url, mr or {}))

    async def _merge_merge_request(self, call: Call) -> Response:
        mr, denied = self._find_merge_request(call)
        if denied is not None or mr is None:
            return denied or JSONResponse({}, status_code=404)
        body = call.body or {}
        if mr["state"] != "opened" or not mr["mergeable"]:
            return JSONResponse({"message": "405 Method Not Allowed"}, status_code=405)
        if body.get("sha") not in (None, mr["sha"]):
            return JSONResponse({"message": "SHA does not match HEAD of source branch"}, status_code=409)
        commit = f"{next(self._ids):040x}"
        mr["state"] = "merged"
        mr["squash_commit_sha" if body.get("squash") else "merge_commit_sha"] = commit
        return JSONResponse(self._merge_request_body(call.base_url, mr))

    async def _update_merge_request(self, call: Call) -> Response:
        mr, denied = self._find_merge_request(call)
        if denied is not None or mr is None:
            return denied or JSONResponse({}, status_code=404)
        if (call.body or {}).get("state_event") == "close" and mr["state"] == "opened":
            mr["state"] = "closed"
        return JSONResponse(self._merge_request_body(call.base_url, mr))

    async def _create_issue(self, call: Call) -> Response:
        project, denied = self._guard(call)
        if denied is not None or project is None:
            return denied or JSONResponse({}, status_code=404)
        body = call.body or {}
        iid = len([i for i in self.state.issues if i["project"] == project]) + 1
        self.state.issues.append({"project": project, "iid": iid, **body})
        path = next(p for p, i in self.state.projects.items() if i == project)
        labels = [label for label in (body.get("labels") or "").split(",") if label]
        return JSONResponse(
            {
                "id": 8000 + iid,
                "iid": iid,
                "project_id": project,
                "title": body.get("title"),
                "description": body.get("description"),
                "state": "opened",
                "labels": labels,
                "web_url": f"{call.base_url}/{path}/-/issues/{iid}",
            },
            status_code=201,
        )

    # --- files and permissions ----------------------------------------------------------------------------------

    async def _raw_file(self, call: Call) -> Response:
        project, denied = self._guard(call)
        if denied is not None or project is None:
            return denied or JSONResponse({}, status_code=404)
        ref = call.request.query_params.get("ref")
        if not ref:
            return JSONResponse({"error": "ref is missing"}, status_code=400)
        content = self.state.files.get((project, ref, unquote(call.params["path"])))
        if content is None:
            return JSONResponse({"message": "404 File Not Found"}, status_code=404)
        return Response(content, media_type="text/plain")

    async def _users(self, call: Call) -> Response:
        if not self._authorized(call):
            return JSONResponse({"message": "401 Unauthorized"}, status_code=401)
        username = call.request.query_params.get("username")
        user_id = self.state.users.get(username or "")
        found = [] if user_id is None else [{"id": user_id, "username": username, "name": username, "state": "active"}]
        return JSONResponse(found)

    async def _member(self, call: Call) -> Response:
        project, denied = self._guard(call)
        if denied is not None or project is None:
            return denied or JSONResponse({}, status_code=404)
        user_id = int(call.params["user"])
        level = self.state.members.get((project, user_id))
        if level is None:
            return JSONResponse({"message": "404 Not found"}, status_code=404)
        username = next((u for u, i in self.state.users.items() if i == user_id), "someone")
        return JSONResponse({"id": user_id, "username": username, "state": "active", "access_level": level})


@contextmanager
def serve_gitlab() -> Iterator[tuple[str, FakeGitLab]]:
    """Start a fake GitLab on loopback; yields its base URL (what `GitLabForge(base_url=...)` takes) and state."""
    fake = FakeGitLab()
    with live_server(fake.app()) as url:
        yield url, fake
