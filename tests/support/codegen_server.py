"""A fake Codegen API on loopback speaking its wire format (integer ids, `AgentRunResponse`, `{message,
status_code}` errors, FastAPI's 422), scriptable per test and recording every request it received.

Runs follow a script of statuses, one per read (the last repeats), in whatever case the test gives; errors are
injected per route (`fail_next`), optionally after the change took effect (`applied=True`: a lost answer).
"""

from __future__ import annotations

import itertools
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Literal

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from tests.support.net import live_server

API_KEY = "cg-test-key-5d1f0a9c3b7e"
ORG_ID = 4242
Route = Literal["create", "get", "resume", "list", "repos"]


@dataclass(frozen=True)
class Fail:
    """An error answer: `status` with Codegen's `{message, status_code}` body and `headers` (e.g. Retry-After).
    `applied`: the change is made before the error is sent (the client cannot know whether it was)."""

    status: int
    message: str | None = None
    headers: dict[str, str] = field(default_factory=dict)
    applied: bool = False


@dataclass(frozen=True)
class Received:
    method: str
    path: str
    headers: dict[str, str]
    query: dict[str, str]
    body: dict[str, Any] | None
    at: float


@dataclass
class FakeRun:
    id: int
    prompt: str
    body: dict[str, Any]
    statuses: deque[str]
    summary: str | None = None
    result: str | None = None
    pull_requests: list[dict[str, Any]] = field(default_factory=list)
    follow_ups: list[str] = field(default_factory=list)
    created_at: str = ""

    def status(self, advance: bool) -> str:
        current = self.statuses[0]
        if advance and len(self.statuses) > 1:
            self.statuses.popleft()
        return current


@dataclass
class RunScript:
    """What the next created run does: its statuses (one per read), and what it reports once it is done."""

    statuses: list[str] = field(default_factory=lambda: ["PENDING", "RUNNING", "COMPLETE"])
    summary: str | None = "Implemented the task."
    result: str | None = "Changed the code and opened a pull request."
    pull_request: bool = True
    head_branch: str | None = None


_RUN_ERRORS = {
    401: "Invalid or expired API token.",
    402: "Alloted agent runs for the current billing plan have been reached. Please upgrade your plan to continue.",
    403: "You do not have access to this organization.",
    404: "Agent run not found.",
    429: "Rate limit exceeded. Please try again later.",
}


class FakeCodegen:
    """The state of one fake server; tests change it between requests (thread-safe)."""

    def __init__(self) -> None:
        self.api_key = API_KEY
        self.org_id = ORG_ID
        self.url = ""
        self.requests: list[Received] = []
        self.runs: dict[int, FakeRun] = {}
        self.repos: list[dict[str, Any]] = []
        self.scripts: deque[RunScript] = deque()
        self.default_script = RunScript()
        self.resume_statuses: list[str] = ["RUNNING", "COMPLETE"]
        self.plan_exhausted = False
        self.open_pull_request: Callable[[FakeRun, str], dict[str, Any]] | None = None
        """Where a run's pull request is opened (e.g. on a fake GitHub): given the run and its head branch, returns
        `{"url", "title"}`; unset, the run reports a made-up github.com URL."""
        self._failures: dict[Route, deque[Fail]] = {}
        self._ids = itertools.count(9001)
        self._pr_numbers = itertools.count(1)
        self._lock = threading.Lock()

    def reset(self) -> None:
        """Back to a fresh server at the same URL."""
        url = self.url
        self.__init__()  # type: ignore[misc]
        self.url = url

    def script(self, *scripts: RunScript) -> None:
        """The next created runs follow these scripts, in order (then `default_script`)."""
        self.scripts.extend(scripts)

    def fail_next(self, route: Route, *failures: Fail) -> None:
        """The next requests to `route` get these answers, one each, before it answers normally again."""
        self._failures.setdefault(route, deque()).extend(failures)

    def add_repo(self, full_name: str) -> int:
        repo_id = 100 + len(self.repos)
        self.repos.append(
            {
                "id": repo_id,
                "name": full_name.split("/")[-1],
                "full_name": full_name,
                "description": None,
                "github_id": str(5000 + repo_id),
                "organization_id": self.org_id,
                "visibility": "PRIVATE",
                "archived": False,
                "setup_status": "COMPLETE",
                "language": "Python",
            }
        )
        return repo_id

    def sent(self, route_path: str, method: str | None = None) -> list[Received]:
        """Requests whose path ends with `route_path` (and of `method`)."""
        return [r for r in self.requests if r.path.endswith(route_path) and (method is None or r.method == method)]

    def run_json(self, run: FakeRun, *, advance: bool) -> dict[str, Any]:
        status = run.status(advance)
        done = status.lower() in ("complete", "completed")
        return {
            "id": run.id,
            "organization_id": self.org_id,
            "status": status,
            "created_at": run.created_at,
            "web_url": f"https://codegen.com/agent/trace/{run.id}",
            "result": run.result if done or status.lower() not in ("pending", "running", "active") else None,
            "summary": run.summary if done else None,
            "source_type": "API",
            "github_pull_requests": run.pull_requests if done else [],
            "metadata": run.body.get("metadata"),
        }


class _CreateAgentRunInput(BaseModel):
    prompt: str
    images: list[str] | None = None
    metadata: dict[str, Any] | None = None
    repo_id: int | None = None
    model: str | None = None
    agent_type: Literal["codegen", "claude_code"] | None = None


class _ResumeAgentRunInput(BaseModel):
    agent_run_id: int
    prompt: str
    images: list[str] | None = None


