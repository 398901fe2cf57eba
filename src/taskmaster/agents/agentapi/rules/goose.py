"""Goose: the `( O)>` prompt as the last row with text (the face in the brackets changes)."""

import re

from taskmaster.agents.agentapi.rules.common import AgentRules

PROMPT = re.compile(r"^\s*\(.{1,4}\)>")


def goose_prompt(lines: list[str]) -> int:
    for i in range(len(lines) - 1, -1, -1):
        if lines[i].strip():
            return i if PROMPT.match(lines[i]) else -1
    return -1


RULES = AgentRules(name="goose", find_input_box=goose_prompt)
