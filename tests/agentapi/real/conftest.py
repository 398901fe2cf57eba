"""The real-agent tier: pinned CLIs (installed once into a cache outside the repository) and a fake model server."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.agentapi.real.install import ensure_installed
from tests.agentapi.real.models import Script, create_app
from tests.support import live_server


@pytest.fixture(scope="session")
def agent_binaries() -> dict[str, Path]:
    return ensure_installed()


@pytest.fixture
def model_server() -> Iterator[tuple[str, Script]]:
    script = Script()
    with live_server(create_app(script)) as url:  # type: ignore[arg-type]
        yield url, script
