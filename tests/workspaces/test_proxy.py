"""The egress proxy on its Unix socket: CONNECT and plain HTTP to allow-listed endpoints only, 403 for the rest,
400 for what is not a proxy request; the forwarded request carries its own path and `Connection: close`."""

from __future__ import annotations

import asyncio
import socket
import stat
from collections.abc import AsyncIterator

import pytest

from taskmaster.core.errors import InvalidInput
from taskmaster.workspaces.proxy import EgressProxy, Endpoint, endpoints


class Upstream:
    """A TCP server on loopback that records the raw request head and answers one fixed response."""

    def __init__(self) -> None:
        self.heads: list[bytes] = []
        self.server: asyncio.AbstractServer | None = None
        self.port = 0

    async def start(self) -> None:
        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            self.heads.append(await reader.readuntil(b"\r\n\r\n"))
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 8\r\nConnection: close\r\n\r\nupstream")
            await writer.drain()
            writer.close()

        self.server = await asyncio.start_server(handle, "127.0.0.1", 0)
        self.port = self.server.sockets[0].getsockname()[1]

    async def close(self) -> None:
        assert self.server is not None
        self.server.close()
        await self.server.wait_closed()


@pytest.fixture
async def upstreams() -> AsyncIterator[tuple[Upstream, Upstream]]:
    allowed, other = Upstream(), Upstream()
    await allowed.start()
    await other.start()
    yield allowed, other
    await allowed.close()
    await other.close()


async def exchange(proxy: EgressProxy, data: bytes) -> bytes:
    reader, writer = await asyncio.open_unix_connection(str(proxy.socket_path))
    writer.write(data)
    await writer.drain()
    response = await asyncio.wait_for(reader.read(), 10)
    writer.close()
    return response


async def test_connect_to_an_allowed_endpoint_opens_a_tunnel(upstreams: tuple[Upstream, Upstream]) -> None:
    allowed, _ = upstreams
    async with EgressProxy(endpoints([f"http://127.0.0.1:{allowed.port}"])) as proxy:
        target = f"127.0.0.1:{allowed.port}"
        response = await exchange(
            proxy,
            f"CONNECT {target} HTTP/1.1\r\nHost: {target}\r\n\r\nGET /inside HTTP/1.1\r\nHost: x\r\n\r\n".encode(),
        )
        assert proxy.forwarded == [target]
    assert response.startswith(b"HTTP/1.1 200 Connection established\r\n\r\nHTTP/1.1 200 OK")
    assert response.endswith(b"upstream")
    assert allowed.heads == [b"GET /inside HTTP/1.1\r\nHost: x\r\n\r\n"]


async def test_a_plain_request_is_forwarded_in_origin_form_with_connection_close(
    upstreams: tuple[Upstream, Upstream],
) -> None:
    allowed, _ = upstreams
    async with EgressProxy(endpoints([f"127.0.0.1:{allowed.port}"])) as proxy:
        request = (
            f"GET http://127.0.0.1:{allowed.port}/v1/models?x=1 HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            "Proxy-Connection: keep-alive\r\nConnection: keep-alive\r\nAuthorization: Bearer k\r\n\r\n"
        )
        response = await exchange(proxy, request.encode())
    assert response.startswith(b"HTTP/1.1 200 OK") and response.endswith(b"upstream")
    assert allowed.heads == [
        b"GET /v1/models?x=1 HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer k\r\nConnection: close\r\n\r\n"
    ]


async def test_any_other_destination_gets_403_and_is_recorded(upstreams: tuple[Upstream, Upstream]) -> None:
    allowed, other = upstreams
    async with EgressProxy(endpoints([f"127.0.0.1:{allowed.port}"])) as proxy:
        tunnel = await exchange(proxy, f"CONNECT 127.0.0.1:{other.port} HTTP/1.1\r\n\r\n".encode())
        plain = await exchange(proxy, f"GET http://localhost:{allowed.port}/ HTTP/1.1\r\n\r\n".encode())
        https = await exchange(proxy, b"CONNECT api.example.com:443 HTTP/1.1\r\n\r\n")
        refused = list(proxy.refused)
    for response in (tunnel, plain, https):
        assert response.startswith(b"HTTP/1.1 403 Forbidden")
    assert b"is not an endpoint this sandbox may reach" in tunnel
    assert refused == [f"127.0.0.1:{other.port}", f"localhost:{allowed.port}", "api.example.com:443"]
    assert other.heads == [] and allowed.heads == []


@pytest.mark.parametrize(
    "request_bytes",
    [
        b"hello\r\n\r\n",
        b"GET /relative HTTP/1.1\r\n\r\n",
        b"GET https://x/ HTTP/1.1\r\n\r\n",
        b"CONNECT nohost HTTP/1.1\r\n\r\n",
    ],
)
async def test_what_is_not_a_proxy_request_gets_400(request_bytes: bytes) -> None:
    async with EgressProxy(endpoints(["127.0.0.1:1"])) as proxy:
        response = await exchange(proxy, request_bytes)
    assert response.startswith(b"HTTP/1.1 400 Bad Request")


async def test_the_socket_is_private_and_removed_on_close() -> None:
    proxy = EgressProxy(frozenset())
    await proxy.start()
    path = proxy.socket_path
    assert stat.S_ISSOCK(path.stat().st_mode)
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    await proxy.close()
    assert not path.exists() and not path.parent.exists()
    with pytest.raises(FileNotFoundError), socket.socket(socket.AF_UNIX) as client:
        client.connect(str(path))


def test_endpoints_parse_urls_and_host_port_pairs() -> None:
    assert endpoints(["https://API.anthropic.com/v1", "http://127.0.0.1:8080", "[::1]:9", "example.org:80"]) == {
        Endpoint("api.anthropic.com", 443),
        Endpoint("127.0.0.1", 8080),
        Endpoint("::1", 9),
        Endpoint("example.org", 80),
    }
    assert str(Endpoint("::1", 9)) == "[::1]:9"
    for bad in ("not a url", "ftp://host", "host:notaport", "https://"):
        with pytest.raises(InvalidInput, match="not an endpoint"):
            Endpoint.parse(bad)
