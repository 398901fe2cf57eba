"""The terminal model (scrollback, dirty-row rendering) and the per-agent rules, on real screens' shapes."""

from __future__ import annotations

import pytest

from taskmaster.agents.agentapi.rules import rules_for
from taskmaster.agents.agentapi.screen import Terminal, diff
from taskmaster.core.errors import InvalidInput


def test_lines_scrolled_off_are_kept_in_order() -> None:
    terminal = Terminal(20, 5)
    terminal.feed(b"prompt\r\n")
    mark = terminal.mark()
    terminal.feed(b"".join(f"row {i}\r\n".encode() for i in range(12)))
    old, new = terminal.since(mark)
    assert old[0] == "prompt"
    assert [line for line in new if line.startswith("row")] == [f"row {i}" for i in range(12)]
    assert terminal.rows()[-1] == ""


def test_feed_reports_text_changes_not_cursor_moves() -> None:
    terminal = Terminal(20, 5)
    assert terminal.feed(b"hello") is True
    assert terminal.feed(b"\x1b[1;1H") is False
    assert terminal.feed(b"J") is True
    assert terminal.rows()[0] == "Jello"


def test_wide_characters_and_right_trim() -> None:
    terminal = Terminal(20, 3)
    terminal.feed("漢字 ok   \r\n".encode())
    assert terminal.rows()[0] == "漢字 ok"


def test_diff_names_changed_rows() -> None:
    assert diff(("a", "b", "c"), ("a", "x", "c")) == [1]
    assert diff(("a",), ("a", "b")) == [1]


CLAUDE_SCREEN = """\
> explain this

● Here is the explanation.
  It has two lines.

╭──────────────────────────────────────────╮
│ >                                        │
╰──────────────────────────────────────────╯
  ? for shortcuts"""

AIDER_SCREEN = """\
> fix the bug

Applied edit to main.py
Commit 1234abc fix the bug
───────────────────────────────────────────
> """

GOOSE_SCREEN = """\
( O)> list files
a.txt  b.txt
( O)> """

GEMINI_SCREEN = """\
╭──────────────────────────────────────╮
│ > what is 2+2                        │
╰──────────────────────────────────────╯
✦ 4
╭──────────────────────────────────────╮
│ >   Type your message or @path/to/file │
╰──────────────────────────────────────╯
~/project        no sandbox       gemini-2.5-pro"""

CODEX_SCREEN = """\
› say hi

• hi there

› Ask Codex to do anything
  ⏎ send   ⌃J newline"""


@pytest.mark.parametrize(
    ("agent_type", "screen", "user_input", "reply"),
    [
        ("claude", CLAUDE_SCREEN, "explain this", "● Here is the explanation.\n  It has two lines."),
        ("aider", AIDER_SCREEN, "fix the bug", "Applied edit to main.py\nCommit 1234abc fix the bug"),
        ("goose", GOOSE_SCREEN, "list files", "a.txt  b.txt"),
        ("gemini", GEMINI_SCREEN, "what is 2+2", "✦ 4"),
        ("codex", CODEX_SCREEN, "say hi", "• hi there"),
    ],
)
def test_reply_cleanup_per_agent(agent_type: str, screen: str, user_input: str, reply: str) -> None:
    rules = rules_for(agent_type)
    assert rules.prompt_visible(screen)
    assert rules.format_reply(screen, user_input) == reply


def test_prompt_not_visible_while_a_menu_or_spinner_shows() -> None:
    rules = rules_for("claude")
    assert not rules.prompt_visible("> do it\n\nAllow edits?\n  1. Yes\n  2. No\nChoose 1 or 2:")
    assert not rules.prompt_visible("> do it\n\n⠋ Thinking… (3)")


def test_custom_agent_with_prompt_regex() -> None:
    rules = rules_for("custom", r"^mybot\$ ")
    screen = "mybot$ what time\nIt is noon.\nmybot$ "
    assert rules.prompt_visible(screen)
    assert not rules.prompt_visible("mybot$ what time\nthinking...")
    assert rules.format_reply(screen, "what time") == "It is noon."


def test_unknown_type_and_bad_regex_are_invalid_input() -> None:
    with pytest.raises(InvalidInput):
        rules_for("copilot-x")
    with pytest.raises(InvalidInput):
        rules_for("custom", "(")
