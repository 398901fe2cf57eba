"""The stdio `initialize` answer, given before the MCP SDK is imported (about half a second under load).

Only the standard library is imported here. The SDK server is then fed the same request and its reply is dropped.
"""

from __future__ import annotations

import functools
import json
import os
from dataclasses import dataclass
from typing import Any

import taskmaster

SERVER_NAME = "taskmaster"

INSTRUCTIONS = """\
Taskmaster's task graph for one or more projects. Address a task by its number in the project (7, "7" or "#7") \
or its id; `project` (name or id) may be left out when only one project exists. Lists and picks return small \
summaries; pass details=true for every field (description, details, test_strategy, timestamps). To work on \
something, claim_task(assignee=...) atomically takes the best ready task (in_progress, with a lease that returns \
it to pending if it runs out); mark it done with set_task_status. Dependencies are task ids in results."""

HANDSHAKE_PROTOCOL_VERSIONS = ("2024-11-05", "2025-03-26", "2025-06-18", "2025-11-25")
"""The versions the SDK negotiates through `initialize` (`mcp_types.version`; a test keeps the two equal)."""

CAPABILITIES: dict[str, Any] = {"tools": {"listChanged": False}}
"""What the server built by `build_server` advertises: tools only."""

MAX_OPENING = 1 << 16
"""A first line longer than this is not answered early (an `initialize` request is a few hundred bytes)."""


@dataclass(frozen=True)
class Opening:
    """The client's first line, read off stdin, and the id of the request answered early (None: not answered)."""

    line: bytes
    answered_id: int | str | None


def answer_for(line: bytes) -> dict[str, Any] | None:
    """The SDK's answer to `line` when it is a well-formed `initialize` request, else None (the SDK answers).

    The version is the client's when the SDK supports it, else the latest one it supports, as the SDK negotiates."""
    try:
        request = json.loads(line)
    except ValueError:
        return None
    if not isinstance(request, dict) or request.get("jsonrpc") != "2.0" or request.get("method") != "initialize":
        return None
    request_id = request.get("id")
    params = request.get("params")
    if isinstance(request_id, bool) or not isinstance(request_id, int | str) or not isinstance(params, dict):
        return None
    version = params.get("protocolVersion")
    if not isinstance(version, str) or not _plain(params.get("capabilities"), params.get("clientInfo")):
        return None
    if params.get("_meta") or not set(params) <= {"protocolVersion", "capabilities", "clientInfo", "_meta"}:
        return None
    negotiated = version if version in HANDSHAKE_PROTOCOL_VERSIONS else HANDSHAKE_PROTOCOL_VERSIONS[-1]
    result = {
        "capabilities": CAPABILITIES,
        "instructions": INSTRUCTIONS,
        "protocolVersion": negotiated,
        "serverInfo": {"name": SERVER_NAME, "version": taskmaster.__version__},
    }
    return {"jsonrpc": "2.0", "id": request_id, "result": result}


def _plain(capabilities: Any, client: Any) -> bool:
    """Whether the SDK surely accepts these: the usual shapes only (the rest is for the SDK to judge)."""
    if not isinstance(capabilities, dict) or not isinstance(client, dict):
        return False
    for name, capability in capabilities.items():
        if capability is None:
            continue
        if not isinstance(capability, dict):
            return False
        if name == "roots":
            if not set(capability) <= {"listChanged"} or not isinstance(capability.get("listChanged", True), bool):
                return False
        elif name in _NESTED_CAPABILITIES and not all(isinstance(v, dict | None) for v in capability.values()):
            return False
    if not all(isinstance(client.get(key), str) for key in ("name", "version")):
        return False
    return set(client) <= _CLIENT_FIELDS and all(isinstance(v, str | None) for v in client.values())


_NESTED_CAPABILITIES = {"sampling", "elicitation", "tasks", "experimental", "extensions"}
_CLIENT_FIELDS = {"name", "version", "title", "description", "websiteUrl"}


def read_line(fd: int) -> bytes:
    """One line from `fd`, a byte at a time: nothing past the newline is consumed, so the SDK reads the rest."""
    line = bytearray()
    while True:
        byte = os.read(fd, 1)
        if not byte:
            break
        line += byte
        if byte == b"\n":
            break
    return bytes(line)


def answer_initialize(stdin: int = 0, stdout: int = 1) -> Opening:
    """Read the client's first line and, when it is `initialize`, answer it on `stdout` now."""
    line = read_line(stdin)
    answer = answer_for(line) if line.endswith(b"\n") and len(line) <= MAX_OPENING else None
    if answer is None:
        return Opening(line, None)
    data = (json.dumps(answer, ensure_ascii=False, separators=(",", ":")) + "\n").encode()
    while data:
        data = data[os.write(stdout, data) :]
    return Opening(line, answer["id"])


@functools.cache
def opening() -> Opening:
    """`answer_initialize` on the process's stdin and stdout, once: the entry point calls it before loading the
    command line (for `taskmaster mcp` alone), and the command then gets what it read."""
    return answer_initialize()
