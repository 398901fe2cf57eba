"""The stdio `initialize` answer given before the MCP SDK loads: the SDK's own answer, and the SDK serves the rest."""

from __future__ import annotations

import json
import os
import subprocess
import threading
from pathlib import Path
from typing import Any

import anyio
import mcp_types
import mcp_types.version
import pytest
from mcp.shared.message import SessionMessage

from taskmaster.mcp import handshake
from taskmaster.mcp.server import build_server
from tests.cli.conftest import clean_env
from tests.conftest import make_settings
from tests.mcp.conftest import server_command


def initialize(request_id: int | str = 1, version: str = "2025-06-18", **params: Any) -> dict[str, Any]:
    base = {"protocolVersion": version, "capabilities": {}, "clientInfo": {"name": "test", "version": "1"}}
    return {"jsonrpc": "2.0", "id": request_id, "method": "initialize", "params": {**base, **params}}


def line(message: dict[str, Any]) -> bytes:
    return json.dumps(message).encode() + b"\n"


async def sdk_answer(tmp_path: Path, message: dict[str, Any]) -> dict[str, Any]:
    """What the SDK server `build_server` makes answers to `message`."""
    lowlevel = build_server(None, make_settings(tmp_path / "state"))._lowlevel_server
    to_server, server_reads = anyio.create_memory_object_stream[SessionMessage | Exception](1)
    server_writes, from_server = anyio.create_memory_object_stream[SessionMessage](1)
    async with anyio.create_task_group() as group:
        group.start_soon(lowlevel.run, server_reads, server_writes, lowlevel.create_initialization_options())
        await to_server.send(SessionMessage(mcp_types.jsonrpc_message_adapter.validate_python(message)))
        reply = await from_server.receive()
        await to_server.aclose()
    answer: dict[str, Any] = json.loads(reply.message.model_dump_json(by_alias=True, exclude_unset=True))
    return answer


def test_protocol_versions_are_the_sdks() -> None:
    assert handshake.HANDSHAKE_PROTOCOL_VERSIONS == mcp_types.version.HANDSHAKE_PROTOCOL_VERSIONS
    assert handshake.HANDSHAKE_PROTOCOL_VERSIONS[-1] == mcp_types.version.LATEST_HANDSHAKE_VERSION


@pytest.mark.parametrize("version", [*mcp_types.version.HANDSHAKE_PROTOCOL_VERSIONS, "2026-07-28", "1999-01-01"])
@pytest.mark.parametrize("request_id", [1, "abc"])
async def test_early_answer_is_the_sdks_for_every_version(tmp_path: Path, version: str, request_id: int | str) -> None:
    message = initialize(request_id, version, capabilities={"sampling": {}}, clientInfo={"name": "c", "version": "2"})
    early = handshake.answer_for(line(message))
    assert early is not None and early["id"] == request_id
    # The client's version when the SDK negotiates it, else the SDK's latest handshake version.
    expected = version if version in handshake.HANDSHAKE_PROTOCOL_VERSIONS else "2025-11-25"
    assert early["result"]["protocolVersion"] == expected
    assert early == await sdk_answer(tmp_path, message)


FULL_CLIENT = {
    "capabilities": {
        "roots": {"listChanged": True},
        "sampling": {"context": {}, "tools": {}},
        "elicitation": {"form": {}, "url": {}},
        "tasks": {"list": {}, "cancel": {}, "requests": {"sampling": {"createMessage": {}}}},
        "experimental": {"x": {"y": 1}},
        "extensions": {"io.example/ext": {}},
        "somethingNew": {"a": [1]},
    },
    "clientInfo": {"name": "claude-code", "version": "2.0.1", "title": "Claude Code", "websiteUrl": None},
}


@pytest.mark.parametrize(
    "params",
    [
        {},
        FULL_CLIENT,
        {"capabilities": {"roots": {}, "sampling": None}},
        {"_meta": {}},
        # Shapes the SDK refuses, or that the early answer leaves to it: either way the client gets the SDK's answer.
        {"capabilities": {"sampling": 5}},
        {"capabilities": {"roots": {"listChanged": "yes"}}},
        {"capabilities": {"sampling": {"context": 1}}},
        {"clientInfo": {"name": "x", "version": "1", "icons": 7}},
        {"clientInfo": {"name": "x", "version": "1", "title": 3}},
        {"_meta": 3},
        {"_meta": {"progressToken": 5}},
        {"_meta": {"io.modelcontextprotocol/protocolVersion": "2026-07-28"}},
        {"extra": 1},
    ],
)
async def test_an_early_answer_is_never_other_than_the_sdks(tmp_path: Path, params: dict[str, Any]) -> None:
    message = initialize(**params)
    early = handshake.answer_for(line(message))
    assert early is None or early == await sdk_answer(tmp_path, message)
    if params in ({}, FULL_CLIENT):
        assert early is not None


@pytest.mark.parametrize(
    "message",
    [
        {"jsonrpc": "2.0", "id": 1, "method": "tools/list"},
        {"jsonrpc": "2.0", "method": "initialize", "params": initialize()["params"]},
        {**initialize(), "id": True},
        {**initialize(), "jsonrpc": "1.0"},
        initialize(clientInfo={"name": "no version"}),
        initialize(capabilities=None),
        initialize(version=7),  # type: ignore[arg-type]
    ],
)
def test_anything_but_a_well_formed_initialize_is_left_to_the_sdk(message: dict[str, Any]) -> None:
    assert handshake.answer_for(line(message)) is None
    assert handshake.answer_for(b"not json\n") is None


