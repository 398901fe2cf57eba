"""The single-session server as a black box over HTTP, driving the scripted test agent in a real PTY."""

from __future__ import annotations

import json
import os

import httpx

from tests.agentapi.conftest import agent_argv, agentapi_server, send_and_wait, wait_stable, wait_until


def test_startup_screen_is_message_zero_and_status_becomes_stable(client: httpx.Client) -> None:
    wait_stable(client)
    status = client.get("/status").json()
    assert status["status"] == "stable"
    assert status["agent_type"] == "claude"
    assert status["transport"] == "pty"
    messages = client.get("/messages").json()["messages"]
    assert [m["id"] for m in messages] == [0]
    assert messages[0]["role"] == "agent"
    assert messages[0]["content"] == "Fake Agent v1.0 (test double)\n  tip 1: ask me anything"


def test_user_message_gets_a_reply_without_echo_or_input_box(client: httpx.Client) -> None:
    messages = send_and_wait(client, "  hello agent \n")
    assert [(m["id"], m["role"]) for m in messages] == [(0, "agent"), (1, "user"), (2, "agent")]
    assert messages[1]["content"] == "hello agent"
    assert messages[2]["content"] == "Reply to: hello agent"


def test_300_line_reply_is_captured_whole_and_next_reply_is_its_own_message(client: httpx.Client) -> None:
    messages = send_and_wait(client, "lines 300")
    reply = messages[-1]["content"].split("\n")
    assert reply == [f"line {i:04d} of 300" for i in range(1, 301)]
    messages = send_and_wait(client, "after the long one")
    assert [m["role"] for m in messages] == ["agent", "user", "agent", "user", "agent"]
    assert messages[2]["content"].split("\n") == reply
    assert messages[4]["content"] == "Reply to: after the long one"


def test_user_message_refused_while_running_and_when_empty(client: httpx.Client) -> None:
    wait_stable(client)
    empty = client.post("/message", json={"content": "   ", "type": "user"})
    assert empty.status_code == 422
    assert empty.headers["content-type"] == "application/problem+json"
    assert empty.json()["detail"] == "failed to send message: message must not be empty"
    assert client.post("/message", json={"content": "slow 2", "type": "user"}).status_code == 200
    busy = client.post("/message", json={"content": "too early", "type": "user"})
    assert busy.status_code == 409
    problem = busy.json()
    assert "waiting for user input" in problem["detail"]
    assert problem["title"] == "Conflict"
    assert problem["status"] == 409
    assert problem["$schema"].endswith("/schemas/ErrorModel.json")


def test_invalid_message_bodies_are_problems(client: httpx.Client) -> None:
    bad_type = client.post("/message", json={"content": "x", "type": "shout"})
    assert bad_type.status_code == 422
    assert bad_type.json()["errors"][0]["location"] == "body.type"
    missing = client.post("/message", json={"type": "user"})
    assert missing.status_code == 422
    assert "content" in missing.json()["errors"][0]["message"]
    assert (
        client.post("/message", content=b"{not json", headers={"content-type": "application/json"}).status_code == 400
    )


def test_permission_menu_is_answered_with_raw_keys(client: httpx.Client) -> None:
    wait_stable(client)
    assert client.post("/message", json={"content": "permission", "type": "user"}).status_code == 200
    wait_until(lambda: "Choose 1 or 2" in client.get("/messages").json()["messages"][-1]["content"])
    # A question on screen: stable (as the reference decides), and what it asks, with the keys that answer it.
    wait_until(lambda: client.get("/status").json()["status"] == "stable")
    status = client.get("/status").json()
    assert status["waiting_for"] == {
        "question": "Allow the agent to edit files?",
        "choices": [{"key": "1", "label": "Yes"}, {"key": "2", "label": "No"}],
    }
    refused = client.post("/message", json={"content": "yes please", "type": "user"})
    assert refused.status_code == 409
    assert "Allow the agent to edit files?" in refused.json()["detail"]
    raw = client.post("/message", json={"content": "1", "type": "raw"})
    assert raw.status_code == 200
    wait_stable(client)
    assert "waiting_for" not in client.get("/status").json()
    messages = client.get("/messages").json()["messages"]
    assert len(messages) == 3  # raw input is not recorded
    assert messages[-1]["content"].endswith("Permission granted")


