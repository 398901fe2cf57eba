"""AgentAPI conformance: every endpoint, error, SSE framing and ordering rule a client relies on.

Written against the reference's documented behaviour so that it can run against coder/agentapi too (see conftest).
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

import httpx

PROBLEM = "application/problem+json"


def _wait_stable(http: httpx.Client, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while http.get("/status").json()["status"] != "stable":
        assert time.monotonic() < deadline, "the agent never became stable"
        time.sleep(0.1)


def _is_time(value: Any) -> bool:
    text = str(value).replace("Z", "+00:00")
    head, _, rest = text.partition(".")
    if rest:  # Go writes up to nine fractional digits; Python reads six
        digits = len(rest) - len(rest.lstrip("0123456789"))
        text = head + "." + rest[: min(digits, 6)] + rest[digits:]
    return datetime.fromisoformat(text).tzinfo is not None


def _assert_problem(response: httpx.Response, status: int | tuple[int, ...]) -> dict[str, Any]:
    statuses = (status,) if isinstance(status, int) else status
    assert response.status_code in statuses, response.text
    assert response.headers["content-type"].startswith(PROBLEM)
    body: dict[str, Any] = response.json()
    assert body["status"] == response.status_code
    assert isinstance(body["title"], str) and body["title"]
    assert isinstance(body["detail"], str)
    return body


def _events(stream: httpx.Response) -> Iterator[tuple[str, dict[str, Any]]]:
    """SSE blocks as (event, data); asserts the framing of each block on the way."""
    name, data = "", []
    for line in stream.iter_lines():
        if line == "":
            if data:
                assert name, "every AgentAPI event is named"
                yield name, json.loads("\n".join(data))
            name, data = "", []
        elif line.startswith(":"):
            continue
        else:
            field, sep, value = line.partition(":")
            assert sep, f"malformed SSE line {line!r}"
            value = value.removeprefix(" ")
            if field == "event":
                name = value
            elif field == "data":
                data.append(value)
            else:
                assert field in ("id", "retry"), f"unknown SSE field {field!r}"


def test_status_has_the_reference_fields(http: httpx.Client) -> None:
    response = http.get("/status")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert body["status"] in ("running", "stable")
    assert isinstance(body["agent_type"], str)
    assert body["transport"] == "pty"
    assert body["$schema"].endswith("/schemas/StatusResponseBody.json")


def test_messages_are_numbered_from_zero_with_the_startup_screen_first(http: httpx.Client) -> None:
    _wait_stable(http)
    body = http.get("/messages").json()
    assert body["$schema"].endswith("/schemas/MessagesResponseBody.json")
    messages = body["messages"]
    assert [m["id"] for m in messages] == list(range(len(messages)))
    assert messages[0]["role"] == "agent"
    for message in messages:
        assert set(message) == {"id", "role", "content", "time"}
        assert message["role"] in ("agent", "user")
        assert isinstance(message["content"], str)
        assert _is_time(message["time"])


def test_user_message_round_trip_adds_a_user_then_an_agent_message(http: httpx.Client) -> None:
    _wait_stable(http)
    before = http.get("/messages").json()["messages"]
    response = http.post("/message", json={"content": "conformance round trip", "type": "user"})
    assert response.status_code == 200
    assert response.json()["ok"] is True
    _wait_stable(http)
    after = http.get("/messages").json()["messages"]
    new = after[len(before) :]
    assert new[0] == {**new[0], "id": len(before), "role": "user", "content": "conformance round trip"}
    assert [m["role"] for m in new[1:]] == ["agent"]
    assert not new[1]["content"].lstrip().startswith("> conformance round trip")  # the echo is removed


def test_user_message_while_running_is_refused_naming_user_input(http: httpx.Client) -> None:
    _wait_stable(http)
    assert http.post("/message", json={"content": "keep busy", "type": "user"}).status_code == 200
    refused = http.post("/message", json={"content": "too soon", "type": "user"})
    body = _assert_problem(refused, (400, 409, 422, 500))
    assert "waiting for user input" in body["detail"]
    _wait_stable(http)
    assert "too soon" not in [m["content"] for m in http.get("/messages").json()["messages"]]


def test_empty_user_message_is_refused(http: httpx.Client) -> None:
    _wait_stable(http)
    body = _assert_problem(http.post("/message", json={"content": " \n ", "type": "user"}), (400, 422, 500))
    assert "empty" in body["detail"]


def test_raw_message_is_written_and_not_recorded(http: httpx.Client) -> None:
    _wait_stable(http)
    before = http.get("/messages").json()["messages"]
    response = http.post("/message", json={"content": "x\x7f", "type": "raw"})  # type then erase one character
    assert response.status_code == 200
    assert response.json()["ok"] is True
    _wait_stable(http)
    after = http.get("/messages").json()["messages"]
    assert [m["role"] for m in after] == [m["role"] for m in before]


def test_malformed_message_bodies_are_problems(http: httpx.Client) -> None:
    _assert_problem(http.post("/message", json={"content": "x", "type": "shout"}), 422)
    _assert_problem(http.post("/message", json={"type": "user"}), 422)
    _assert_problem(http.post("/message", json={"content": "x"}), 422)
    _assert_problem(http.post("/message", json={"content": 5, "type": "user"}), 422)


def test_events_replay_every_message_then_the_status(http: httpx.Client) -> None:
    _wait_stable(http)
    messages = http.get("/messages").json()["messages"]
    with http.stream("GET", "/events") as stream:
        assert stream.status_code == 200
        assert stream.headers["content-type"].startswith("text/event-stream")
        replay = []
        for event in _events(stream):
            replay.append(event)
            if event[0] == "status_change":
                break
    updates = [data for name, data in replay if name == "message_update"]
    assert [name for name, _ in replay] == ["message_update"] * len(messages) + ["status_change"]
    assert [u["id"] for u in updates] == [m["id"] for m in messages]
    for update, message in zip(updates, messages, strict=True):
        assert set(update) == {"id", "role", "message", "time"}
        assert (update["role"], update["message"]) == (message["role"], message["content"])
    assert replay[-1][1]["status"] == "stable"
    assert isinstance(replay[-1][1]["agent_type"], str)


def test_events_stream_user_message_before_reply_and_end_stable(http: httpx.Client, base_url: str) -> None:
    _wait_stable(http)
    count = len(http.get("/messages").json()["messages"])
    with (
        httpx.Client(base_url=base_url, headers=http.headers, timeout=60) as sender,
        http.stream("GET", "/events") as stream,
    ):
        events = _events(stream)
        for name, _ in events:
            if name == "status_change":
                break  # replay done
        assert sender.post("/message", json={"content": "conformance events", "type": "user"}).status_code == 200
        live = []
        for event in events:
            live.append(event)
            if event[0] == "status_change" and event[1]["status"] == "stable":
                break
    ids = [data["id"] for name, data in live if name == "message_update"]
    assert ids == sorted(ids), "message updates never go back to an earlier message"
    first_user = next(d for n, d in live if n == "message_update" and d["role"] == "user")
    assert first_user["id"] == count
    assert first_user["message"] == "conformance events"
    assert any(n == "message_update" and d["role"] == "agent" and d["id"] == count + 1 for n, d in live)
    statuses = [d["status"] for n, d in live if n == "status_change"]
    assert statuses[-1] == "stable"


def test_host_header_allow_list(http: httpx.Client, base_url: str) -> None:
    port = urlsplit(base_url).port or 80
    refused = http.get("/status", headers={"Host": f"attacker.example:{port}"})
    assert refused.status_code == 400
    assert "Invalid host header" in refused.text
    assert http.get("/status", headers={"Host": f"localhost:{port}"}).status_code == 200


def test_cors_allow_list(http: httpx.Client) -> None:
    origin = "http://localhost:3284"
    preflight = http.options("/message", headers={"Origin": origin, "Access-Control-Request-Method": "POST"})
    assert preflight.status_code in (200, 204)
    assert preflight.headers["access-control-allow-origin"] == origin
    assert "POST" in preflight.headers["access-control-allow-methods"]
    simple = http.get("/status", headers={"Origin": origin})
    assert simple.headers["access-control-allow-origin"] == origin
    foreign = http.get("/status", headers={"Origin": "http://attacker.example"})
    assert "access-control-allow-origin" not in foreign.headers


def test_upload_returns_the_stored_path(http: httpx.Client) -> None:
    response = http.post("/upload", files={"file": ("conformance.txt", b"uploaded bytes", "application/octet-stream")})
    assert response.status_code == 200
    body = response.json()
    assert body["ok"] is True
    assert body["filePath"].endswith("/conformance.txt")


def test_upload_over_ten_mebibytes_is_refused(http: httpx.Client) -> None:
    response = http.post("/upload", files={"file": ("big.bin", b"\0" * ((10 << 20) + 1), "application/octet-stream")})
    assert response.status_code in (400, 413)


def test_upload_without_a_file_is_a_problem(http: httpx.Client) -> None:
    _assert_problem(http.post("/upload", data={"other": "x"}, files={"nope": ("a", b"b")}), (400, 422))
