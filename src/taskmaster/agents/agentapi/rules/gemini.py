"""Gemini CLI: `> Type your message` inside a rounded box; echoed input is boxed too."""

from taskmaster.agents.agentapi.rules.common import AgentRules, first_of, greater_than_box, rounded_box

RULES = AgentRules(name="gemini", find_input_box=first_of(greater_than_box, rounded_box), trailing_echo_box=("╯", "╰"))
