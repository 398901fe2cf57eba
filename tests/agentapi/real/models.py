"""Fake model servers for the real agent CLIs: Anthropic Messages, OpenAI Responses, OpenAI Chat Completions and
Gemini streamGenerateContent, streaming as the CLIs read them, with one script for all four.

The script answers the latest user text: `pause` streams a reply that stops for a few seconds mid-line, `edit`
calls the agent's file-writing tool (then says it is done), anything else gets a three-line greeting.
Every request is kept in `requests` for the test to assert what the CLI sent.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

GREETING = "Hello from the fake model.\nThis is line two of the reply.\nAnd line three ends it."
PAUSE_HEAD = "Comparing the two:\n\n"
PAUSED_REPLY = PAUSE_HEAD + "x > y holds here.\nAnd that settles it."
EDITED = "I wrote hello.txt for you."
FILE_CONTENT = "hello from the agent\n"


@dataclass
class Pause:
    seconds: float


@dataclass
class ToolCall:
    """The agent's own file-writing tool, named as each CLI names it."""

    name: str
    arguments: dict[str, Any]


@dataclass
class Script:
    pause_seconds: float = 4.0
    requests: list[tuple[str, dict[str, Any]]] = field(default_factory=list)

    def reply(self, user_text: str, after_tool: bool, tool: ToolCall | None) -> list[str | Pause | ToolCall]:
        if after_tool:
            return [EDITED]
        if "pause" in user_text:
            return [PAUSE_HEAD, "x > y holds here.\n", Pause(self.pause_seconds), "And that settles it."]
        if "edit" in user_text and tool is not None:
            return ["I will write the file.", tool]
        return [GREETING[:20], GREETING[20:]]


