#!/usr/bin/python3
"""A scripted terminal debug agent for the local-forge recovery tests (stdlib only: it runs in the sandbox).

Claude-style input box (a `>` row between two rules), bracketed paste: the terminal of `scripted_terminal.py`, as
tests/agents/agentapi_coding's scripted agent. Whatever the message, it rewrites `app.sh` in its working directory:
`add` made to add (argument `fix`) or to multiply (argument `wrong`, a fix that stays red); it then says what it did
and shows its prompt again.
"""

from __future__ import annotations

import os
import sys

# The terminal the scripted agents share: installed next to this script, in tests/support in the source tree.
sys.path.append(os.path.join(os.path.dirname(os.path.realpath(__file__)), os.pardir, os.pardir, "support"))

from scripted_terminal import TerminalAgent, main, out

BODIES = {"fix": "add() { echo $(($1 + $2)); }\n", "wrong": "add() { echo $(($1 * $2)); }\n"}


class Agent(TerminalAgent):
    def __init__(self) -> None:
        super().__init__()
        self.mode = sys.argv[1] if len(sys.argv) > 1 and sys.argv[1] in BODIES else "fix"

    def banner(self) -> str:
        return f"Debug Agent (cwd {os.getcwd()})\n\n"

    def answer(self, message: str) -> None:
        self.erase_prompt()
        asked = "FAILED: add 1 2 gave -1" in message
        with open("app.sh", "w", encoding="utf-8") as handle:
            handle.write(BODIES[self.mode])
        out(f"Read the failure ({'seen' if asked else 'not seen'}); rewrote app.sh so that add uses {self.mode}.\n")
        out(f"Debugged: add now {'adds' if self.mode == 'fix' else 'multiplies'}\n\n")
        self.draw_prompt()


if __name__ == "__main__":
    main(Agent)
