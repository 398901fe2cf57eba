"""Claude Code: a `>` input row between two rules (or in a rounded box), hints below it."""

from taskmaster.agents.agentapi.rules.common import AgentRules, first_of, greater_than_box, slim_box

RULES = AgentRules(name="claude", find_input_box=first_of(greater_than_box, slim_box))
