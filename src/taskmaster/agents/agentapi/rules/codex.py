"""Codex CLI: the input sits in a rounded box, or on a `›` row, near the bottom.

While it works Codex shows `• Working (3s • esc to interrupt)` above the input row; after a reply it prints a
`Worked for 3s • 12:04` row that is not part of the reply.
"""

import re

from taskmaster.agents.agentapi.rules.common import AgentRules, first_of, rounded_box, slim_box


def _chevron_row(lines: list[str]) -> int:
    for i in range(len(lines) - 1, max(len(lines) - 7, -1), -1):
        if lines[i].lstrip().startswith(("›", "▌")):
            return i
    return -1


RULES = AgentRules(
    name="codex",
    find_input_box=first_of(rounded_box, _chevron_row, slim_box),
    busy_markers=("esc to interrupt",),
    trailing_noise=re.compile(r"^[\s─]*Worked for [^•]*(•\s*\d{1,2}:\d{2}(:\d{2})?)?[\s─]*$"),
)
