"""Gemini CLI: a prompt row (`>`, `*` with --yolo, `!` in shell mode) under a full rule or in a rounded box.

0.61 draws, from the bottom up: footer rows (`workspace … sandbox`), the prompt row (` >   Type your message`),
a hint (`Shift+Tab to accept edits`, `YOLO Ctrl+Y`), the rule, and `? for shortcuts` above it; none of these
belongs to a reply. Approval dialogs are boxes in boxes (`? WriteFile …`, then the choices); they are not the input
area, so they stay in the reply. While it works Gemini shows `(esc to cancel, 3s)` and titles its window
`✦  Working…`.
"""

import re

from taskmaster.agents.agentapi.rules.common import AgentRules, unboxed

PROMPT = re.compile(r"^[>*!](\s|$)")
SEARCH_ROWS = 12
ROWS_UNDER_RULE = 4


def gemini_prompt(lines: list[str]) -> int:
    for i in range(len(lines) - 1, max(len(lines) - SEARCH_ROWS, -1), -1):
        if not PROMPT.match(unboxed(lines[i])):
            continue
        for top in range(i - 1, max(i - 1 - ROWS_UNDER_RULE, -1), -1):
            row = lines[top].strip()
            if row.startswith("╭") or (len(row) >= 15 and set(row) == {"─"}):
                return top
    return -1


RULES = AgentRules(
    name="gemini",
    find_input_box=gemini_prompt,
    trailing_echo_box=("╯", "╰"),
    busy_markers=("esc to cancel",),
    busy_title=re.compile("Working…"),
    trailing_noise=re.compile(
        r"^\s*(\? for shortcuts|Shift\+Tab to accept edits|YOLO Ctrl\+Y|accepting edits.*|YOLO mode.*|─+)\s*$"
    ),
)
