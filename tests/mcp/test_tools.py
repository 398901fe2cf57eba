"""The MCP tools through the SDK's client (in-process): REST shapes, summaries unless asked, one-line errors."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from mcp.client import Client
from mcp.server.mcpserver import MCPServer
from mcp.shared.exceptions import MCPError

from taskmaster.config import Settings
from taskmaster.db.session import Database
from taskmaster.mcp.server import build_server
from taskmaster.projects.schemas import ProjectOut
from taskmaster.tasks.schemas import TaskOut, TaskSummary
from tests.conftest import make_settings
from tests.mcp.conftest import READY_ORDER, TOOLS, error_text, payload, seed_project
from tests.support import free_port


async def test_tools_are_listed_with_input_and_output_schemas(server: MCPServer[Any]) -> None:
    async with Client(server) as client:
        tools = {tool.name: tool for tool in (await client.list_tools()).tools}
        assert set(tools) == TOOLS
        for tool in tools.values():
            assert tool.description and tool.output_schema and tool.output_schema["type"] == "object"
            assert not any(line.startswith(" ") for line in tool.description.splitlines()), tool.description
            assert tool.annotations is not None and tool.annotations.read_only_hint is not None
            if tool.name not in {"list_projects", "get_codegen_run"}:
                assert "project" in tool.input_schema["properties"]
        assert tools["get_task"].input_schema["required"] == ["task"]
        assert tools["claim_task"].input_schema["required"] == ["assignee"]
        assert tools["set_task_status"].input_schema["required"] == ["task", "status"]
        listing = tools["list_tasks"].input_schema["properties"]
        assert listing["limit"]["maximum"] == 1000 and listing["details"]["default"] is False
        statuses = next(arm for arm in listing["status"]["anyOf"] if "enum" in arm)["enum"]
        assert statuses == ["pending", "in_progress", "review", "done", "blocked", "deferred", "cancelled"]
        priority = tools["add_task"].input_schema["properties"]["priority"]
        assert (priority["minimum"], priority["maximum"], priority["default"]) == (1, 5, 3)
        assert tools["delete_task"].annotations.destructive_hint is True  # type: ignore[union-attr]
        # Every REST field can come back with details=true: the output schema declares each one.
        view = tools["get_task"].output_schema["properties"]  # type: ignore[index]
        assert set(TaskOut.model_fields) <= set(view)
        assert set(tools["get_task"].output_schema["required"]) == set(TaskSummary.model_fields)  # type: ignore[index]
        project_view = tools["list_projects"].output_schema["$defs"]["ProjectView"]["properties"]  # type: ignore[index]
        assert set(ProjectOut.model_fields) <= set(project_view)


async def test_lists_give_summaries_unless_details_are_asked_for(
    server: MCPServer[Any], seeded: dict[int, str]
) -> None:
    async with Client(server) as client:
        page = payload(await client.call_tool("list_tasks", {}))
        assert (page["total"], page["limit"], page["offset"]) == (7, 50, 0)
        assert [t["number"] for t in page["items"]] == [1, 2, 3, 4, 5, 6, 7]
        assert set(page["items"][0]) == set(TaskSummary.model_fields)
        assert "details" not in page["items"][0] and "description" not in page["items"][0]
        api = page["items"][1]
        assert api["id"] == seeded[2] and api["dependencies"] == [seeded[1]] and api["status"] == "pending"
        assert page["items"][6]["parent_task_id"] == seeded[6]
        full = payload(await client.call_tool("list_tasks", {"details": True, "limit": 2, "offset": 1}))
        assert [t["number"] for t in full["items"]] == [2, 3] and full["total"] == 7
        assert set(full["items"][0]) == set(TaskOut.model_fields)
        assert full["items"][0]["description"] == "REST endpoints." and full["items"][0]["dependents_count"] == 1
        filtered = payload(await client.call_tool("list_tasks", {"type": "docs", "project": "app"}))
        assert [t["title"] for t in filtered["items"]] == ["Docs"] and filtered["total"] == 1
        top = payload(await client.call_tool("list_tasks", {"top_level": True, "status": "pending"}))
        assert [t["number"] for t in top["items"]] == [1, 2, 3, 4, 5]

        summary = payload(await client.call_tool("get_task", {"task": 1}))
        assert summary["title"] == "Schema" and "details" not in summary
        detailed = payload(await client.call_tool("get_task", {"task": "#1", "details": True}))
        assert detailed["details"] == "Tables and migrations." and detailed["complexity"] == 3
        assert payload(await client.call_tool("get_task", {"task": seeded[4]}))["title"] == "Logging"

        projects = payload(await client.call_tool("list_projects", {}))["items"]
        assert [(p["name"], p["repository"]) for p in projects] == [("app", "/repos/app")]
        assert set(projects[0]) == {"id", "name", "repository", "forge", "default_branch", "description"}
        assert set(payload(await client.call_tool("list_projects", {"details": True}))["items"][0]) == set(
            ProjectOut.model_fields
        )


async def test_next_and_ready_follow_priority_then_unblocked_work(
    server: MCPServer[Any], seeded: dict[int, str]
) -> None:
    async with Client(server) as client:
        chosen = payload(await client.call_tool("next_task", {}))
        assert chosen["task"]["number"] == 1 and chosen["task"]["id"] == seeded[1] and "details" not in chosen["task"]
        assert payload(await client.call_tool("next_task", {"details": True}))["task"]["details"] == (
            "Tables and migrations."
        )
        ready = payload(await client.call_tool("ready_tasks", {}))
        assert [t["number"] for t in ready["items"]] == READY_ORDER
        assert [t["number"] for t in payload(await client.call_tool("ready_tasks", {"limit": 2}))["items"]] == [1, 4]
        chores = payload(await client.call_tool("next_task", {"type": "chore"}))
        assert chores["task"]["title"] == "Logging"
        assert payload(await client.call_tool("next_task", {"type": "bug"})) == {
            "task": None,
            "message": "no task is ready",
        }
        payload(await client.call_tool("set_task_status", {"task": 1, "status": "done"}))
        # API (priority 2) now unblocks Tests: it moves ahead of Logging, which unblocks nothing.
        assert [t["number"] for t in payload(await client.call_tool("ready_tasks", {}))["items"]] == [2, 4, 7, 3]


@pytest.mark.parametrize("settings", ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)], indirect=True)
async def test_concurrent_claims_get_distinct_tasks_then_none(server: MCPServer[Any]) -> None:
    async with Client(server) as client:
        results = await asyncio.gather(
            *(client.call_tool("claim_task", {"assignee": f"agent-{n}", "lease_seconds": 600}) for n in range(7))
        )
        picks = [payload(result)["task"] for result in results]
        claimed = [task for task in picks if task is not None]
        assert sorted(task["number"] for task in claimed) == sorted(READY_ORDER)
        assert all(task["status"] == "in_progress" for task in claimed)
        assert len({task["assignee"] for task in claimed}) == len(READY_ORDER)
        assert picks.count(None) == 7 - len(READY_ORDER)
        mine = payload(await client.call_tool("list_tasks", {"assignee": claimed[0]["assignee"], "details": True}))
        assert mine["total"] == 1 and mine["items"][0]["lease_expires_at"] is not None
        released = payload(
            await client.call_tool("set_task_status", {"task": claimed[0]["number"], "status": "pending"})
        )
        assert released["items"][0]["status"] == "pending"
        again = payload(await client.call_tool("claim_task", {"assignee": "late", "details": True}))
        assert again["task"]["number"] == claimed[0]["number"] and again["task"]["claimed_at"] is not None


async def test_add_update_and_status_rules(server: MCPServer[Any], seeded: dict[int, str]) -> None:
    async with Client(server) as client:
        added = payload(
            await client.call_tool(
                "add_task",
                {
                    "title": "Rate limits",
                    "priority": 1,
                    "dependencies": [3, "#4"],
                    "parent_task_id": "6",
                    "type": "bug",
                },
            )
        )
        assert added["number"] == 8 and added["dependencies"] == [seeded[3], seeded[4]]
        assert added["parent_task_id"] == seeded[6] and added["type"] == "bug" and "details" not in added
        updated = payload(
            await client.call_tool(
                "update_task", {"task": 8, "details": "Token bucket.", "assignee": "ana", "priority": 2}
            )
        )
        assert updated["priority"] == 2 and updated["assignee"] == "ana"
        assert payload(await client.call_tool("get_task", {"task": 8, "details": True}))["details"] == "Token bucket."
        cleared = payload(await client.call_tool("update_task", {"task": 8, "assignee": ""}))
        assert cleared["assignee"] is None
        assert "nothing to change" in error_text(await client.call_tool("update_task", {"task": 8}))

        refused = error_text(await client.call_tool("set_task_status", {"task": 6, "status": "done"}))
        assert refused.endswith(
            "task #6 has open subtasks (#7, #8); finish them first or cascade the change with cascade=true"
        )
        assert payload(await client.call_tool("get_task", {"task": 6}))["status"] == "in_progress"  # rolled back
        changed = payload(await client.call_tool("set_task_status", {"task": 6, "status": "done", "cascade": True}))
        assert sorted(t["number"] for t in changed["items"]) == [6, 7, 8]
        assert {t["status"] for t in changed["items"]} == {"done"}
        assert payload(await client.call_tool("get_task", {"task": 7, "details": True}))["completed_at"] is not None

        bad_status = error_text(await client.call_tool("set_task_status", {"task": 1, "status": "finished"}))
        assert bad_status.startswith("Error executing tool set_task_status: invalid arguments: status: Input should be")
        too_high = error_text(await client.call_tool("add_task", {"title": "x", "priority": 9}))
        assert too_high.endswith("invalid arguments: priority: Input should be less than or equal to 5")
        missing = error_text(await client.call_tool("get_task", {}))
        assert missing.endswith("invalid arguments: task: Field required")
        assert payload(await client.call_tool("list_tasks", {}))["total"] == 8


async def test_dependency_edges_refuse_cycles_and_name_them(server: MCPServer[Any], seeded: dict[int, str]) -> None:
    async with Client(server) as client:
        cycle = error_text(await client.call_tool("add_dependency", {"task": 1, "depends_on": 5}))
        assert (
            cycle == "Error executing tool add_dependency: that dependency would create a cycle: #1 -> #5 -> #2 -> #1"
        )
        assert "cannot depend on itself" in error_text(
            await client.call_tool("add_dependency", {"task": 3, "depends_on": 3})
        )
        assert "already depends on #1" in error_text(
            await client.call_tool("add_dependency", {"task": 2, "depends_on": 1})
        )
        missing = error_text(await client.call_tool("add_dependency", {"task": 3, "depends_on": 99}))
        assert missing.endswith("task 99 does not exist in this project")
        edge = payload(await client.call_tool("add_dependency", {"task": 3, "depends_on": 4}))
        assert edge["number"] == 3 and edge["dependencies"] == [seeded[4]]
        assert payload(await client.call_tool("validate_dependencies", {})) == {
            "ok": True, "tasks": 7, "dependencies": 3, "findings": [],
        }  # fmt: skip
        dropped = payload(await client.call_tool("remove_dependency", {"task": 3, "depends_on": "4"}))
        assert dropped["dependencies"] == []
        again = error_text(await client.call_tool("remove_dependency", {"task": 3, "depends_on": 4}))
        assert again.endswith("task #3 does not depend on #4")
        assert payload(await client.call_tool("fix_dependencies", {}))["findings"] == []


async def test_validate_reports_and_fix_repairs_faults_written_around_the_service(
    server: MCPServer[Any], db: Database, seeded: dict[int, str]
) -> None:
    async with Client(server) as client:
        from sqlalchemy import update

        from taskmaster.db.models import Task

        # Another tool wrote the seed's column directly: a cycle (1 <-> 2) and a dangling reference.
        async with db.transaction() as session:
            await session.execute(update(Task).where(Task.number == 1).values(dependencies=[seeded[2], "ghost"]))
        report = payload(await client.call_tool("validate_dependencies", {"project": "app"}))
        assert report["ok"] is False
        assert {f["kind"] for f in report["findings"]} >= {"missing", "cycle"}
        assert any(f["task"] == 1 and f["depends_on"] == "ghost" for f in report["findings"])
        fixed = payload(await client.call_tool("fix_dependencies", {}))
        assert len(fixed["findings"]) == 2
        assert payload(await client.call_tool("validate_dependencies", {}))["ok"] is True


async def test_delete_is_refused_while_others_depend_unless_forced(server: MCPServer[Any]) -> None:
    async with Client(server) as client:
        refused = error_text(await client.call_tool("delete_task", {"task": 1}))
        assert refused.endswith(
            "tasks #2 depend on task #1; remove those dependencies first or force the removal with force=true"
        )
        assert "--" not in refused
        removed = payload(await client.call_tool("delete_task", {"task": 1, "force": True}))
        assert removed["number"] == 1 and removed["title"] == "Schema"
        assert error_text(await client.call_tool("get_task", {"task": 1})).endswith(
            "task 1 does not exist in this project"
        )
        assert payload(await client.call_tool("get_task", {"task": 2}))["dependencies"] == []


async def test_project_may_be_left_out_only_when_there_is_one(db: Database, settings: Settings) -> None:
    async with Client(build_server(db, settings)) as client:
        none = error_text(await client.call_tool("next_task", {}))
        assert "no project yet: create one with `taskmaster project add NAME --repo URL`" in none
        assert payload(await client.call_tool("list_projects", {})) == {"items": []}
        await seed_project(db, settings, "app")
        assert payload(await client.call_tool("next_task", {}))["task"]["title"] == "Schema"
        await seed_project(db, settings, "web")
        several = error_text(await client.call_tool("claim_task", {"assignee": "a"}))
        assert "several projects exist (app, web): pass `project`" in several
        web = payload(await client.call_tool("list_projects", {}))["items"][1]
        by_id = payload(await client.call_tool("claim_task", {"assignee": "a", "project": web["id"]}))
        assert by_id["task"]["title"] == "Schema"
        assert payload(await client.call_tool("list_tasks", {"project": "web", "assignee": "a"}))["total"] == 1
        assert payload(await client.call_tool("list_tasks", {"project": "app", "assignee": "a"}))["total"] == 0
        unknown = error_text(await client.call_tool("list_tasks", {"project": "nope"}))
        assert unknown.endswith("project nope does not exist")
        bad_ref = error_text(await client.call_tool("get_task", {"task": "first", "project": "app"}))
        assert bad_ref.endswith("'first' is neither a task number nor a task id")


async def test_an_unreachable_database_is_a_one_line_tool_error(state_dir: Path) -> None:
    settings = make_settings(state_dir, f"postgresql://nobody@127.0.0.1:{free_port()}/none")
    db = Database.from_settings(settings)
    try:
        async with Client(build_server(db, settings)) as client:
            failed = error_text(await client.call_tool("list_tasks", {"project": "app"}))
    finally:
        await db.dispose()
    assert failed.startswith("Error executing tool list_tasks: cannot reach the database: ")


PRD = """# Notes app

