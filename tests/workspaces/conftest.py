"""Fixtures for the workspaces tests: real git repositories, a git smart-HTTP server, and sandbox-reachable dirs."""

from __future__ import annotations

import base64
import os
import subprocess
import tempfile
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from taskmaster.workspaces.cleanup import remove_tree_sync
from tests.support import free_port

GIT_ENV = {
    "GIT_AUTHOR_NAME": "Test",
    "GIT_AUTHOR_EMAIL": "test@example.com",
    "GIT_COMMITTER_NAME": "Test",
    "GIT_COMMITTER_EMAIL": "test@example.com",
    "GIT_CONFIG_NOSYSTEM": "1",
}


def git(cwd: Path, *args: str) -> str:
    """Run git in `cwd` and return its stdout; fail the test with git's stderr if it fails."""
    done = subprocess.run(
        ["git", *args], cwd=cwd, env={**os.environ, **GIT_ENV}, capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, f"git {' '.join(args)}: {done.stderr}"
    return done.stdout.strip()


def commit(repo: Path, name: str, content: str, message: str | None = None) -> str:
    """Write `name`, commit it on the current branch and return the new sha."""
    (repo / name).parent.mkdir(parents=True, exist_ok=True)
    (repo / name).write_text(content)
    git(repo, "add", name)
    git(repo, "commit", "-q", "-m", message or f"change {name}")
    return git(repo, "rev-parse", "HEAD")


def make_repo(path: Path, commits: int = 3) -> list[str]:
    """A repository on branch main with `commits` commits (the first tagged v0.1); returns their shas, oldest first."""
    path.mkdir(parents=True)
    git(path, "init", "-q", "-b", "main")
    shas = []
    for number in range(commits):
        shas.append(commit(path, "app.txt", f"version {number}\n", f"commit {number}"))
        if number == 0:
            git(path, "tag", "-a", "v0.1", "-m", "first")
    return shas


@pytest.fixture
def source_repo(tmp_path: Path) -> tuple[Path, list[str]]:
    repo = tmp_path / "source"
    return repo, make_repo(repo)


@pytest.fixture
def reachable_dir() -> Iterator[Path]:
    """A fresh directory the sandbox user can reach (tmp_path's parents are private to root)."""
    path = Path(tempfile.mkdtemp(prefix="taskmaster-test-", dir="/tmp"))
    path.chmod(0o755)
    try:
        yield path
    finally:
        remove_tree_sync(path)


@pytest.fixture
def workspace(reachable_dir: Path) -> Path:
    path = reachable_dir / "ws"
    path.mkdir()
    return path


@dataclass
class GitHttpServer:
    """Repositories under `root`, served over git's smart HTTP protocol, behind HTTP Basic authentication."""

    root: Path
    token: str
    url: str = ""
    authorizations: list[str] = field(default_factory=list)

    def expected(self) -> str:
        return "Basic " + base64.b64encode(f"x-access-token:{self.token}".encode()).decode()


@pytest.fixture
def git_http_server(tmp_path: Path) -> Iterator[GitHttpServer]:
    """`git http-backend` as CGI behind a threaded HTTP server on loopback; only the right token gets through."""
    server_state = GitHttpServer(root=tmp_path / "served", token="ghp_SECRETtoken123456789")
    server_state.root.mkdir()

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: object) -> None:
            pass

        def do_GET(self) -> None:
            self._backend()

        def do_POST(self) -> None:
            self._backend()

        def _backend(self) -> None:
            authorization = self.headers.get("Authorization") or ""
            server_state.authorizations.append(authorization)
            if authorization != server_state.expected():
                self.send_response(401)
                self.send_header("WWW-Authenticate", 'Basic realm="git"')
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            path, _, query = self.path.partition("?")
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            env = {
                "PATH": os.environ["PATH"],
                "GIT_PROJECT_ROOT": str(server_state.root),
                "GIT_HTTP_EXPORT_ALL": "1",
                "PATH_INFO": path,
                "QUERY_STRING": query,
                "REQUEST_METHOD": self.command,
                "CONTENT_TYPE": self.headers.get("Content-Type") or "",
                "CONTENT_LENGTH": str(len(body)),
                "REMOTE_USER": "x-access-token",
                "REMOTE_ADDR": "127.0.0.1",
            }
            if self.headers.get("Git-Protocol"):
                env["HTTP_GIT_PROTOCOL"] = self.headers["Git-Protocol"]
            if self.headers.get("Content-Encoding"):
                env["HTTP_CONTENT_ENCODING"] = self.headers["Content-Encoding"]
            out = subprocess.run(["git", "http-backend"], input=body, env=env, capture_output=True, check=False).stdout
            head, _, payload = out.partition(b"\r\n\r\n")
            headers = [line.split(":", 1) for line in head.decode().splitlines() if ":" in line]
            status = next((int(value.split()[0]) for name, value in headers if name.lower() == "status"), 200)
            self.send_response(status)
            for name, value in headers:
                if name.lower() != "status":
                    self.send_header(name, value.strip())
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

    port = free_port()
    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    server_state.url = f"http://127.0.0.1:{port}"
    try:
        yield server_state
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)
