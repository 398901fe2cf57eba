"""Fixtures for the AgentAPI coding agent: the scripted agent installed where the sandbox user can read it, a
checkout (a real git repository), loopback HTTP servers standing for model APIs, and projects to run it for."""

from __future__ import annotations

import os
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from cryptography.fernet import Fernet

from taskmaster.agents.base import CodingJob
from taskmaster.config import Settings
from taskmaster.db.models import Project
from taskmaster.projects.credentials import Credentials
from taskmaster.secrets import SecretBox
from tests.support import install_agent, make_repo

SCRIPT = Path(__file__).parent / "scripted_agent.py"
WINDOW = 0.4  # the stability window: long enough to outlast the scripted agent's redraws


@dataclass
class ModelServer:
    """A loopback HTTP server that answers every GET with `model ok <path>` and records the paths."""

    url: str
    port: int
    paths: list[str] = field(default_factory=list)


def _serve() -> Iterator[ModelServer]:
    paths: list[str] = []

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: object) -> None:
            pass

        def do_GET(self) -> None:
            paths.append(self.path)
            body = f"model ok {self.path}".encode()
            self.send_response(200)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    port = int(server.server_address[1])
    try:
        yield ModelServer(f"http://127.0.0.1:{port}", port, paths)
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def model_server() -> Iterator[ModelServer]:
    yield from _serve()


@pytest.fixture
def other_server() -> Iterator[ModelServer]:
    """Another loopback server, which no configuration names."""
    yield from _serve()


@pytest.fixture
def agent_command(reachable_dir: Path) -> str:
    """The scripted agent, installed outside the toolchain (as npm or a venv would install a CLI)."""
    return install_agent(reachable_dir / "agent-cli", "scripted-agent", SCRIPT)


@pytest.fixture
def checkout(reachable_dir: Path) -> Path:
    path = reachable_dir / "checkout"
    make_repo(path, commits=1)
    return path


@pytest.fixture
def box() -> SecretBox:
    return SecretBox([Fernet.generate_key().decode()])


@pytest.fixture
def credentials(box: SecretBox) -> Credentials:
    return Credentials(box)


def make_settings(tmp_path: Path, **sections: Any) -> Settings:
    return Settings.model_validate({"state_dir": str(tmp_path / "state"), **sections})


def make_project(command: str | None, agent_type: str = "claude", **config: Any) -> Project:
    config.setdefault("stability_window", WINDOW)
    agent: dict[str, Any] = {"type": agent_type}
    if command is not None:
        agent["command"] = command
    return Project(
        id=uuid.uuid4(),
        name="demo",
        repository="/srv/demo.git",
        agentapi_config=config,
        claude_code_config={},
        settings={"agent": agent},
    )


def make_job(checkout: Path, prompt: str, timeout: float = 60.0) -> CodingJob:
    return CodingJob(
        project_id=uuid.uuid4(),
        project_name="demo",
        task_number=1,
        title="Demo task",
        prompt=prompt,
        checkout=checkout,
        branch="taskmaster/1-demo",
        base_branch="main",
        timeout=timeout,
    )


def processes_with(token: str) -> list[int]:
    """Live processes whose command line holds `token`."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as handle:
                cmdline = handle.read()
            with open(f"/proc/{entry}/stat", "rb") as handle:
                state = handle.read().rsplit(b")", 1)[1].split()[0]
        except OSError:
            continue
        if token.encode() in cmdline and state != b"Z":
            found.append(int(entry))
    return found
