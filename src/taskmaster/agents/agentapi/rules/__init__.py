"""Per-agent-type screen rules: when the agent shows its input prompt, and how a reply is cleaned up.

One module per agent type, each defining `RULES`; `rules_for(agent_type, prompt_regex)` picks one.
"""

from __future__ import annotations

import re

from taskmaster.agents.agentapi.rules.common import AgentRules, prompt_regex_rules
from taskmaster.core.errors import InvalidInput

AGENT_TYPES = ("claude", "aider", "goose", "codex", "gemini", "custom")


def rules_for(agent_type: str, prompt_regex: str | None = None) -> AgentRules:
    """The rules for `agent_type`; `prompt_regex` (any type, usually `custom`) overrides prompt detection.

    Raises InvalidInput for an unknown type or a regex that does not compile.
    """
    if agent_type not in AGENT_TYPES:
        raise InvalidInput(f"unknown agent type {agent_type!r}; expected one of {', '.join(AGENT_TYPES)}")
    if prompt_regex:
        try:
            pattern = re.compile(prompt_regex)
        except re.error as exc:
            raise InvalidInput(f"invalid prompt regex: {exc}") from None
        return prompt_regex_rules(agent_type, pattern)
    from importlib import import_module

    module = import_module(f"taskmaster.agents.agentapi.rules.{agent_type}")
    rules: AgentRules = module.RULES
    return rules


__all__ = ["AGENT_TYPES", "AgentRules", "rules_for"]
