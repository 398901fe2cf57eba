#!/usr/bin/python3
"""A scripted terminal coding agent for the coding-agent tests (stdlib only: it runs in the sandbox).

Claude-style input box (a `>` row between two rules), bracketed paste. Each line of a submitted message is one
command: `write PATH TEXT`, `fetch URL` (through the proxy variables, as urllib reads them), `direct URL` (not
through them), `run SHELL-COMMAND`, `env NAME`, `ask QUESTION` (a permission menu answered with `1`/`2`),
`sleep S`, `spawn TOKEN` (a detached daemon with TOKEN on its command line), `exit N`, `say TEXT`; anything else
is noted. Replies end with `Done: N commands`.
"""

from __future__ import annotations

import os
import select
import subprocess
import sys
import termios
import time
import tty
import urllib.request

RULE = "─" * 40
PASTE_START = b"\x1b[200~"
PASTE_END = b"\x1b[201~"


def out(text: str) -> None:
    os.write(1, text.replace("\n", "\r\n").encode())


def read_key() -> bytes:
    while True:
        data = os.read(0, 1)
        if data in (b"1", b"2"):
            return data


class Agent:
    def __init__(self) -> None:
        self.buffer = ""

    def draw_prompt(self) -> None:
        first, *more = self.buffer.split("\n")
        shown = first + (f" [+{len(more)} lines]" if more else "")
        out("\n".join([RULE, f"> {shown}", RULE, "  ? for shortcuts"]))

    def redraw(self) -> None:
        out("\r\x1b[3A\x1b[J")
        self.draw_prompt()

    def run(self, line: str) -> None:
        word, _, rest = line.partition(" ")
        if word == "write":
            path, _, text = rest.partition(" ")
            try:
                with open(path, "w", encoding="utf-8") as handle:
                    handle.write(text + "\n")
                out(f"Wrote {path}\n")
            except OSError as exc:
                out(f"Error writing {path}: {exc.strerror}\n")
        elif word == "fetch":
            try:
                with urllib.request.urlopen(rest, timeout=10) as response:
                    body = response.read().decode(errors="replace").strip()
                out(f"Fetched {rest}: {response.status} {body[:80]}\n")
            except Exception as exc:
                out(f"Fetch failed {rest}: {exc}\n")
        elif word == "direct":
            # Straight to the address, ignoring the proxy variables (as some CLIs' HTTP clients do).
            try:
                with urllib.request.build_opener(urllib.request.ProxyHandler({})).open(rest, timeout=10) as response:
                    body = response.read().decode(errors="replace").strip()
                out(f"Direct {rest}: {response.status} {body[:80]}\n")
            except Exception as exc:
                out(f"Direct failed {rest}: {exc}\n")
        elif word == "run":
            done = subprocess.run(rest, shell=True, capture_output=True, text=True, check=False)
            out(f"ran ({done.returncode}): {(done.stdout + done.stderr).strip()}\n")
        elif word == "env":
            out(f"{rest}={os.environ.get(rest, '<unset>')}\n")
        elif word == "ask":
            out(f"{rest}\n❯ 1. Yes\n  2. No\n")
            key = read_key()
            out("Permission granted\n" if key == b"1" else "Permission denied\n")
        elif word == "sleep":
            end = time.monotonic() + float(rest)
            frame = 0
            while time.monotonic() < end:
                out(f"\r\x1b[K⠋ Working… ({frame})")
                frame += 1
                time.sleep(0.1)
            out("\r\x1b[K")
        elif word == "spawn":
            subprocess.Popen(
                ["/usr/bin/python3", "-c", "import time; time.sleep(300)", rest],
                start_new_session=True,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            out(f"Spawned {rest}\n")
        elif word == "exit":
            out("Bailing out\n")
            sys.exit(int(rest or 1))
        elif word == "say":
            out(rest + "\n")
        else:
            out(f"Noted: {line}\n")

    def answer(self, text: str) -> None:
        out("\r\x1b[3A\x1b[J")
        lines = [line.strip() for line in text.splitlines() if line.strip()]
        out("".join(f"{'>' if number == 0 else ' '} {line}\n" for number, line in enumerate(lines)) + "\n")
        for line in lines:
            self.run(line)
        out(f"Done: {len(lines)} commands\n\n")
        self.buffer = ""
        self.draw_prompt()


def main(make: type[Agent] = Agent) -> None:
    """Run `make()` (this agent, or a subclass answering otherwise) on the terminal until its input ends."""
    saved = termios.tcgetattr(0)
    tty.setraw(0)
    try:
        agent = make()
        out(f"Scripted Agent (cwd {os.getcwd()})\n\n")
        agent.draw_prompt()
        pending = b""
        in_paste = False
        while True:
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
                        agent.buffer += pending.decode(errors="replace").replace("\r", "\n")
                        pending = b""
                        break
                    agent.buffer += pending[:end].decode(errors="replace").replace("\r", "\n")
                    pending = pending[end + len(PASTE_END) :]
                    in_paste = False
                    agent.redraw()
                    continue
                if pending.startswith(PASTE_START):
                    in_paste = True
                    pending = pending[len(PASTE_START) :]
                    continue
                if pending[:1] == b"\x1b" and len(pending) < len(PASTE_START) and PASTE_START.startswith(pending):
                    break
                byte, pending = pending[:1], pending[1:]
                if byte in (b"\r", b"\n"):
                    if agent.buffer.strip():
                        agent.answer(agent.buffer)
                elif byte in (b"\x7f", b"\b"):
                    agent.buffer = agent.buffer[:-1]
                    agent.redraw()
                elif byte >= b" ":
                    agent.buffer += byte.decode(errors="replace")
                    agent.redraw()
    finally:
        termios.tcsetattr(0, termios.TCSADRAIN, saved)


if __name__ == "__main__":
    main()
