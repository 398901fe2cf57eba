"""The egress proxy of a sandbox with no network of its own: an HTTP forwarding proxy on a Unix socket that lets
CONNECT and plain HTTP through to allow-listed `host:port` pairs only, and the tiny forwarder that runs inside the
sandbox to expose that socket as `http://127.0.0.1:<port>`."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import structlog

from taskmaster.core.errors import InvalidInput

log = structlog.stdlib.get_logger("taskmaster.workspaces.proxy")

SOCKET_NAME = "proxy.sock"
_HEAD_LIMIT = 64 * 1024
_HEAD_SECONDS = 30.0
_CONNECT_SECONDS = 15.0
_CHUNK = 65536
_DEFAULT_PORTS = {"http": 80, "https": 443}
# Headers that would make the upstream keep the connection for requests this proxy never looked at.
_HOP_BY_HOP = {b"connection", b"proxy-connection", b"keep-alive", b"proxy-authorization", b"upgrade"}


@dataclass(frozen=True, slots=True, order=True)
class Endpoint:
    """One allowed destination: a host name or address (lower case, IPv6 without brackets) and a port."""

    host: str
    port: int

    def __str__(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"

    @property
    def loopback(self) -> bool:
        return self.host in ("127.0.0.1", "localhost", "::1")

    @classmethod
    def parse(cls, text: str) -> Endpoint:
        """`https://host[:port][/path]` (the scheme's port by default) or `host:port`; InvalidInput otherwise."""
        value = text.strip()
        if "://" not in value:
            value = f"tcp://{value}"
        try:
            parts = urlsplit(value)
            port = parts.port or _DEFAULT_PORTS.get(parts.scheme)
        except ValueError:
            port = None
            parts = None
        if parts is None or not parts.hostname or port is None:
            raise InvalidInput(f"not an endpoint (expected https://host[:port] or host:port): {text!r}")
        return cls(parts.hostname.lower(), port)


@dataclass
class EgressProxy:
    """Serves one sandbox. Lifecycle: `start()` (creates `socket_path` in a private directory), then `close()`.

    Runs on one event loop. Every connection sends one request head: `CONNECT host:port` opens a tunnel, an
    absolute-form request (`GET http://host:port/path`) is forwarded once with `Connection: close`; anything whose
    destination is not in `allow` gets 403 and is recorded in `refused`; a head that cannot be read gets 400.
    """

    allow: frozenset[Endpoint]
    owner: tuple[int, int] | None = None
    """uid and gid that may connect (the sandbox user, when it is not ours); None: only this process's user."""
    refused: list[str] = field(default_factory=list)
    forwarded: list[str] = field(default_factory=list)
    _directory: Path | None = None
    _server: asyncio.AbstractServer | None = None
    _tasks: set[asyncio.Task[None]] = field(default_factory=set)

    @property
    def directory(self) -> Path:
        """The directory holding the socket: bind it into the sandbox."""
        assert self._directory is not None, "start() first"
        return self._directory

    @property
    def socket_path(self) -> Path:
        return self.directory / SOCKET_NAME

    async def start(self) -> None:
        # Under /tmp, which every user may walk through, in a directory only the sandbox user (or we) may enter.
        self._directory = Path(tempfile.mkdtemp(prefix="taskmaster-proxy-"))
        self._server = await asyncio.start_unix_server(self._serve, path=str(self.socket_path))
        if self.owner is not None:
            os.chown(self._directory, *self.owner)
            os.chown(self.socket_path, *self.owner)
        os.chmod(self._directory, 0o700)
        os.chmod(self.socket_path, 0o600)

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            with contextlib.suppress(Exception):
                await self._server.wait_closed()
            self._server = None
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._directory is not None:
            shutil.rmtree(self._directory, ignore_errors=True)
            self._directory = None

    async def __aenter__(self) -> EgressProxy:
        await self.start()
        return self

    async def __aexit__(self, *_exc: object) -> None:
        await self.close()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        try:
            await self._handle(reader, writer)
        except (ConnectionError, asyncio.IncompleteReadError, TimeoutError):
            pass
        finally:
            self._tasks.discard(task)
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), _HEAD_SECONDS)
        except asyncio.LimitOverrunError:
            await _answer(writer, 431, "request head too large")
            return
        if len(head) > _HEAD_LIMIT:
            await _answer(writer, 431, "request head too large")
            return
        request_line, _, rest = head.partition(b"\r\n")
        parts = request_line.split(b" ")
        if len(parts) != 3 or not parts[2].startswith(b"HTTP/1."):
            await _answer(writer, 400, "not an HTTP/1 request")
            return
        method, target, version = (part.decode("latin-1") for part in parts)
        try:
            if method == "CONNECT":
                endpoint = Endpoint.parse(target)
                path = ""
            else:
                url = urlsplit(target)
                if url.scheme != "http" or not url.hostname:
                    raise InvalidInput("a proxy request needs an absolute http:// URL (https goes through CONNECT)")
                endpoint = Endpoint.parse(target)
                path = (url.path or "/") + (f"?{url.query}" if url.query else "")
        except (InvalidInput, ValueError) as exc:
            await _answer(writer, 400, str(exc))
            return
        if endpoint not in self.allow:
            self.refused.append(str(endpoint))
            log.warning("sandbox egress refused", destination=str(endpoint))
            await _answer(writer, 403, f"{endpoint} is not an endpoint this sandbox may reach")
            return
        try:
            up_reader, up_writer = await asyncio.wait_for(
                asyncio.open_connection(endpoint.host, endpoint.port), _CONNECT_SECONDS
            )
        except (OSError, TimeoutError) as exc:
            await _answer(writer, 502, f"cannot reach {endpoint}: {exc}")
            return
        self.forwarded.append(str(endpoint))
        try:
            if method == "CONNECT":
                writer.write(b"HTTP/1.1 200 Connection established\r\n\r\n")
                await writer.drain()
            else:
                up_writer.write(_origin_form(method, path, version, rest))
            await _pipe_both(reader, writer, up_reader, up_writer)
        finally:
            up_writer.close()
            with contextlib.suppress(Exception):
                await up_writer.wait_closed()


