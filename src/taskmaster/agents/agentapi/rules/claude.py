"""Claude Code: a `❯` input row between two full-width rules (2.x; `>` in older ones, or in a rounded box), hints below.

The `❯` is also the cursor of Claude's menus (`❯ 1. Yes`); those have no rule right above them. While it works,
Claude keeps the input box on screen with `esc to interrupt` under it, and after a reply it prints a
`✻ Cogitated for 3s` row that is not part of the reply.
"""

import re

from taskmaster.agents.agentapi.rules.common import (
    AgentRules,
    first_of,
    greater_than_box,
    ruled_prompt_box,
    slim_box,
)

RULES = AgentRules(
    name="claude",
    find_input_box=first_of(ruled_prompt_box(("❯", ">")), greater_than_box, slim_box),
    busy_markers=("esc to interrupt",),
    trailing_noise=re.compile(r"^\s*[·✢✳✶✻✽*]\s+\w+ for (\d+(\.\d+)?[hms]\s*)+$"),
)
