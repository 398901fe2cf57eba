"""Aider: a `> ` prompt row (`ask> `, `architect> ` in other modes) at the bottom, under a full rule.

After an edit the files in the chat sit between the rule and the prompt. Each reply ends with a
`Tokens: 2.3k sent, 15 received.` row (and the cost with a priced model), which is not part of the reply.
A `>` inside reply text (`x > y holds`) is not the prompt: only a mode prompt at the start of the last row is,
and only under the rule, or alone on its row.
"""

import re

from taskmaster.agents.agentapi.rules.common import AgentRules, is_rule

PROMPT = re.compile(r"^(\w+)?> ?")
FILES_ROWS = 3


def aider_prompt(lines: list[str]) -> int:
    last = len(lines) - 1
    while last >= 0 and not lines[last].strip():
        last -= 1
    if last < 0 or not PROMPT.match(lines[last]):
        return -1
    for i in range(last - 1, max(last - 1 - FILES_ROWS, -1), -1):
        if is_rule(lines[i]):
            return i
    return last if lines[last].rstrip() == ">" else -1


RULES = AgentRules(
    name="aider",
    find_input_box=aider_prompt,
    trailing_noise=re.compile(r"^Tokens: [\d.,]+k? sent(, [\d.,]+k? cache \w+)*, [\d.,]+k? received\."),
)
