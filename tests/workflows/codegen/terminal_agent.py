#!/usr/bin/python3
"""A terminal coding agent for the acceptance tests (stdlib only: it runs in the sandbox). It shows a `>` input box
(the terminal of `scripted_terminal.py`), reads the pasted prompt without echoing it and edits its checkout after the
task's title: `notes/task-N.md` normally; a title with "wipe" deletes every file ("wipe everything": .git too), "link"
adds a link to /etc/passwd, "escape" writes outside the checkout, "idle" changes nothing."""

from __future__ import annotations

import os
import re
import shutil
import sys

# The terminal the scripted agents share: installed next to this script, in tests/support in the source tree.
sys.path.append(os.path.join(os.path.dirname(os.path.realpath(__file__)), os.pardir, os.pardir, "support"))

from scripted_terminal import TerminalAgent, main, out


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


class Agent(TerminalAgent):
    """Echoes nothing while a message is typed or pasted, and edits nothing in it: its box is drawn after replies."""

    def banner(self) -> str:
        return "Terminal Agent\n\n"

    def redraw(self) -> None:
        pass

    def typed(self, byte: bytes) -> bool:
        # No line editing: every byte from a space up belongs to the message, Backspace (DEL) too.
        if byte >= b" ":
            self.buffer += byte.decode(errors="replace")
        return False

    def answer(self, message: str) -> None:
        self.echo(message)  # the whole message, as Claude Code shows it; then the reply
        out(f"{work(message)}\nDone.\n\n")
        self.draw_prompt()


if __name__ == "__main__":
    main(Agent)
