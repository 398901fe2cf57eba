"""A scripted terminal coding agent for tests: raw-mode input box, bracketed paste (the terminal of
tests/support/scripted_terminal.py), spinner, long replies, menus.

Run with `sys.executable fake_agent.py [--think S] [--style claude|aider|goose|plain]`. What it does depends on the
message: `lines N` replies with N numbered lines, `permission` shows a menu answered with a raw `1`/`2` key,
`crash` prints a little and exits 3, `slow S` thinks for S seconds, anything else gets `Reply to: <message>`.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

# The terminal the scripted agents share, in tests/support.
sys.path.append(os.path.join(os.path.dirname(os.path.realpath(__file__)), os.pardir, os.pardir, "support"))

from scripted_terminal import RULE, TerminalAgent, main, out, read_key

SPINNER = "⠋⠙⠹⠸⠼⠴⠦⠧⠇⠏"


class Agent(TerminalAgent):
    def __init__(self, args: argparse.Namespace) -> None:
        super().__init__()
        self.think: float = args.think
        self.style: str = args.style
        self.banner_lines: int = args.banner_lines
        self.exit_after: float = args.exit_after
        self.started = time.monotonic()

    def banner(self) -> str:
        tips = "".join(f"  tip {i + 1}: ask me anything\n" for i in range(self.banner_lines - 1))
        return f"Fake Agent v1.0 (test double)\n{tips}\n"

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

    def spin(self, seconds: float) -> None:
        end = time.monotonic() + seconds
        frame = 0
        while time.monotonic() < end:
            out(f"\r\x1b[K{SPINNER[frame % len(SPINNER)]} Thinking… ({frame})")
            frame += 1
            time.sleep(0.05)
        out("\r\x1b[K")

    def tick(self) -> None:
        if self.exit_after and time.monotonic() - self.started > self.exit_after:
            sys.exit(2)

    def paste(self, text: str) -> None:
        self.buffer += text  # as pasted: carriage returns stay

    def typed(self, byte: bytes) -> bool:
        if byte == b"\x03":
            out("\nInterrupted\n")
            return True
        return super().typed(byte)

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
        self.draw_prompt()


def arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    parser.add_argument("--think", type=float, default=0.3)
    parser.add_argument("--style", default="claude")
    parser.add_argument("--banner-lines", type=int, default=2)
    parser.add_argument("--exit-after", type=float, default=0.0, help="exit with code 2 after this many seconds")
    return parser.parse_args()


if __name__ == "__main__":
    args = arguments()
    main(lambda: Agent(args))
