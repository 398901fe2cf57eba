"""The task and codegen commands as a client of a running Taskmaster's REST API (`TASKMASTER_URL`).

Kept to light imports (httpx and the task schemas, no database layer), because the point of this path is that an
agent's `taskmaster task next` starts fast: importing SQLAlchemy's ORM alone costs more than the whole request.
"""

from __future__ import annotations

from typing import Any

import httpx

from taskmaster.cli import common
from taskmaster.config import Settings
from taskmaster.tasks.schemas import TaskOut

USAGE_STATUSES = frozenset({400, 404, 409, 422})
"""Answers that mean the request itself was wrong (unknown project, task not ready, bad agent): exit 2."""


class RemoteTasks:
    """`GET/POST /api/projects/{project}/tasks/...` with the configured token; errors end the command in one line."""

    def __init__(self, settings: Settings) -> None:
        assert settings.client.url is not None
        token = settings.client.token.get_secret_value() if settings.client.token else _local_admin_token(settings)
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self.url = settings.client.url
        self.http = httpx.Client(base_url=self.url, headers=headers, timeout=30)

    def next(self, project: str | None, *, type_: str | None, assignee: str | None) -> TaskOut | None:
        params = {k: v for k, v in {"type": type_, "assignee": assignee}.items() if v}
        return _task(self._call("GET", f"{self._tasks(project)}/next", params=params))

    def claim(self, project: str | None, *, assignee: str, lease_seconds: int, type_: str | None) -> TaskOut | None:
        body: dict[str, Any] = {"assignee": assignee, "lease_seconds": lease_seconds}
        if type_:
            body["type"] = type_
        return _task(self._call("POST", f"{self._tasks(project)}/claim", json=body))

    def _tasks(self, project: str | None) -> str:
        if project is None:
            projects = self._call("GET", "/api/projects")
            if len(projects) != 1:
                names = ", ".join(p["name"] for p in projects) or "none"
                common.fail(f"{len(projects)} projects on {self.url} ({names}): pass --project")
            project = projects[0]["name"]
        return f"/api/projects/{project}/tasks"

    def _call(self, method: str, path: str, **kwargs: Any) -> Any:
        try:
            response = self.http.request(method, path, **kwargs)
        except httpx.HTTPError as exc:
            common.fail(f"cannot reach Taskmaster at {self.url}: {exc}", common.EXIT_FAILURE)
        if response.status_code >= 400:
            try:
                detail = response.json().get("detail", response.text)
            except ValueError:
                detail = response.text
            common.fail(f"{self.url} answered {response.status_code}: {detail}", common.EXIT_FAILURE)
        return response.json()


class RemoteCodegen:
    """`/api/projects/{project}/codegen` and `/api/codegen-runs…` with the configured token. An answer of 400, 404,
    409 or 422 to `start` ends the command with exit 2 (a usage error); other failures with exit 1."""

    def __init__(self, settings: Settings) -> None:
        assert settings.client.url is not None
        token = settings.client.token.get_secret_value() if settings.client.token else _local_admin_token(settings)
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self.url = settings.client.url
        self.http = httpx.AsyncClient(base_url=self.url, headers=headers, timeout=30)

    async def start(self, project: str, request: dict[str, Any]) -> list[dict[str, Any]]:
        started = await self._call("POST", f"/api/projects/{project}/codegen", usage=True, json=request)
        runs: list[dict[str, Any]] = started["runs"]
        return runs

    async def get(self, run_id: str) -> dict[str, Any]:
        found: dict[str, Any] = await self._call("GET", f"/api/codegen-runs/{run_id}")
        return found

    async def list_runs(self, *, project: str | None, status: str | None, limit: int) -> list[dict[str, Any]]:
        params: dict[str, Any] = {k: v for k, v in {"project": project, "status": status}.items() if v}
        items: list[dict[str, Any]] = (await self._call("GET", "/api/codegen-runs", params={**params, "limit": limit}))[
            "items"
        ]
        return items

    async def live_runs(self, project_id: str) -> list[dict[str, Any]]:
        """The project's pending and running runs."""
        runs: list[dict[str, Any]] = []
        for status in ("pending", "running"):
            runs.extend(await self.list_runs(project=project_id, status=status, limit=100))
        return runs

    async def cancel(self, run_id: str) -> dict[str, Any]:
        canceled: dict[str, Any] = await self._call("POST", f"/api/codegen-runs/{run_id}/cancel")
        return canceled

    async def task_status(self, project: str, number: int) -> str:
        task = await self._call("GET", f"/api/projects/{project}/tasks/{number}")
        return str(task["status"])

    async def settle(self) -> None:
        """Nothing runs here: the server's worker undoes the canceled runs."""

    async def aclose(self) -> None:
        await self.http.aclose()

    async def _call(self, method: str, path: str, *, usage: bool = False, **kwargs: Any) -> Any:
        try:
            response = await self.http.request(method, path, **kwargs)
        except httpx.HTTPError as exc:
            common.fail(f"cannot reach Taskmaster at {self.url}: {exc}", common.EXIT_FAILURE)
        if response.status_code >= 400:
            try:
                detail = response.json().get("detail", response.text)
            except ValueError:
                detail = response.text
            code = common.EXIT_ERROR if usage and response.status_code in USAGE_STATUSES else common.EXIT_FAILURE
            common.fail(f"{self.url} answered {response.status_code}: {detail}", code)
        return response.json()


def _task(data: Any) -> TaskOut | None:
    return None if data is None else TaskOut.model_validate(data)


def _local_admin_token(settings: Settings) -> str | None:
    path = settings.admin_token_file
    return path.read_text().strip() if path.is_file() else None
