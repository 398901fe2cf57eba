"""The code-generation tools through the SDK's client (in-process): `generate_code` requests runs (a worker runs
them), `list_codegen_runs` and `get_codegen_run` read them in the REST shapes; refusals are one-line tool errors."""

from __future__ import annotations

import uuid
from typing import Any

from mcp.client import Client
from mcp.server.mcpserver import MCPServer

from taskmaster.config import Settings
from taskmaster.db.prefix import short_ids
from taskmaster.db.session import Database
from taskmaster.mcp.server import build_server
from taskmaster.projects import service as projects
from taskmaster.workflows import service as runs
from taskmaster.workflows.codegen.schemas import CodegenRunDetail, CodegenRunOut
from tests.mcp.conftest import READY_ORDER, error_text, payload, seed_project


async def test_the_codegen_tools_declare_their_inputs_and_outputs(server: MCPServer[Any]) -> None:
    async with Client(server) as client:
        tools = {tool.name: tool for tool in (await client.list_tools()).tools}
        generate = tools["generate_code"]
        properties = generate.input_schema["properties"]
        assert {"project", "tasks", "next", "agent", "agent_type", "loop"} <= set(properties)
        # The command an agent runs is a project setting (admins), never a tool argument.
        assert "agent_command" not in properties
        agents = next(arm for arm in properties["agent"]["anyOf"] if "enum" in arm)["enum"]
        assert agents == ["offline", "agentapi", "codegen"]
        assert generate.annotations is not None and generate.annotations.read_only_hint is False
        assert set(generate.output_schema["$defs"]["CodegenRunOut"]["properties"]) == set(  # type: ignore[index]
            CodegenRunOut.model_fields
        )
        detail = tools["get_codegen_run"]
        assert detail.input_schema["required"] == ["run"]
        assert set(CodegenRunDetail.model_fields) <= set(detail.output_schema["properties"])  # type: ignore[index]
        assert tools["list_codegen_runs"].annotations.read_only_hint is True  # type: ignore[union-attr]


async def test_refusals_are_one_line_tool_errors(server: MCPServer[Any], db: Database) -> None:
    async with Client(server) as client:
        both = await client.call_tool("generate_code", {"tasks": [1], "next": 2})
        assert "give tasks or next, not both" in error_text(both)
        bad_agent = await client.call_tool("generate_code", {"agent": "gpt"})
        assert "invalid arguments" in error_text(bad_agent) and "agent" in error_text(bad_agent)
        ghost = await client.call_tool("generate_code", {"project": "ghost", "next": 1})
        assert "ghost" in error_text(ghost)
        missing = await client.call_tool("get_codegen_run", {"run": str(uuid.uuid4())})
        assert "does not exist" in error_text(missing)
        short = await client.call_tool("get_codegen_run", {"run": "zz"})
        assert "not a codegen run id" in error_text(short)
        # Another kind of workflow run is no codegen run, by whole id or by prefix.
        async with db.transaction() as session:
            project = (await projects.get_project(session, "app")).id
            review = await runs.request_run(session, runs.RunRequest(project_id=project, kind="review", subject="x"))
        for ref in (str(review.run.id), str(review.run.id)[:13]):
            other = await client.call_tool("get_codegen_run", {"run": ref})
            assert "does not exist" in error_text(other), ref


async def test_generate_code_requests_runs_which_the_read_tools_show(server: MCPServer[Any]) -> None:
    async with Client(server) as client:
        started = payload(await client.call_tool("generate_code", {"next": 2, "agent": "offline"}))["runs"]
        assert [r["task_number"] for r in started] == READY_ORDER[:2]
        assert all(r["status"] == "pending" and r["stage"] == "queued" for r in started)
        again = payload(await client.call_tool("generate_code", {"tasks": [READY_ORDER[0]], "agent": "offline"}))
        assert [r["id"] for r in again["runs"]] == [started[0]["id"]]  # a live run is returned, not doubled
        not_ready = await client.call_tool("generate_code", {"tasks": [2], "agent": "offline"})
        assert "2" in error_text(not_ready)

        listed = payload(await client.call_tool("list_codegen_runs", {"project": "app"}))["items"]
        assert {r["id"] for r in listed} == {r["id"] for r in started}
        assert payload(await client.call_tool("list_codegen_runs", {"status": "running"}))["items"] == []
        # Runs requested together share their id's millisecond digits: the prefix a list shows them by.
        prefix = short_ids([r["id"] for r in started])[1]
        shown = payload(await client.call_tool("get_codegen_run", {"run": prefix}))
        assert shown["id"] == started[1]["id"] and set(shown) == set(CodegenRunDetail.model_fields)


async def test_a_second_project_is_named_and_lists_span_projects(db: Database, settings: Settings) -> None:
    await seed_project(db, settings, "one")
    await seed_project(db, settings, "two")
    async with Client(build_server(db, settings)) as client:
        unnamed = await client.call_tool("generate_code", {"next": 1})
        assert "project" in error_text(unnamed)
        for name in ("one", "two"):
            payload(await client.call_tool("generate_code", {"project": name, "next": 1, "agent": "offline"}))
        listed = payload(await client.call_tool("list_codegen_runs", {}))["items"]
        assert len({r["project_id"] for r in listed}) == 2
