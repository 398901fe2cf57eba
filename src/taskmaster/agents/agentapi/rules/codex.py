"""Codex CLI: the input sits on a `›` row (or in a rounded box) near the bottom.

`›` is also the cursor of Codex's approval menus (`› 1. Yes, proceed (y)`): a `›` before a numbered option is
not the input row. While it works Codex shows `• Working (3s • esc to interrupt)` above the input row until the
reply streams, and a braille spinner in the window title throughout (so a reply that pauses is not taken for the
end). After a reply it prints a `Worked for 3s • 12:04` row and sometimes `└ Tip: …` rows, not part of the reply.
"""

import re

from taskmaster.agents.agentapi.rules.common import AgentRules, first_of, rounded_box, slim_box

MENU_CURSOR = re.compile(r"^[›▌]\s*\d{1,2}[.)]\s")


def _chevron_row(lines: list[str]) -> int:
    for i in range(len(lines) - 1, max(len(lines) - 7, -1), -1):
        row = lines[i].lstrip()
        if row.startswith(("›", "▌")) and not MENU_CURSOR.match(row):
            return i
    return -1


RULES = AgentRules(
    name="codex",
    find_input_box=first_of(_chevron_row, rounded_box, slim_box),
    # `Waiting for startup · esc cancel`: a message sent before its tools are up waits under the input row.
    busy_markers=("esc to interrupt", "esc cancel"),
    trailing_noise=re.compile(r"^[\s─]*Worked for [^•]*(•\s*\d{1,2}:\d{2}(:\d{2})?)?[\s─]*$|^\s*(└\s*)?Tip: "),
    busy_title=re.compile("^[\u2800-\u28ff]"),
)
