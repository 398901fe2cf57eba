"""Codex CLI: the input sits in a rounded box, or on a `›` row, near the bottom."""

from taskmaster.agents.agentapi.rules.common import AgentRules, first_of, rounded_box, slim_box


def _chevron_row(lines: list[str]) -> int:
    for i in range(len(lines) - 1, max(len(lines) - 7, -1), -1):
        if lines[i].lstrip().startswith(("›", "▌")):
            return i
    return -1


RULES = AgentRules(name="codex", find_input_box=first_of(rounded_box, _chevron_row, slim_box))