def _origin_form(method: str, path: str, version: str, rest: bytes) -> bytes:
    """The request head for the origin server: its own path, no hop-by-hop headers, `Connection: close`."""
    headers = [
        line for line in rest.split(b"\r\n") if line and line.split(b":", 1)[0].strip().lower() not in _HOP_BY_HOP
    ]
    lines = [f"{method} {path} {version}".encode("latin-1"), *headers, b"Connection: close", b"", b""]
    return b"\r\n".join(lines)


async def _pipe_both(
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
    up_reader: asyncio.StreamReader,
    up_writer: asyncio.StreamWriter,
) -> None:
    async def pipe(source: asyncio.StreamReader, target: asyncio.StreamWriter) -> None:
        with contextlib.suppress(ConnectionError, OSError):
            while data := await source.read(_CHUNK):
                target.write(data)
                await target.drain()
            if target.can_write_eof():
                target.write_eof()

    await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))


async def _answer(writer: asyncio.StreamWriter, status: int, message: str) -> None:
    reasons = {400: "Bad Request", 403: "Forbidden", 431: "Request Header Fields Too Large", 502: "Bad Gateway"}
    body = f"taskmaster egress proxy: {message}\n".encode()
    writer.write(
        f"HTTP/1.1 {status} {reasons[status]}\r\nContent-Type: text/plain; charset=utf-8\r\n"
        f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode()
        + body
    )
    with contextlib.suppress(ConnectionError):
        await writer.drain()


def endpoints(values: Iterable[str]) -> frozenset[Endpoint]:
    """The endpoints of `values` (URLs or `host:port`); InvalidInput naming the first that is neither."""
    return frozenset(Endpoint.parse(value) for value in values)


FORWARDER = r"""
import os, socket, sys, threading
sock_path, routes, keep, argv = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[5:]
env = {name: os.environ[name] for name in keep.split(",") if name in os.environ}
if sock_path == "-":
    os.execvpe(argv[0], argv, env)
def relay(a, b):
    try:
        while True:
            data = a.recv(65536)
            if not data:
                break
            b.sendall(data)
    except OSError:
        pass
    for s in (a, b):
        try:
            s.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
def serve(listener, target):
    while True:
        client, _ = listener.accept()
        threading.Thread(target=handle, args=(client, target), daemon=True).start()
def handle(client, target):
    upstream = socket.socket(socket.AF_UNIX)
    try:
        upstream.connect(sock_path)
        if target:
            upstream.sendall(("CONNECT %s HTTP/1.1\r\nHost: %s\r\n\r\n" % (target, target)).encode())
            head = b""
            while b"\r\n\r\n" not in head and len(head) < 65536:
                data = upstream.recv(1)
                if not data:
                    break
                head += data
            if not head.startswith((b"HTTP/1.1 200", b"HTTP/1.0 200")):
                raise OSError("refused")
    except OSError:
        client.close()
        upstream.close()
        return
    threading.Thread(target=relay, args=(upstream, client), daemon=True).start()
    relay(client, upstream)
def listen(port):
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("127.0.0.1", port))
    s.listen(64)
    return s
proxy = listen(0)
listeners = [(proxy, None)]
for route in filter(None, routes.split(",")):
    port, target = route.split("=", 1)
    try:
        listeners.append((listen(int(port)), target))
    except OSError:
        pass
url = "http://127.0.0.1:%d" % proxy.getsockname()[1]
for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy"):
    env[name] = url
for name in ("NO_PROXY", "no_proxy"):
    env.pop(name, None)
if os.fork() == 0:
    for listener, target in listeners[1:]:
        threading.Thread(target=serve, args=(listener, target), daemon=True).start()
    serve(*listeners[0])
    os._exit(0)
for listener, _ in listeners:
    listener.close()
os.execvpe(argv[0], argv, env)
"""
"""Run inside the sandbox as `python3 -c FORWARDER <socket|-> <routes> <names> -- <argv…>`: keeps only the
environment variables in the comma-separated `names`, listens on 127.0.0.1 (a free port, exported as
HTTP(S)_PROXY), relays each connection to the proxy's socket, and for each `port=host:port` route also listens on
that loopback port and tunnels it with CONNECT (for clients that ignore proxy variables and call a loopback model
server directly); then a forked child serves while the process becomes the agent. `-`: no proxy, no network."""
