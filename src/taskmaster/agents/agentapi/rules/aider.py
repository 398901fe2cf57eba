"""Aider: a bare `> ` prompt row at the bottom, sometimes under a rule."""

from taskmaster.agents.agentapi.rules.common import AgentRules, greater_than_box

RULES = AgentRules(name="aider", find_input_box=greater_than_box)
