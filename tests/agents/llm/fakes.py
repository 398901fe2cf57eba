"""Fake Anthropic Messages and OpenAI Chat Completions servers on loopback, speaking each service's wire format.

A test gives a `brain`: called with each request's JSON body, it returns the structured payload to answer with
(a dict), `Text` (an answer that is not the payload: plain text for Anthropic, raw content for OpenAI) or
`Status` (an HTTP error). The fake records every request and how many were in flight at once.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from tests.support import live_server


@dataclass(frozen=True)
class Text:
    text: str


@dataclass(frozen=True)
class Status:
    code: int
    message: str = "error"
    headers: dict[str, str] = field(default_factory=dict)


ANTHROPIC_KEY = "sk-ant-test-7f3c9a1e5b2d4c6a"
OPENAI_KEY = "sk-proj-test-2b8e4f6a1c3d5e7f"

Outcome = dict[str, Any] | Text | Status
Brain = Callable[[dict[str, Any]], Outcome]


@dataclass(frozen=True)
class Received:
    path: str
    headers: dict[str, str]
    body: dict[str, Any]


class FakeLlm:
    """What a fake server knows: the brain, the requests so far, the peak of requests in flight."""

    def __init__(self, api_key: str | None, delay: float = 0.0) -> None:
        self.brain: Brain = lambda body: Status(500, "no brain set")
        self.api_key = api_key
        self.delay = delay
        self.requests: list[Received] = []
        self.in_flight = 0
        self.max_in_flight = 0
        self._ids = itertools.count(1)
        self._lock = threading.Lock()

    def reset(self, brain: Brain, *, delay: float = 0.0, api_key: str | None = None) -> None:
        """A new brain and a clean record; `api_key`, when given, is the one key the server accepts."""
        self.brain = brain
        self.delay = delay
        if api_key is not None:
            self.api_key = api_key
        self.requests = []
        self.in_flight = 0
        self.max_in_flight = 0

    async def _handle(self, request: Request, credential: str | None) -> tuple[dict[str, Any], Outcome]:
        body = await request.json()
        with self._lock:
            self.requests.append(Received(request.url.path, dict(request.headers), body))
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            # A pause, so that parallel clients really overlap here.
            await asyncio.sleep(self.delay)
            if self.api_key is not None and credential != self.api_key:
                return body, Status(401, "invalid api key")
            return body, self.brain(body)
        finally:
            with self._lock:
                self.in_flight -= 1

    def next_id(self) -> int:
        return next(self._ids)


def anthropic_app(fake: FakeLlm) -> FastAPI:
    """`POST /v1/messages`: the payload comes back as the input of a `tool_use` block for the forced tool."""
    app = FastAPI()

    @app.post("/v1/messages")
    async def messages(request: Request) -> JSONResponse:
        # The Messages API takes the key as `x-api-key` or as a bearer token (what anthropic 2.x sends).
        bearer = request.headers.get("authorization", "").removeprefix("Bearer ")
        body, outcome = await fake._handle(request, request.headers.get("x-api-key") or bearer or None)
        if isinstance(outcome, Status):
            error = {"type": "error", "error": {"type": "api_error", "message": outcome.message}}
            return JSONResponse(error, status_code=outcome.code, headers=outcome.headers)
        number = fake.next_id()
        if isinstance(outcome, Text):
            content: list[dict[str, Any]] = [{"type": "text", "text": outcome.text}]
            stop = "end_turn"
        else:
            tool = body["tool_choice"]["name"]
            content = [{"type": "tool_use", "id": f"toolu_{number:04d}", "name": tool, "input": outcome}]
            stop = "tool_use"
        return JSONResponse(
            {
                "id": f"msg_{number:04d}",
                "type": "message",
                "role": "assistant",
                "model": body["model"],
                "content": content,
                "stop_reason": stop,
                "stop_sequence": None,
                "usage": {"input_tokens": 10, "output_tokens": 20},
            },
            headers={"request-id": f"req_{number:04d}"},
        )

    return app


def openai_app(fake: FakeLlm) -> FastAPI:
    """`POST /v1/chat/completions`: the payload comes back as the JSON text of the assistant message."""
    app = FastAPI()

    @app.post("/v1/chat/completions")
    async def completions(request: Request) -> JSONResponse:
        authorization = request.headers.get("authorization", "")
        credential = authorization.removeprefix("Bearer ") if authorization.startswith("Bearer ") else None
        body, outcome = await fake._handle(request, credential)
        if isinstance(outcome, Status):
            error = {"error": {"message": outcome.message, "type": "server_error", "param": None, "code": None}}
            return JSONResponse(error, status_code=outcome.code, headers=outcome.headers)
        number = fake.next_id()
        content = outcome.text if isinstance(outcome, Text) else json.dumps(outcome)
        return JSONResponse(
            {
                "id": f"chatcmpl-{number:04d}",
                "object": "chat.completion",
                "created": 1_700_000_000,
                "model": body["model"],
                "choices": [
                    {
                        "index": 0,
                        "message": {"role": "assistant", "content": content, "refusal": None},
                        "finish_reason": "stop",
                        "logprobs": None,
                    }
                ],
                "usage": {"prompt_tokens": 10, "completion_tokens": 20, "total_tokens": 30},
            }
        )

    return app


@contextmanager
def serve(kind: str) -> Iterator[tuple[str, FakeLlm]]:
    """Start the fake `kind` ("anthropic" or "openai"); yields the base URL the SDK should get, and its state."""
    fake = FakeLlm(ANTHROPIC_KEY if kind == "anthropic" else OPENAI_KEY)
    app = anthropic_app(fake) if kind == "anthropic" else openai_app(fake)
    with live_server(app) as url:
        # Anthropic's SDK appends /v1/messages itself; OpenAI's base URL includes /v1.
        yield (url if kind == "anthropic" else f"{url}/v1"), fake


def user_prompt(body: dict[str, Any]) -> str:
    """The first user message's text, whichever wire format the request is in."""
    for message in body["messages"]:
        if message["role"] == "user":
            content = message["content"]
            return content if isinstance(content, str) else " ".join(b.get("text", "") for b in content)
    raise AssertionError("no user message")


def turns(body: dict[str, Any]) -> int:
    """How many user turns the conversation has (1 on a first attempt, 2 after one repair, ...)."""
    return sum(1 for message in body["messages"] if message["role"] == "user")
