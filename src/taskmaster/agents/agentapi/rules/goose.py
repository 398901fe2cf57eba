"""Goose: the `( O)>` prompt row at the bottom."""

from taskmaster.agents.agentapi.rules.common import AgentRules, greater_than_box

RULES = AgentRules(name="goose", find_input_box=greater_than_box)
