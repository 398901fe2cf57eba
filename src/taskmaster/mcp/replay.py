"""Hand the stdio connection to the SDK server after `handshake` read its first line (and perhaps answered it).

The SDK is fed that line first, so its connection state (era, protocol version, client) is its own; its reply to
a request answered already is dropped, being the same answer (a test compares them for every protocol version).
"""

from __future__ import annotations

import json
from types import TracebackType
from typing import Any, Self

import anyio
import mcp_types as types
from mcp.server.mcpserver import MCPServer
from mcp.server.stdio import stdio_server
from mcp.shared.message import SessionMessage

from taskmaster.core.logging import get_logger
from taskmaster.mcp.handshake import Opening, answer_for

log = get_logger(__name__)


async def replay_stdio(server: MCPServer[Any], opening: Opening) -> None:
    """Serve stdin/stdout as `server.run_stdio_async` does, `opening` being the first line the client sent."""
    # The low-level server is the one `run_stdio_async` drives; only its input and output are wrapped here.
    lowlevel = server._lowlevel_server
    async with stdio_server() as (read_stream, write_stream):
        send, receive = anyio.create_memory_object_stream[SessionMessage | Exception](0)

        async def relay() -> None:
            async with send:
                if opening.line:
                    await send.send(_decode(opening.line))
                async for item in read_stream:
                    await send.send(item)

        async with anyio.create_task_group() as group:
            group.start_soon(relay)
            await lowlevel.run(receive, _DropAnswered(write_stream, opening), lowlevel.create_initialization_options())
            group.cancel_scope.cancel()


def _decode(line: bytes) -> SessionMessage | Exception:
    """The line as the SDK's stdio transport decodes one: a message, or the error it passes on."""
    try:
        message = types.jsonrpc_message_adapter.validate_json(line.decode("utf-8", errors="replace"), by_name=False)
    except Exception as exc:
        return exc
    return SessionMessage(message)


class _DropAnswered:
    """The write stream, less the SDK's reply to the request `handshake` answered (once)."""

    def __init__(self, inner: Any, opening: Opening) -> None:
        self._inner = inner
        self._opening = opening
        self._pending = opening.answered_id is not None

    async def send(self, item: SessionMessage, /) -> None:
        message = item.message
        if (
            self._pending
            and isinstance(message, types.JSONRPCResponse | types.JSONRPCError)
            and message.id == self._opening.answered_id
        ):
            self._pending = False
            sent = answer_for(self._opening.line)
            if json.loads(message.model_dump_json(by_alias=True, exclude_unset=True)) != sent:
                log.warning("the early initialize answer differs from the SDK's", sdk=message.model_dump(mode="json"))
            return
        await self._inner.send(item)

    async def aclose(self) -> None:
        await self._inner.aclose()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> bool | None:
        await self.aclose()
        return None
