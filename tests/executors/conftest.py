"""Fixtures of the executor tests: real OpenSSH servers on 127.0.0.1 (see `tests.support.sshd`)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.support.sshd import Keys, Sshd, keygen


@pytest.fixture(scope="session")
def ssh_keys(tmp_path_factory: pytest.TempPathFactory) -> Keys:
    base = tmp_path_factory.mktemp("ssh-keys")
    return Keys(
        host=keygen(base / "host_ed25519"),
        client=keygen(base / "client_ed25519"),
        other_client=keygen(base / "other_client_ed25519"),
        other_host=keygen(base / "other_host_ed25519"),
    )


@pytest.fixture(scope="session")
def sshd(tmp_path_factory: pytest.TempPathFactory, ssh_keys: Keys) -> Iterator[Sshd]:
    """The shared server, for tests that do not break it."""
    server = Sshd(tmp_path_factory.mktemp("sshd"), ssh_keys)
    server.start()
    try:
        yield server
    finally:
        server.kill()


@pytest.fixture
def fresh_sshd(tmp_path: Path, ssh_keys: Keys) -> Iterator[Sshd]:
    """A server of the test's own, which the test may kill and restart."""
    server = Sshd(tmp_path / "sshd", ssh_keys)
    server.start()
    try:
        yield server
    finally:
        server.kill()


@pytest.fixture
def make_sshd(tmp_path: Path, ssh_keys: Keys) -> Iterator[Callable[[str], Sshd]]:
    """A factory of extra servers (for pools); all are killed at the end of the test."""
    servers: list[Sshd] = []

    def make(name: str) -> Sshd:
        server = Sshd(tmp_path / name, ssh_keys)
        server.start()
        servers.append(server)
        return server

    try:
        yield make
    finally:
        for server in servers:
            server.kill()