## Requirements
1. The system MUST store notes in a database.
2. Users MUST be able to search notes; this depends on storing notes.
3. The app COULD export notes as Markdown.
"""


async def test_a_prd_becomes_tasks_which_expand_and_get_complexity_scores(
    server: MCPServer[Any], seeded: dict[int, str]
) -> None:
    async with Client(server) as client:
        parsed = payload(await client.call_tool("parse_prd", {"text": PRD, "source": "notes.md"}))
        assert parsed["created"] == len(parsed["items"]) >= 3 and parsed["first_number"] == 8
        titles = {t["title"]: t for t in parsed["items"]}
        store = next(t for title, t in titles.items() if "store notes" in title.lower())
        search = next(t for title, t in titles.items() if "search" in title.lower())
        export = next(t for title, t in titles.items() if "export" in title.lower())
        assert store["id"] in search["dependencies"]
        assert store["priority"] < export["priority"]
        assert set(parsed["items"][0]) == set(TaskSummary.model_fields)

        shown = payload(await client.call_tool("get_task", {"task": search["number"], "details": True}))
        assert shown["source_section"] and "Requirements" in shown["source_section"]

        single = await client.call_tool("expand_task", {"task": 1})
        assert single.is_error and "nothing to split offline" in error_text(single)
        steps = "- Create the notes table\n- Add the search index\n- Write the migration\n- Backfill old notes"
        await client.call_tool("update_task", {"task": 1, "details": steps})
        subtasks = payload(await client.call_tool("expand_task", {"task": 1, "num": 3}))["items"]
        assert [t["title"] for t in subtasks][:1] == ["Create the notes table"] and len(subtasks) == 3
        parent_id = payload(await client.call_tool("get_task", {"task": 1}))["id"]
        assert all(t["parent_task_id"] == parent_id for t in subtasks)

        scores = payload(await client.call_tool("analyze_complexity", {}))["items"]
        open_tasks = payload(await client.call_tool("list_tasks", {"limit": 1000}))["items"]
        assert {s["number"] for s in scores} == {
            t["number"] for t in open_tasks if t["status"] not in {"done", "cancelled"}
        }
        assert all(1 <= s["complexity"] <= 10 and s["reasoning"] for s in scores)
        stored = payload(await client.call_tool("get_task", {"task": scores[0]["number"], "details": True}))
        assert stored["complexity"] == scores[0]["complexity"]

        empty = await client.call_tool("parse_prd", {"text": "   "})
        assert (empty.is_error and "PRD" in error_text(empty)) or "task" in error_text(empty)


async def test_the_server_advertises_only_the_tools_it_has(server: MCPServer[Any]) -> None:
    async with Client(server) as client:
        capabilities = client.server_capabilities

        assert capabilities.tools is not None
        assert capabilities.resources is None and capabilities.prompts is None
        with pytest.raises(MCPError, match=r"[Mm]ethod not found"):
            await client.list_resources()
