#!/usr/bin/python3
"""A scripted terminal debug agent for the local-forge recovery tests (stdlib only: it runs in the sandbox).

Claude-style input box (a `>` row between two rules), bracketed paste, as tests/agents/agentapi_coding's scripted
agent. Whatever the message, it rewrites `app.sh` in its working directory: `add` made to add (argument `fix`) or to
multiply (argument `wrong`, a fix that stays red); it then says what it did and shows its prompt again.
"""

from __future__ import annotations

import os
import select
import sys
import termios
import tty

RULE = "─" * 40
PASTE_START = b"\x1b[200~"
PASTE_END = b"\x1b[201~"
BODIES = {"fix": "add() { echo $(($1 + $2)); }\n", "wrong": "add() { echo $(($1 * $2)); }\n"}


def out(text: str) -> None:
    os.write(1, text.replace("\n", "\r\n").encode())


def prompt_box(buffer: str = "") -> None:
    first, *more = buffer.split("\n")
    shown = first + (f" [+{len(more)} lines]" if more else "")
    out("\n".join([RULE, f"> {shown}", RULE, "  ? for shortcuts"]))


def redraw(buffer: str) -> None:
    out("\r\x1b[3A\x1b[J")
    prompt_box(buffer)


def answer(mode: str, message: str) -> None:
    out("\r\x1b[3A\x1b[J")
    asked = "FAILED: add 1 2 gave -1" in message
    with open("app.sh", "w", encoding="utf-8") as handle:
        handle.write(BODIES[mode])
    out(f"Read the failure ({'seen' if asked else 'not seen'}); rewrote app.sh so that add uses {mode}.\n")
    out(f"Debugged: add now {'adds' if mode == 'fix' else 'multiplies'}\n\n")
    prompt_box()


def main() -> None:
    mode = sys.argv[1] if len(sys.argv) > 1 and sys.argv[1] in BODIES else "fix"
    saved = termios.tcgetattr(0)
    tty.setraw(0)
    try:
        out(f"Debug Agent (cwd {os.getcwd()})\n\n")
        prompt_box()
        buffer, pending, in_paste = "", b"", False
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
                        buffer += pending.decode(errors="replace").replace("\r", "\n")
                        pending = b""
                        break
                    buffer += pending[:end].decode(errors="replace").replace("\r", "\n")
                    pending, in_paste = pending[end + len(PASTE_END) :], False
                    redraw(buffer)
                    continue
                if pending.startswith(PASTE_START):
                    in_paste, pending = True, pending[len(PASTE_START) :]
                    continue
                if pending[:1] == b"\x1b" and len(pending) < len(PASTE_START) and PASTE_START.startswith(pending):
                    break
                byte, pending = pending[:1], pending[1:]
                if byte in (b"\r", b"\n"):
                    if buffer.strip():
                        answer(mode, buffer)
                        buffer = ""
                elif byte in (b"\x7f", b"\b"):
                    buffer = buffer[:-1]
                    redraw(buffer)
                elif byte >= b" ":
                    buffer += byte.decode(errors="replace")
                    redraw(buffer)
    finally:
        termios.tcsetattr(0, termios.TCSADRAIN, saved)


if __name__ == "__main__":
    main()