def _error(status: int, message: str | None = None, headers: dict[str, str] | None = None) -> JSONResponse:
    body = {"message": message or _RUN_ERRORS.get(status, "error"), "status_code": status}
    return JSONResponse(body, status_code=status, headers=headers)


def codegen_app(fake: FakeCodegen) -> FastAPI:
    app = FastAPI()
    prefix = "/v1/organizations/{org_id}"

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = [{"loc": list(e["loc"]), "msg": e["msg"], "type": e["type"]} for e in exc.errors()]
        return JSONResponse({"detail": errors}, status_code=422)

    async def gate(request: Request, route: Route, org_id: int) -> tuple[JSONResponse | None, Fail | None]:
        """Record the request; answer auth, organisation and injected errors (None: go on)."""
        try:
            body = await request.json() if request.method == "POST" else None
        except ValueError:
            body = None
        with fake._lock:
            fake.requests.append(
                Received(
                    request.method,
                    request.url.path,
                    dict(request.headers),
                    dict(request.query_params),
                    body,
                    time.monotonic(),
                )
            )
            pending = fake._failures.get(route)
            injected = pending.popleft() if pending else None
        if request.headers.get("authorization") != f"Bearer {fake.api_key}":
            return _error(401), None
        if org_id != fake.org_id:
            return _error(403), None
        if injected is not None and not injected.applied:
            return _error(injected.status, injected.message, injected.headers), None
        return None, injected

    def after(injected: Fail | None, answer: dict[str, Any]) -> JSONResponse:
        if injected is not None:
            return _error(injected.status, injected.message, injected.headers)
        return JSONResponse(answer)

    @app.post(prefix + "/agent/run")
    async def create(org_id: int, request: Request, payload: _CreateAgentRunInput) -> JSONResponse:
        refused, injected = await gate(request, "create", org_id)
        if refused is not None:
            return refused
        if fake.plan_exhausted:
            return _error(402)
        if payload.repo_id is not None and payload.repo_id not in {repo["id"] for repo in fake.repos}:
            return _error(404, "No repos found in the organization. Please add some repos and try again.")
        with fake._lock:
            script = fake.scripts.popleft() if fake.scripts else fake.default_script
            run = FakeRun(
                id=next(fake._ids),
                prompt=payload.prompt,
                body=payload.model_dump(exclude_none=True),
                statuses=deque(script.statuses),
                summary=script.summary,
                result=script.result,
                created_at=f"2026-01-01T00:00:{len(fake.runs):02d}Z",
            )
            if script.pull_request:
                number = next(fake._pr_numbers)
                head = script.head_branch or f"codegen-bot/run-{run.id}"
                opened = (
                    fake.open_pull_request(run, head)
                    if fake.open_pull_request is not None
                    else {"url": f"https://github.com/acme/widgets/pull/{number}", "title": "Codegen change"}
                )
                run.pull_requests.append(
                    {"id": 70000 + number, "created_at": run.created_at, "head_branch_name": head, **opened}
                )
            fake.runs[run.id] = run
            answer = fake.run_json(run, advance=False)
        return after(injected, answer)

    @app.get(prefix + "/agent/run/{agent_run_id}")
    async def read(org_id: int, agent_run_id: int, request: Request) -> JSONResponse:
        refused, injected = await gate(request, "get", org_id)
        if refused is not None:
            return refused
        with fake._lock:
            run = fake.runs.get(agent_run_id)
            if run is None:
                return _error(404)
            answer = fake.run_json(run, advance=True)
        return after(injected, answer)

    @app.post(prefix + "/agent/run/resume")
    async def resume(org_id: int, request: Request, payload: _ResumeAgentRunInput) -> JSONResponse:
        refused, injected = await gate(request, "resume", org_id)
        if refused is not None:
            return refused
        with fake._lock:
            run = fake.runs.get(payload.agent_run_id)
            if run is None:
                return _error(404)
            run.follow_ups.append(payload.prompt)
            run.statuses = deque(fake.resume_statuses)
            answer = fake.run_json(run, advance=False)
        return after(injected, answer)

    @app.get(prefix + "/agent/runs")
    async def list_runs(
        org_id: int, request: Request, skip: int = 0, limit: int = 100, source_type: str | None = None
    ) -> JSONResponse:
        refused, _ = await gate(request, "list", org_id)
        if refused is not None:
            return refused
        with fake._lock:
            runs = sorted(fake.runs.values(), key=lambda run: run.id, reverse=True)
            items = [fake.run_json(run, advance=False) for run in runs[skip : skip + limit]]
        return JSONResponse({"items": items, "total": len(runs), "page": skip // limit + 1, "size": limit, "pages": 1})

    @app.get(prefix + "/repos")
    async def repos(org_id: int, request: Request, skip: int = 0, limit: int = 100) -> JSONResponse:
        refused, _ = await gate(request, "repos", org_id)
        if refused is not None:
            return refused
        items = fake.repos[skip : skip + limit]
        pages = max(1, -(-len(fake.repos) // limit))
        return JSONResponse(
            {"items": items, "total": len(fake.repos), "page": skip // limit + 1, "size": limit, "pages": pages}
        )

    return app


@contextmanager
def serve_codegen() -> Iterator[FakeCodegen]:
    """Start a fake Codegen API on an ephemeral loopback port; `fake.url` is its base URL (CODEGEN_API_URL)."""
    fake = FakeCodegen()
    with live_server(codegen_app(fake)) as url:
        fake.url = url
        yield fake
