#!/usr/bin/python3
"""A terminal coding agent for the acceptance tests (stdlib only: it runs in the sandbox). It shows a `>` input box,
reads the pasted prompt and edits its checkout after the task's title: `notes/task-N.md` normally; a title with
"wipe" deletes every file ("wipe everything": .git too), "link" adds a link to /etc/passwd, "escape" writes
outside the checkout, "idle" changes nothing."""

from __future__ import annotations

import os
import re
import select
import shutil
import termios
import tty

RULE = "─" * 40
PASTE_START, PASTE_END = b"\x1b[200~", b"\x1b[201~"


def out(text: str) -> None:
    os.write(1, text.replace("\n", "\r\n").encode())


def prompt_box(buffer: str = "") -> None:
    out("\n".join([RULE, f"> {buffer.splitlines()[0] if buffer else ''}", RULE, "  ? for shortcuts"]))


def work(prompt: str) -> str:
    found = re.search(r"^# Task #(\d+): (.+)$", prompt, re.MULTILINE)
    if found is None:
        return "No task in the prompt"
    number, title = found.group(1), found.group(2).strip()
    lowered = title.lower()
    if "wipe" in lowered:
        keep = () if "everything" in lowered else (".git",)
        for entry in os.listdir("."):
            if entry in keep:
                continue
            shutil.rmtree(entry) if os.path.isdir(entry) and not os.path.islink(entry) else os.remove(entry)
        return "Deleted everything"
    if "link" in lowered:
        os.symlink("/etc/passwd", "secrets")
        return "Linked secrets"
    if "escape" in lowered:
        try:
            with open("../escaped.txt", "w", encoding="utf-8") as handle:
                handle.write("outside\n")
            return "Wrote ../escaped.txt"
        except OSError as exc:
            return f"Could not write ../escaped.txt: {exc.strerror}"
    if "idle" in lowered:
        return "Nothing to change"
    os.makedirs("notes", exist_ok=True)
    with open(f"notes/task-{number}.md", "w", encoding="utf-8") as handle:
        handle.write(f"# {title}\n\nImplemented by the terminal agent.\n")
    return f"Wrote notes/task-{number}.md for {title}"


def main() -> None:
    saved = termios.tcgetattr(0)
    tty.setraw(0)
    try:
        out("Terminal Agent\n\n")
        prompt_box()
        buffer, pending, in_paste = "", b"", False
        while True:
            ready, _, _ = select.select([0], [], [], 0.1)
            if not ready:
                continue
            data = os.read(0, 65536)
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
                    continue
                if pending.startswith(PASTE_START):
                    pending, in_paste = pending[len(PASTE_START) :], True
                    continue
                if pending[:1] == b"\x1b" and len(pending) < len(PASTE_START) and PASTE_START.startswith(pending):
                    break
                byte, pending = pending[:1], pending[1:]
                if byte in (b"\r", b"\n"):
                    if buffer.strip():
                        out("\r\x1b[3A\x1b[J")
                        # The whole message echoed, as Claude Code shows it; then the reply.
                        lines = [line.strip() for line in buffer.splitlines() if line.strip()]
                        out("".join(f"{'>' if n == 0 else ' '} {line}\n" for n, line in enumerate(lines)) + "\n")
                        out(f"{work(buffer)}\nDone.\n\n")
                        buffer = ""
                        prompt_box()
                elif byte >= b" ":
                    buffer += byte.decode(errors="replace")
    finally:
        termios.tcsetattr(0, termios.TCSADRAIN, saved)


if __name__ == "__main__":
    main()
