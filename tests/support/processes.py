"""Processes seen from the test: which ones run with a marker on their command line, and what they wrote."""

from __future__ import annotations

import os
import time
from pathlib import Path


def processes_with(marker: str) -> list[int]:
    """Pids (other than this one) whose command line contains `marker`; zombies have none, so they do not count."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        if marker.encode() in cmdline:
            found.append(int(entry.name))
    return found


class OutputCollector:
    """An `on_output` callback (sandbox, executors) that keeps each chunk with the time it arrived."""

    def __init__(self) -> None:
        self.chunks: list[tuple[float, bytes]] = []

    async def __call__(self, chunk: bytes) -> None:
        self.chunks.append((time.monotonic(), chunk))

    @property
    def data(self) -> bytes:
        return b"".join(chunk for _, chunk in self.chunks)


async def wait_for_process(marker: str, timeout: float = 10.0) -> list[int]:
    """Wait until a process whose command line holds `marker` runs (a step has started); return their pids."""
    from tests.support.eventually import eventually

    return await eventually(lambda: processes_with(marker), timeout=timeout, what=f"a process with {marker!r}")