def _text_of(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return " ".join(
            _text_of(part.get("text", part.get("content", ""))) for part in content if isinstance(part, dict)
        )
    return ""


def create_app(script: Script) -> Starlette:
    async def anthropic(request: Request) -> Response:
        body = await request.json()
        script.requests.append(("anthropic", body))
        # The last user message: Claude Code may end a conversation's first request with a `system` message.
        messages = [m for m in body.get("messages", []) if m.get("role") == "user"]
        last = messages[-1] if messages else {}
        parts = last.get("content") if isinstance(last.get("content"), list) else []
        after_tool = any(isinstance(p, dict) and p.get("type") == "tool_result" for p in parts)
        user_text = _text_of(last.get("content", ""))
        tools = {t.get("name") for t in body.get("tools", [])}
        tool = ToolCall("Write", {"file_path": "hello.txt", "content": FILE_CONTENT}) if "Write" in tools else None
        steps = script.reply(user_text, after_tool, tool)
        if not body.get("stream"):
            text = "".join(s for s in steps if isinstance(s, str))
            return JSONResponse(_anthropic_message(body, [{"type": "text", "text": text}], "end_turn"))
        return _sse(_anthropic_stream(body, steps))

    async def count_tokens(request: Request) -> Response:
        await request.body()
        return JSONResponse({"input_tokens": 10})

    async def responses(request: Request) -> Response:
        body = await request.json()
        script.requests.append(("responses", body))
        items = body.get("input", [])
        last = items[-1] if items else {}
        after_tool = last.get("type") in ("function_call_output", "custom_tool_call_output")
        user_text = next((_text_of(i.get("content")) for i in reversed(items) if i.get("role") == "user"), "")
        names = {t.get("name") for t in body.get("tools", [])}
        tool = None
        if "shell" in names:
            tool = ToolCall("shell", {"command": ["bash", "-lc", f"printf '{FILE_CONTENT.strip()}\\n' > hello.txt"]})
        elif "exec_command" in names:
            # Asking for escalation makes Codex ask the user first, under any approval policy but `never`.
            arguments = {
                "cmd": f"printf '{FILE_CONTENT.strip()}\\n' > hello.txt",
                "sandbox_permissions": "require_escalated",
                "justification": "Write hello.txt?",
            }
            tool = ToolCall("exec_command", arguments)
        steps = script.reply(user_text, after_tool, tool)
        return _sse(_responses_stream(body, steps))

    async def chat(request: Request) -> Response:
        body = await request.json()
        script.requests.append(("chat", body))
        messages = body.get("messages", [])
        user_text = next((_text_of(m.get("content")) for m in reversed(messages) if m.get("role") == "user"), "")
        # Aider edits through its own edit format in the text: a whole file after its name.
        steps = script.reply(user_text, False, ToolCall("whole", {}))
        steps = [f"\n\nhello.txt\n```\n{FILE_CONTENT}```\n" if isinstance(s, ToolCall) else s for s in steps]
        if not body.get("stream"):
            text = "".join(s for s in steps if isinstance(s, str))
            return JSONResponse(_chat_completion(body, text))
        return _sse(_chat_stream(body, steps), done=True)

    async def gemini(request: Request) -> Response:
        model, _, method = request.path_params["rest"].partition(":")
        body = await request.json()
        script.requests.append((f"gemini:{method}", body))
        if method == "countTokens":
            return JSONResponse({"totalTokens": 10})
        contents = body.get("contents", [])
        last = contents[-1] if contents else {}
        parts = last.get("parts", [])
        after_tool = any("functionResponse" in p for p in parts)
        user_text = " ".join(p.get("text", "") for p in parts)
        names = {d.get("name") for t in body.get("tools", []) for d in t.get("functionDeclarations", [])}
        tool = (
            ToolCall("write_file", {"file_path": "hello.txt", "content": FILE_CONTENT})
            if "write_file" in names
            else None
        )
        if method == "generateContent":
            # Side calls (routing, next-speaker checks) want JSON; a short text answers them.
            return JSONResponse(_gemini_chunk(model, [{"text": '{"reasoning": "", "next_speaker": "user"}'}], "STOP"))
        return _sse(_gemini_stream(model, script.reply(user_text, after_tool, tool)))

    return Starlette(
        routes=[
            Route("/v1/messages", anthropic, methods=["POST"]),
            Route("/v1/messages/count_tokens", count_tokens, methods=["POST"]),
            Route("/v1/responses", responses, methods=["POST"]),
            Route("/v1/chat/completions", chat, methods=["POST"]),
            Route("/v1beta/models/{rest:path}", gemini, methods=["POST"]),
        ]
    )


def _sse(events: AsyncIterator[str], done: bool = False) -> StreamingResponse:
    async def body() -> AsyncIterator[bytes]:
        async for event in events:
            yield event.encode()
        if done:
            yield b"data: [DONE]\n\n"

    return StreamingResponse(body(), media_type="text/event-stream", headers={"Cache-Control": "no-cache"})


def _event(data: dict[str, Any], name: str | None = None) -> str:
    head = f"event: {name}\n" if name else ""
    return f"{head}data: {json.dumps(data)}\n\n"


async def _pace(steps: list[str | Pause | ToolCall]) -> AsyncIterator[str | ToolCall]:
    for step in steps:
        if isinstance(step, Pause):
            await asyncio.sleep(step.seconds)
        else:
            await asyncio.sleep(0.05)
            yield step


def _anthropic_message(body: dict[str, Any], content: list[dict[str, Any]], stop: str) -> dict[str, Any]:
    return {
        "id": f"msg_{uuid.uuid4().hex[:20]}",
        "type": "message",
        "role": "assistant",
        "model": body.get("model", "claude"),
        "content": content,
        "stop_reason": stop,
        "stop_sequence": None,
        "usage": {"input_tokens": 10, "output_tokens": 10},
    }


async def _anthropic_stream(body: dict[str, Any], steps: list[str | Pause | ToolCall]) -> AsyncIterator[str]:
    start = _anthropic_message(body, [], "end_turn")
    start["stop_reason"] = None
    yield _event({"type": "message_start", "message": start}, "message_start")
    index = 0
    text_open = False
    stop = "end_turn"
    async for step in _pace(steps):
        if isinstance(step, str):
            if not text_open:
                block = {"type": "content_block_start", "index": index, "content_block": {"type": "text", "text": ""}}
                yield _event(block, "content_block_start")
                text_open = True
            delta = {"type": "content_block_delta", "index": index, "delta": {"type": "text_delta", "text": step}}
            yield _event(delta, "content_block_delta")
            continue
        if text_open:
            yield _event({"type": "content_block_stop", "index": index}, "content_block_stop")
            index += 1
            text_open = False
        tool_id = f"toolu_{uuid.uuid4().hex[:20]}"
        block = {"type": "tool_use", "id": tool_id, "name": step.name, "input": {}}
        yield _event({"type": "content_block_start", "index": index, "content_block": block}, "content_block_start")
        delta = {"type": "input_json_delta", "partial_json": json.dumps(step.arguments)}
        yield _event({"type": "content_block_delta", "index": index, "delta": delta}, "content_block_delta")
        yield _event({"type": "content_block_stop", "index": index}, "content_block_stop")
        stop = "tool_use"
    if text_open:
        yield _event({"type": "content_block_stop", "index": index}, "content_block_stop")
    usage = {"output_tokens": 10}
    yield _event(
        {"type": "message_delta", "delta": {"stop_reason": stop, "stop_sequence": None}, "usage": usage},
        "message_delta",
    )
    yield _event({"type": "message_stop"}, "message_stop")


async def _responses_stream(body: dict[str, Any], steps: list[str | Pause | ToolCall]) -> AsyncIterator[str]:
    response_id = f"resp_{uuid.uuid4().hex[:20]}"
    base = {
        "id": response_id,
        "object": "response",
        "model": body.get("model", "gpt"),
        "status": "in_progress",
        "output": [],
    }
    yield _event({"type": "response.created", "response": base}, "response.created")
    output: list[dict[str, Any]] = []
    text = ""
    message_id = f"msg_{uuid.uuid4().hex[:20]}"
    async for step in _pace(steps):
        if isinstance(step, str):
            if not text:
                item = {
                    "type": "message",
                    "id": message_id,
                    "role": "assistant",
                    "status": "in_progress",
                    "content": [],
                }
                yield _event(
                    {"type": "response.output_item.added", "output_index": 0, "item": item},
                    "response.output_item.added",
                )
            text += step
            delta = {
                "type": "response.output_text.delta",
                "item_id": message_id,
                "output_index": 0,
                "content_index": 0,
                "delta": step,
            }
            yield _event(delta, "response.output_text.delta")
            continue
        call = {
            "type": "function_call",
            "id": f"fc_{uuid.uuid4().hex[:20]}",
            "call_id": f"call_{uuid.uuid4().hex[:20]}",
            "name": step.name,
            "arguments": json.dumps(step.arguments),
            "status": "completed",
        }
        output.append(call)
    if text:
        message = {
            "type": "message",
            "id": message_id,
            "role": "assistant",
            "status": "completed",
            "content": [{"type": "output_text", "text": text, "annotations": []}],
        }
        yield _event(
            {"type": "response.output_item.done", "output_index": 0, "item": message}, "response.output_item.done"
        )
        output.insert(0, message)
    for position, item in enumerate(output):
        if item["type"] == "function_call":
            done = {"type": "response.output_item.done", "output_index": position, "item": item}
            yield _event(done, "response.output_item.done")
    usage = {
        "input_tokens": 10,
        "input_tokens_details": {"cached_tokens": 0},
        "output_tokens": 10,
        "output_tokens_details": {"reasoning_tokens": 0},
        "total_tokens": 20,
    }
    final = {**base, "status": "completed", "output": output, "usage": usage}
    yield _event({"type": "response.completed", "response": final}, "response.completed")


def _chat_completion(body: dict[str, Any], text: str) -> dict[str, Any]:
    return {
        "id": f"chatcmpl-{uuid.uuid4().hex[:20]}",
        "object": "chat.completion",
        "created": 0,
        "model": body.get("model", "gpt"),
        "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 10, "completion_tokens": 10, "total_tokens": 20},
    }


async def _chat_stream(body: dict[str, Any], steps: list[str | Pause | ToolCall]) -> AsyncIterator[str]:
    chunk_id = f"chatcmpl-{uuid.uuid4().hex[:20]}"

    def chunk(delta: dict[str, Any], finish: str | None = None) -> str:
        choice = {"index": 0, "delta": delta, "finish_reason": finish}
        data = {
            "id": chunk_id,
            "object": "chat.completion.chunk",
            "created": 0,
            "model": body.get("model", "gpt"),
            "choices": [choice],
        }
        return _event(data)

    yield chunk({"role": "assistant", "content": ""})
    async for step in _pace(steps):
        if isinstance(step, str):
            yield chunk({"content": step})
    yield chunk({}, "stop")


def _gemini_chunk(model: str, parts: list[dict[str, Any]], finish: str | None) -> dict[str, Any]:
    candidate: dict[str, Any] = {"content": {"role": "model", "parts": parts}, "index": 0}
    if finish:
        candidate["finishReason"] = finish
    return {
        "candidates": [candidate],
        "usageMetadata": {"promptTokenCount": 10, "candidatesTokenCount": 10, "totalTokenCount": 20},
        "modelVersion": model,
    }


async def _gemini_stream(model: str, steps: list[str | Pause | ToolCall]) -> AsyncIterator[str]:
    async for step in _pace(steps):
        if isinstance(step, str):
            yield _event(_gemini_chunk(model, [{"text": step}], None))
        else:
            yield _event(_gemini_chunk(model, [{"functionCall": {"name": step.name, "args": step.arguments}}], None))
    yield _event(_gemini_chunk(model, [{"text": ""}], "STOP"))
