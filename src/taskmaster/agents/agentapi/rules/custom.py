"""Any other agent: the generic `>` prompt unless a prompt regex is given (see `rules_for`)."""

from taskmaster.agents.agentapi.rules.common import AgentRules, first_of, greater_than_box, slim_box

RULES = AgentRules(name="custom", find_input_box=first_of(greater_than_box, slim_box))
