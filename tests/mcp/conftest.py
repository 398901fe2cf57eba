"""MCP fixtures: a seeded task graph, the server in-process, and `taskmaster mcp` as a real subprocess."""

from __future__ import annotations

import json
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from mcp.client.stdio import StdioServerParameters
from mcp.server.mcpserver import MCPServer
from mcp.types import CallToolResult

from taskmaster.config import Settings
from taskmaster.db.session import Database
from taskmaster.mcp.server import build_server
from taskmaster.projects import service as projects
from taskmaster.projects.schemas import ProjectCreate
from taskmaster.secrets import SecretBox
from taskmaster.tasks import service
from taskmaster.tasks.schemas import TaskCreate
from tests.conftest import settings_on

# (title, fields, dependencies by number, parent by number). Ready, best first: 1 (priority 1), then 4 and 7
# (priority 2, by number), then 3. Task 2 waits on 1 and task 5 on 2; 6 is under way, so only its subtask 7 can start.
GRAPH: list[tuple[str, dict[str, Any], list[int], int | None]] = [
    ("Schema", {"priority": 1, "details": "Tables and migrations.", "complexity": 3}, [], None),
    ("API", {"priority": 2, "description": "REST endpoints."}, [1], None),
    ("Docs", {"priority": 3, "type": "docs"}, [], None),
    ("Logging", {"priority": 2, "type": "chore"}, [], None),
    ("Tests", {"priority": 3, "type": "test"}, [2], None),
    ("Auth", {"priority": 2, "status": "in_progress"}, [], None),
    ("Login form", {"priority": 2}, [], 6),
]
READY_ORDER = [1, 4, 7, 3]
TOOLS = {
    "list_projects", "list_tasks", "get_task", "next_task", "ready_tasks", "claim_task", "add_task", "update_task",
    "set_task_status", "add_dependency", "remove_dependency", "validate_dependencies", "fix_dependencies",
    "delete_task", "parse_prd", "expand_task", "analyze_complexity", "generate_code", "list_codegen_runs",
    "get_codegen_run",
}  # fmt: skip


async def seed_project(db: Database, settings: Settings, name: str = "app") -> dict[int, str]:
    """Create project `name` holding GRAPH; returns task ids by number."""
    async with db.transaction() as session:
        spec = ProjectCreate(name=name, repository=f"/repos/{name}")
        project = await projects.create_project(session, spec=spec, box=SecretBox.from_settings(settings))
    ids: dict[int, str] = {}
    for number, (title, fields, needs, parent) in enumerate(GRAPH, start=1):
        async with db.transaction() as session:
            locked = await service.lock_project(session, project.id)
            task_spec = TaskCreate(
                title=title,
                dependencies=[ids[n] for n in needs],
                parent_task_id=ids[parent] if parent else None,
                **fields,
            )
            ids[number] = str((await service.create_task(session, project=locked, spec=task_spec)).id)
    return ids


def payload(result: CallToolResult) -> Any:
    """A successful tool result's JSON, checked to be the same as text and as structured content."""
    assert not result.is_error, result.content
    assert len(result.content) == 1 and result.content[0].type == "text"
    data = json.loads(result.content[0].text)
    assert data == result.structured_content
    return data


def error_text(result: CallToolResult) -> str:
    """A failed tool result's message: one line, never a stack trace."""
    assert result.is_error
    text: str = result.content[0].text
    assert "\n" not in text and "Traceback" not in text
    return text


@pytest.fixture
async def settings(request: pytest.FixtureRequest, state_dir: Path) -> AsyncIterator[Settings]:
    """SQLite unless a test asks for PostgreSQL with `indirect` parametrization: the tools add no SQL of their
    own, so only the claim race needs both (the services' own tests cover the rest on both)."""
    async with settings_on(getattr(request, "param", "sqlite"), state_dir) as made:
        yield made


@pytest.fixture
async def seeded(db: Database, settings: Settings) -> dict[int, str]:
    return await seed_project(db, settings)


@pytest.fixture
def server(db: Database, settings: Settings, seeded: dict[int, str]) -> MCPServer[Any]:
    """A server over the seeded database, with stdio's trust (no auth). Tests connect with `Client(server)`:
    the client's task group must be entered and left in the test's own task."""
    return build_server(db, settings)


def server_command(*args: str) -> list[str]:
    """`python -m taskmaster mcp …`: the real command."""
    return [sys.executable, "-m", "taskmaster", "mcp", *args]


def stdio_parameters(home: Path) -> StdioServerParameters:
    command, *args = server_command()
    return StdioServerParameters(
        command=command, args=args, cwd=home, env={"TASKMASTER_HOME": str(home / "state"), "TASKMASTER_ENV": "test"}
    )
