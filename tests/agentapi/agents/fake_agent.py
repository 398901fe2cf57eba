"""A scripted terminal coding agent for tests: raw-mode input box, bracketed paste, spinner, long replies, menus.

Run with `sys.executable fake_agent.py [--think S] [--style claude|aider|goose|plain]`. What it does depends on the
message: `lines N` replies with N numbered lines, `permission` shows a menu answered with a raw `1`/`2` key,
`crash` prints a little and exits 3, `slow S` thinks for S seconds, anything else gets `Reply to: <message>`.
"""

from __future__ import annotations

import argparse
import os
import select
import sys
import termios
import time
import tty

RULE = "─" * 40
SPINNER = "⠋⠙⠹⠸⠼⠴⠦⠧⠇⠏"
PASTE_START = b"\x1b[200~"
PASTE_END = b"\x1b[201~"


def out(text: str) -> None:
    os.write(1, text.replace("\n", "\r\n").encode())


class Agent:
    def __init__(self, think: float, style: str) -> None:
        self.think = think
        self.style = style
        self.buffer = ""

    def prompt_rows(self) -> list[str]:
        if self.style == "aider":
            return [f"> {self.buffer}"]
        if self.style == "goose":
            return [f"( O)> {self.buffer}"]
        if self.style == "plain":
            return [f"agent$ {self.buffer}"]
        return [RULE, f"> {self.buffer}", RULE, "  ? for shortcuts"]

    def draw_prompt(self) -> None:
        rows = self.prompt_rows()
        out("\n".join(rows))
        self.drawn = len(rows)

    def erase_prompt(self) -> None:
        # Back to the first prompt row, then clear to the end of the screen: how TUIs redraw their input box.
        up = self.drawn - 1
        out("\r" + (f"\x1b[{up}A" if up else "") + "\x1b[J")

    def redraw(self) -> None:
        self.erase_prompt()
        self.draw_prompt()

    def spin(self, seconds: float) -> None:
        end = time.monotonic() + seconds
        frame = 0
        while time.monotonic() < end:
            out(f"\r\x1b[K{SPINNER[frame % len(SPINNER)]} Thinking… ({frame})")
            frame += 1
            time.sleep(0.05)
        out("\r\x1b[K")

    def answer(self, text: str) -> None:
        self.erase_prompt()
        out(f"> {text}\n\n")
        words = text.split()
        think = self.think
        if words[:1] == ["slow"] and len(words) > 1:
            think = float(words[1])
        self.spin(think)
        if words[:1] == ["lines"] and len(words) > 1:
            count = int(words[1])
            out("".join(f"line {i:04d} of {count}\n" for i in range(1, count + 1)))
        elif words[:1] == ["crash"]:
            out("Something went wrong, bailing out\n")
            sys.exit(3)
        elif words[:1] == ["permission"]:
            out("Allow the agent to edit files?\n❯ 1. Yes\n  2. No\nChoose 1 or 2: ")
            key = read_key()
            out("\n")
            out("Permission granted\n" if key == b"1" else "Permission denied\n")
        else:
            out(f"Reply to: {text}\n")
        out("\n")
        self.buffer = ""
        self.draw_prompt()


def read_key() -> bytes:
    while True:
        data = os.read(0, 1)
        if data in (b"1", b"2"):
            return data


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--think", type=float, default=0.3)
    parser.add_argument("--style", default="claude")
    parser.add_argument("--banner-lines", type=int, default=2)
    parser.add_argument("--exit-after", type=float, default=0.0, help="exit with code 2 after this many seconds")
    args = parser.parse_args()
    saved = termios.tcgetattr(0)
    tty.setraw(0)
    started = time.monotonic()
    try:
        agent = Agent(args.think, args.style)
        out("Fake Agent v1.0 (test double)\n")
        for i in range(args.banner_lines - 1):
            out(f"  tip {i + 1}: ask me anything\n")
        out("\n")
        agent.draw_prompt()
        pending = b""
        in_paste = False
        while True:
            if args.exit_after and time.monotonic() - started > args.exit_after:
                sys.exit(2)
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
                        agent.buffer += pending.decode(errors="replace")
                        pending = b""
                        break
                    agent.buffer += pending[:end].decode(errors="replace")
                    pending = pending[end + len(PASTE_END) :]
                    in_paste = False
                    agent.redraw()
                    continue
                if pending.startswith(PASTE_START):
                    in_paste = True
                    pending = pending[len(PASTE_START) :]
                    continue
                if pending[:1] == b"\x1b" and len(pending) < len(PASTE_START) and PASTE_START.startswith(pending):
                    break  # a paste start split across reads
                byte, pending = pending[:1], pending[1:]
                if byte in (b"\r", b"\n"):
                    text = agent.buffer.strip()
                    if text:
                        agent.answer(text)
                elif byte in (b"\x7f", b"\b"):
                    agent.buffer = agent.buffer[:-1]
                    agent.redraw()
                elif byte == b"\x03":
                    out("\nInterrupted\n")
                    return
                elif byte >= b" ":
                    agent.buffer += byte.decode(errors="replace")
                    agent.redraw()
    finally:
        termios.tcsetattr(0, termios.TCSADRAIN, saved)


if __name__ == "__main__":
    main()
