#!/usr/bin/python3
"""A scripted terminal reviewer for the AgentAPI review tests (stdlib only: it runs in the sandbox, next to
`scripted_agent.py`, whose agent it extends, and the terminal they share).

It reads the review prompt, finds where the verdict goes and the diff's added lines, and answers by its first
argument: `valid` (a finding on every added line holding its second argument, quoted), `invalid` (a finding
without lines, every round) or `repair` (invalid at first, valid when the prompt says the verdict was not valid).
It prints a short summary naming what it read, as Claude Code ends a turn.
"""

from __future__ import annotations

import json
import os
import re
import sys

sys.path.insert(0, os.path.dirname(os.path.realpath(__file__)))

from scripted_agent import Agent, main, out

VERDICT = re.compile(r"write your verdict as JSON to `([^`]+)`")
FILE = re.compile(r"^### (\S+) \[")
ADDED = re.compile(r"^\s*(\d+) \+ (.*)$")


def findings(prompt: str, marker: str) -> list[dict[str, object]]:
    found: list[dict[str, object]] = []
    path = ""
    for line in prompt.splitlines():
        header = FILE.match(line)
        if header:
            path = header.group(1)
            continue
        added = ADDED.match(line)
        if added and marker in added.group(2):
            number = int(added.group(1))
            found.append({
                "file": path, "start_line": number, "end_line": number, "severity": "blocker",
                "category": "security", "message": f"{marker} runs text from the request",
                "replacement": None, "confidence": 0.95, "quote": added.group(2).strip(),
            })  # fmt: skip
    return found


class Reviewer(Agent):
    def answer(self, text: str) -> None:
        self.erase_prompt()
        mode = sys.argv[1] if len(sys.argv) > 1 else "valid"
        marker = sys.argv[2] if len(sys.argv) > 2 else "eval("
        where = VERDICT.search(text)
        if where is None:
            out("No verdict path in the prompt\n")
        else:
            repair = "previous verdict was not valid" in text
            with open("README.md", encoding="utf-8") as handle:  # beyond the diff: the tree at the head
                readme = handle.readline().strip()
            if mode == "invalid" or (mode == "repair" and not repair):
                verdict: dict[str, object] = {"summary": "x", "findings": [{"file": "app.py"}]}
            else:
                body = re.search(r"^Title: .*\n\n(.+)$", text, re.M)
                verdict = {
                    "summary": f"Read README ({readme}); PR body: {body.group(1) if body else '-'}",
                    "findings": findings(text, marker),
                    "meets_acceptance": None,
                }
            os.makedirs(os.path.dirname(where.group(1)), exist_ok=True)
            with open(where.group(1), "w", encoding="utf-8") as handle:
                json.dump(verdict, handle)
            out(f"Wrote the verdict to {where.group(1)}{' (repaired)' if repair else ''}\n")
        out("Review done\n\n")
        self.draw_prompt()


if __name__ == "__main__":
    main(Reviewer)