def test_reading_the_first_line_leaves_the_rest_unread() -> None:
    read_end, write_end = os.pipe()
    try:
        os.write(write_end, b'{"first": 1}\n{"second": 2}\n')
        os.close(write_end)
        assert handshake.read_line(read_end) == b'{"first": 1}\n'
        assert os.read(read_end, 100) == b'{"second": 2}\n'
        assert handshake.read_line(read_end) == b""
    finally:
        os.close(read_end)


@pytest.mark.parametrize(
    ("first", "answered"),
    [
        (line(initialize("x")), True),
        (line({"jsonrpc": "2.0", "id": 1, "method": "ping"}), False),
        (line(initialize()).rstrip(b"\n"), False),  # the stream ended mid-line
        (line(initialize(clientInfo={"name": "x" * handshake.MAX_OPENING, "version": "1"})), False),
    ],
    ids=["initialize", "ping", "no newline", "too long"],
)
def test_answer_initialize_answers_only_a_whole_initialize_line(first: bytes, answered: bool) -> None:
    stdin_read, stdin_write = os.pipe()
    stdout_read, stdout_write = os.pipe()
    rest = line({"jsonrpc": "2.0", "method": "notifications/initialized"}) if first.endswith(b"\n") else b""

    def client() -> None:
        with os.fdopen(stdin_write, "wb") as sent:
            sent.write(first + rest)

    writer = threading.Thread(target=client)  # a line longer than the pipe's buffer blocks until read
    writer.start()
    with os.fdopen(stdin_read, "rb") as stdin, os.fdopen(stdout_read, "rb") as stdout:
        with os.fdopen(stdout_write, "wb") as server_out:
            got = handshake.answer_initialize(stdin.fileno(), server_out.fileno())
        writer.join()
        assert got.line == first and stdin.read() == rest
        reply = stdout.read()
    assert (got.answered_id is not None) is answered
    assert [json.loads(out) for out in reply.splitlines()] == ([handshake.answer_for(first)] if answered else [])


def run_server(home: Path, messages: list[bytes], *, env: dict[str, str] | None = None) -> list[dict[str, Any]]:
    """Send `messages` to `taskmaster mcp` over a pipe, close it, and return every line it wrote."""
    done = subprocess.run(
        server_command(),
        input=b"".join(messages),
        capture_output=True,
        cwd=home,
        env=env or clean_env(TASKMASTER_HOME=str(home / "state"), TASKMASTER_ENV="test"),
        timeout=60,
        check=False,
    )
    return [json.loads(out) for out in done.stdout.splitlines()]


def test_the_answer_comes_before_the_sdk_is_imported(tmp_path: Path) -> None:
    # An `mcp` package that cannot be imported: the server answers `initialize`, then fails loading the SDK.
    blocker = tmp_path / "blocker" / "mcp"
    blocker.mkdir(parents=True)
    (blocker / "__init__.py").write_text('raise ImportError("the MCP SDK was imported")\n')
    env = clean_env(TASKMASTER_HOME=str(tmp_path / "state"), TASKMASTER_ENV="test", PYTHONPATH=str(blocker.parent))
    message = initialize()
    assert run_server(tmp_path, [line(message)], env=env) == [handshake.answer_for(line(message))]


def test_the_sdk_serves_the_session_after_the_early_answer(tmp_path: Path) -> None:
    opening = initialize("first", "2025-03-26")
    answers = run_server(
        tmp_path,
        [
            line(opening),
            line({"jsonrpc": "2.0", "method": "notifications/initialized"}),
            line({"jsonrpc": "2.0", "id": 2, "method": "tools/list"}),
            line(initialize(3)),
        ],
    )
    # One answer to the first `initialize` (the early one), then the SDK's: it holds the connection initialized, so
    # it lists the tools; only its reply to the request answered early was dropped, not a later one.
    assert answers[0] == handshake.answer_for(line(opening))
    assert answers[1]["id"] == 2 and "list_projects" in {tool["name"] for tool in answers[1]["result"]["tools"]}
    assert [answer["id"] for answer in answers] == ["first", 2, 3]
    assert answers[2] == handshake.answer_for(line(initialize(3)))


def test_a_first_line_that_is_not_initialize_gets_the_sdks_answer(tmp_path: Path) -> None:
    answers = run_server(
        tmp_path,
        [line({"jsonrpc": "2.0", "id": 1, "method": "tools/list"}), line(initialize(2, clientInfo={"name": "x"}))],
    )
    # Before the handshake and a malformed handshake: the SDK's errors, each answered once.
    assert [(answer["id"], "error" in answer) for answer in answers] == [(1, True), (2, True)]


def test_a_configuration_error_still_stops_the_server_with_its_message(tmp_path: Path) -> None:
    (tmp_path / "bad.toml").write_text("nonsense = [\n")
    env = clean_env(TASKMASTER_HOME=str(tmp_path / "state"), TASKMASTER_CONFIG=str(tmp_path / "bad.toml"))
    done = subprocess.run(
        server_command(), input=line(initialize()), capture_output=True, cwd=tmp_path, env=env, timeout=60, check=False
    )
    # The answer went out before the settings were read; the error then ends the process as it did before.
    assert done.returncode == 2 and "bad.toml: not valid TOML" in done.stderr.decode()
    assert [json.loads(out) for out in done.stdout.splitlines()] == [handshake.answer_for(line(initialize()))]
