"""The terminal shared by the scripted agents that tests run as processes (stdlib only: it runs in the sandbox).

An installed agent finds this module next to its script (`tests.support.agents.install_agent` copies it there); a
script run in place finds it here, in tests/support. `main(make)` puts the terminal in raw mode and feeds `make()`
what it reads: bracketed pastes (`paste`, then `pasted` at the end marker), typed bytes (`typed`) and Enter
(`enter`, which hands a non-blank message to `answer`). `TerminalAgent` draws Claude Code's input box (a `>` row
between two rules) and redraws it on every change; subclasses answer and change what differs.
"""

from __future__ import annotations

import os
import select
import termios
import tty
from collections.abc import Callable

RULE = "─" * 40
PASTE_START = b"\x1b[200~"
PASTE_END = b"\x1b[201~"


def out(text: str) -> None:
    """Write `text` to the terminal with CR LF line ends (raw mode translates nothing)."""
    os.write(1, text.replace("\n", "\r\n").encode())


def read_key() -> bytes:
    """The answer to a permission menu: the next `1` or `2` typed, other keys ignored."""
    while True:
        data = os.read(0, 1)
        if data in (b"1", b"2"):
            return data


class TerminalAgent:
    """An agent at its input box; `answer` is what a subclass must say."""

    def __init__(self) -> None:
        self.buffer = ""

    def banner(self) -> str:
        """What the agent prints once at start, above its input box."""
        return "Scripted Agent\n\n"

    def draw_prompt(self) -> None:
        first, *more = self.buffer.split("\n")
        shown = first + (f" [+{len(more)} lines]" if more else "")
        out("\n".join([RULE, f"> {shown}", RULE, "  ? for shortcuts"]))

    def erase_prompt(self) -> None:
        # Back to the first row of the box, then clear to the end of the screen: how TUIs redraw their input box.
        out("\r\x1b[3A\x1b[J")

    def redraw(self) -> None:
        self.erase_prompt()
        self.draw_prompt()

    def echo(self, message: str) -> list[str]:
        """Replace the input box by the message, shown as Claude Code shows it; its non-blank lines, stripped."""
        self.erase_prompt()
        lines = [line.strip() for line in message.splitlines() if line.strip()]
        out("".join(f"{'>' if number == 0 else ' '} {line}\n" for number, line in enumerate(lines)) + "\n")
        return lines

    def tick(self) -> None:
        """Called about every 0.1 s, before waiting for input."""

    def paste(self, text: str) -> None:
        """Part of a bracketed paste."""
        self.buffer += text.replace("\r", "\n")

    def pasted(self) -> None:
        """The end of a bracketed paste."""
        self.redraw()

    def typed(self, byte: bytes) -> bool:
        """A byte typed outside a paste, other than Enter; True ends the agent."""
        if byte in (b"\x7f", b"\b"):
            self.buffer = self.buffer[:-1]
            self.redraw()
        elif byte >= b" ":
            self.buffer += byte.decode(errors="replace")
            self.redraw()
        return False

    def enter(self) -> None:
        """Enter: a non-blank message is answered (stripped), with the input box emptied first."""
        message = self.buffer.strip()
        if message:
            self.buffer = ""
            self.answer(message)

    def answer(self, message: str) -> None:
        """Reply to `message`, ending with the input box drawn again."""
        raise NotImplementedError


def main(make: Callable[[], TerminalAgent]) -> None:
    """Run `make()` on this terminal (raw mode, restored at the end) until its input ends or it asks to stop."""
    saved = termios.tcgetattr(0)
    tty.setraw(0)
    try:
        agent = make()
        out(agent.banner())
        agent.draw_prompt()
        pending, in_paste = b"", False
        while True:
            agent.tick()
            ready, _, _ = select.select([0], [], [], 0.1)
            if not ready:
                continue
            data = os.read(0, 4096)
            if not data:
                return
            pending += data
            while pending:
                if in_paste:
                    end = pending.find(PASTE_END)
                    if end == -1:
                        # Keep back what may be the start of an end marker split across reads.
                        keep = _marker_start(pending, PASTE_END)
                        agent.paste(pending[: len(pending) - keep].decode(errors="replace"))
                        pending = pending[len(pending) - keep :]
                        break
                    agent.paste(pending[:end].decode(errors="replace"))
                    pending, in_paste = pending[end + len(PASTE_END) :], False
                    agent.pasted()
                    continue
                if pending.startswith(PASTE_START):
                    pending, in_paste = pending[len(PASTE_START) :], True
                    continue
                if pending[:1] == b"\x1b" and len(pending) < len(PASTE_START) and PASTE_START.startswith(pending):
                    break  # a paste start split across reads
                byte, pending = pending[:1], pending[1:]
                if byte in (b"\r", b"\n"):
                    agent.enter()
                elif agent.typed(byte):
                    return
    finally:
        termios.tcsetattr(0, termios.TCSADRAIN, saved)


def _marker_start(data: bytes, marker: bytes) -> int:
    """The length of the longest end of `data` that begins `marker` (0 when none)."""
    for size in range(min(len(data), len(marker) - 1), 0, -1):
        if marker.startswith(data[-size:]):
            return size
    return 0