def test_events_replay_state_then_stream_updates(client: httpx.Client, server: str) -> None:
    send_and_wait(client, "first")
    seen: list[tuple[str, dict[str, object]]] = []
    with httpx.Client(base_url=server, timeout=30) as sse, sse.stream("GET", "/events") as stream:
        assert stream.headers["content-type"].startswith("text/event-stream")
        assert stream.headers["x-accel-buffering"] == "no"
        event = ""
        lines = stream.iter_lines()
        for line in lines:
            if line.startswith("event: "):
                event = line.removeprefix("event: ")
            elif line.startswith("data: "):
                seen.append((event, json.loads(line.removeprefix("data: "))))
                if event == "status_change" and len(seen) == 4:
                    break
        assert [e for e, _ in seen] == ["message_update"] * 3 + ["status_change"]
        assert [d["id"] for _, d in seen[:3]] == [0, 1, 2]
        assert seen[2][1]["message"] == "Reply to: first"
        assert seen[3][1] == {"status": "stable", "agent_type": "claude"}
        assert client.post("/message", json={"content": "second", "type": "user"}).status_code == 200
        live: list[tuple[str, dict[str, object]]] = []
        for line in lines:
            if line.startswith("event: "):
                event = line.removeprefix("event: ")
            elif line.startswith("data: "):
                live.append((event, json.loads(line.removeprefix("data: "))))
                if event == "status_change" and live[-1][1]["status"] == "stable":
                    break
    updates = [d for e, d in live if e == "message_update"]
    assert {"id": 3, "role": "user", "message": "second"}.items() <= updates[0].items() or any(
        u["id"] == 3 and u["role"] == "user" for u in updates
    )
    assert updates[-1]["id"] == 4
    assert updates[-1]["message"] == "Reply to: second"


def test_upload_stores_the_file_and_caps_size(client: httpx.Client) -> None:
    ok = client.post("/upload", files={"file": ("notes.txt", b"hello upload", "application/octet-stream")})
    assert ok.status_code == 200
    body = ok.json()
    assert body["ok"] is True
    assert body["filePath"].endswith("/notes.txt")
    with open(body["filePath"], "rb") as f:
        assert f.read() == b"hello upload"
    big = client.post("/upload", files={"file": ("big.bin", b"x" * ((10 << 20) + 1), "application/octet-stream")})
    assert big.status_code == 400
    assert big.json()["detail"] == "file size exceeds 10MB limit"


def test_host_header_outside_allow_list_is_refused(client: httpx.Client) -> None:
    refused = client.get("/status", headers={"Host": "evil.example:3284"})
    assert refused.status_code == 400
    assert refused.text.startswith("Invalid host header. Allowed hosts: localhost, 127.0.0.1, ::1")
    assert client.get("/status", headers={"Host": "localhost:3284"}).status_code == 200


def test_cors_allows_listed_origins_only(client: httpx.Client) -> None:
    allowed = client.options(
        "/message",
        headers={"Origin": "http://localhost:3284", "Access-Control-Request-Method": "POST"},
    )
    assert allowed.status_code == 200
    assert allowed.headers["access-control-allow-origin"] == "http://localhost:3284"
    other = client.get("/status", headers={"Origin": "http://evil.example"})
    assert "access-control-allow-origin" not in other.headers


def test_bearer_token_guards_every_route_including_events_by_query() -> None:
    with agentapi_server(agent_argv(), auth_token="s3cret") as url, httpx.Client(base_url=url, timeout=30) as http:
        denied = http.get("/status")
        assert denied.status_code == 401
        assert denied.headers["www-authenticate"] == "Bearer"
        assert http.get("/status", headers={"Authorization": "Bearer wrong"}).status_code == 401
        assert http.get("/status", headers={"Authorization": "Bearer s3cret"}).status_code == 200
        with http.stream("GET", "/events?token=s3cret") as stream:
            assert stream.status_code == 200
            first = next(line for line in stream.iter_lines() if line.startswith("event:"))
            assert first == "event: message_update"


def test_crashing_agent_reports_agent_error_and_refuses_messages(client: httpx.Client, server: str) -> None:
    wait_stable(client)
    assert client.post("/message", json={"content": "crash", "type": "user"}).status_code == 200
    with httpx.Client(base_url=server, timeout=30) as sse, sse.stream("GET", "/events") as stream:
        event = ""
        for line in stream.iter_lines():
            if line.startswith("event: "):
                event = line.removeprefix("event: ")
            elif line.startswith("data: ") and event == "agent_error":
                error = json.loads(line.removeprefix("data: "))
                break
    assert error["level"] == "error"
    assert "exited with code 3" in error["message"]
    messages = client.get("/messages").json()["messages"]
    assert messages[-1]["content"] == "Something went wrong, bailing out"
    refused = client.post("/message", json={"content": "still there?", "type": "user"})
    assert refused.status_code == 409
    assert "exited" in refused.json()["detail"]


def test_stopping_the_server_ends_the_agent_process_group() -> None:
    with agentapi_server(agent_argv()) as url, httpx.Client(base_url=url, timeout=30) as http:
        wait_stable(http)
        pid = _agent_pid(url)
        os.kill(pid, 0)  # alive
    wait_until(lambda: not _alive(pid), timeout=10)


def _agent_pid(url: str) -> int:
    import subprocess

    out = subprocess.run(["pgrep", "-f", "fake_agent.py"], capture_output=True, text=True, check=False).stdout
    pids = [int(p) for p in out.split()]
    assert pids
    return max(pids)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie still answers kill(0); count it as gone once it is reaped or defunct.
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split()[2] != "Z"
    except FileNotFoundError:
        return False
