"""The scripted terminal the test agents share reads a bracketed paste whose end marker arrives split across two
reads (a terminal writes in pieces): the message is whole and the agent answers it, instead of staying in paste
mode."""

from __future__ import annotations

import os
import select
import subprocess
import sys
import time
from pathlib import Path

FAKE_AGENT = Path(__file__).parent / "agents" / "fake_agent.py"


def _read_until(fd: int, wanted: bytes, timeout: float = 10.0) -> bytes:
    seen = b""
    deadline = time.monotonic() + timeout
    while wanted not in seen:
        left = deadline - time.monotonic()
        assert left > 0, f"{wanted!r} not shown; the screen had {seen[-400:]!r}"
        ready, _, _ = select.select([fd], [], [], left)
        if ready:
            seen += os.read(fd, 4096)
    return seen


def test_a_paste_whose_end_marker_is_split_across_reads_is_one_message() -> None:
    main_fd, child_fd = os.openpty()
    agent = subprocess.Popen(
        [sys.executable, str(FAKE_AGENT), "--style", "plain"], stdin=child_fd, stdout=child_fd, stderr=child_fd,
        close_fds=True, start_new_session=True,
    )  # fmt: skip
    os.close(child_fd)
    try:
        _read_until(main_fd, b"agent$ ")
        os.write(main_fd, b"\x1b[200~hello split\x1b[20")
        time.sleep(0.3)  # the agent reads the first piece on its own
        os.write(main_fd, b"1~\r")
        screen = _read_until(main_fd, b"Reply to: hello split")
        assert b"1~" not in screen.split(b"Reply to:")[-1]
    finally:
        agent.kill()
        agent.wait()
        os.close(main_fd)
