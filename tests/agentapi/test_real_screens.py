"""The per-agent rules on screens captured from real agent CLIs (pointed at a fake model server).

Fixtures in tests/agentapi/data/: `*.ansi` is the raw byte stream the agent wrote to its terminal (replayed through
our terminal emulator, split where the server sent each message), `*.txt` a rendered screen.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from taskmaster.agents.agentapi.conversation import _screen_diff
from taskmaster.agents.agentapi.rules import rules_for
from taskmaster.agents.agentapi.screen import Terminal

DATA = Path(__file__).parent / "data"
FAKE_REPLY = "● Hello from the fake model.\n  This is line two of the reply.\n  And line three ends it."


def _screen(name: str) -> str:
    return (DATA / name).read_text(encoding="utf-8").rstrip("\n")


def test_claude_2_session_replayed_twice_the_same_answer() -> None:
    """Claude Code 2.1.197: `❯` prompt between rules; the same question twice gets two full, separate replies."""
    stream = (DATA / "claude_2.1.197_repeat.ansi").read_bytes()
    sends = [1004, 2844]  # byte offsets at which "hello" was sent
    rules = rules_for("claude")
    terminal = Terminal(80, 1000)
    terminal.feed(stream[: sends[0]])
    assert rules.prompt_visible(terminal.text())
    assert "❯" in terminal.text()
    for start, end in zip(sends, [*sends[1:], len(stream)], strict=True):
        mark = terminal.mark()
        terminal.feed(stream[start:end])
        assert rules.prompt_visible(terminal.text())
        old, new = terminal.since(mark)
        assert rules.format_reply(_screen_diff(old, new), "hello") == FAKE_REPLY


def test_claude_2_is_busy_while_it_works_with_the_input_box_shown() -> None:
    screen = _screen("claude_2.1.197_tool_running.txt")
    assert "esc to interrupt" in screen
    assert not rules_for("claude").prompt_visible(screen)


def test_claude_2_reply_keeps_tool_output_and_drops_the_timing_row() -> None:
    idle = Terminal(80, 1000)
    idle.feed((DATA / "claude_2.1.197_repeat.ansi").read_bytes()[:1004])
    done = _screen("claude_2.1.197_tool_done.txt")
    assert "✻ Brewed for 0s" in done
    rules = rules_for("claude")
    assert rules.prompt_visible(done)
    reply = rules.format_reply(_screen_diff(list(idle.rows()), done.split("\n")), "please runtool")
    assert reply == (
        "● Bash(rm -rf /tmp/claude-perm-test && curl -s http://127.0.0.1:9/x)\n"
        "  ⎿ \u00a0Error: Exit code 7\n\n" + FAKE_REPLY  # Claude writes a no-break space there
    )


@pytest.mark.parametrize(
    "screen",
    [
        # Claude's menus use `❯` as their cursor, with no rule right above it: not the input prompt.
        "❯ do it\n\n● Bash(rm x)\n\n Do you want to proceed?\n ❯ 1. Yes\n   2. No\n\n Esc to cancel",
        "────────────────\n Bash command\n   rm x\n Do you want to proceed?\n ❯ 1. Yes\n   2. No",
    ],
)
def test_claude_2_menu_cursor_is_not_the_prompt(screen: str) -> None:
    assert not rules_for("claude").prompt_visible(screen)


def test_claude_2_real_permission_menu_is_not_the_prompt_and_stays_in_the_reply() -> None:
    menu = _screen("claude_2.1.197_permission_menu.txt")
    assert " ❯ 1. Yes" in menu
    rules = rules_for("claude")
    assert not rules.prompt_visible(menu)
    assert rules.format_reply(menu, "please runtool") == menu


def test_a_reply_that_says_what_the_last_one_said_is_not_lost() -> None:
    """Inline agents leave earlier replies on screen; a repeated answer is still new below them."""
    old = ["header", "> hi", "", "Same answer.", "", "──────", "> ", "──────"]
    new = ["header", "> hi", "", "Same answer.", "", "> hi", "", "Same answer.", "", "──────", "> ", "──────"]
    assert _screen_diff(old, new).split("\n")[:3] == ["> hi", "", "Same answer."]


def test_codex_is_busy_while_working_above_its_input_row() -> None:
    screen = _screen("codex_0.169.0_working.txt")
    assert "› Ask Codex to do anything" in screen
    assert not rules_for("codex").prompt_visible(screen)


def test_codex_reply_drops_the_worked_for_row() -> None:
    """Codex 0.169.0 (rows of blank space above its input row collapsed in the fixture)."""
    done = _screen("codex_0.169.0_done.txt")
    rules = rules_for("codex")
    assert rules.prompt_visible(done)
    before = done.split("\n")[:3]  # the header, as it was when "hello" was sent
    reply = rules.format_reply(_screen_diff(before, done.split("\n")), "hello")
    assert reply == FAKE_REPLY.replace("●", "•")


def test_terminal_answers_cursor_position_and_device_status_queries() -> None:
    """Codex asks where the cursor is (`ESC[6n`) to place its inline viewport; a real terminal answers."""
    answers: list[bytes] = []
    terminal = Terminal(80, 24)
    terminal.on_response(answers.append)
    terminal.feed(b"\x1b[5;10Hx\x1b[6n\x1b[5n")
    assert answers == [b"\x1b[5;11R", b"\x1b[0n"]
    terminal.on_response(None)
    terminal.feed(b"\x1b[6n")
    assert len(answers) == 2
