"""Issue 15's defects, replayed from byte streams the real CLIs wrote against the fake model servers of
tests/agentapi/real/models.py (Gemini CLI 0.61.0, Codex 0.171.0, Aider 0.86.2), split where input was sent."""

from __future__ import annotations

from pathlib import Path

from taskmaster.agents.agentapi.conversation import _screen_diff
from taskmaster.agents.agentapi.rules import rules_for
from taskmaster.agents.agentapi.rules.common import Choice, Question
from taskmaster.agents.agentapi.screen import Mark, Terminal

DATA = Path(__file__).parent / "data"
GREETING = "Hello from the fake model.\nThis is line two of the reply.\nAnd line three ends it."


class Replay:
    """A recorded byte stream fed through our terminal up to chosen offsets."""

    def __init__(self, name: str) -> None:
        self.stream = (DATA / name).read_bytes()
        self.terminal = Terminal(80, 1000)
        self.answers: list[bytes] = []
        self.terminal.on_response(self.answers.append)
        self.fed = 0

    def to(self, offset: int | None = None) -> str:
        end = len(self.stream) if offset is None else offset
        self.terminal.feed(self.stream[self.fed : end])
        self.fed = end
        return self.terminal.text()

    def mark(self) -> Mark:
        return self.terminal.mark()

    def reply(self, agent: str, mark: Mark, sent: str) -> str:
        old, new = self.terminal.since(mark)
        return rules_for(agent).format_reply(_screen_diff(old, new), sent)


# Gemini CLI 0.61.0: "hello" pasted at 1467, Enter at 2503.
def test_gemini_private_sgr_loses_no_output_and_the_device_attributes_query_is_answered() -> None:
    replay = Replay("gemini_0.61.0_hello.ansi")
    assert b"\x1b[>4;?m\x1b[c" in replay.stream[:100]
    screen = replay.to(1467)
    assert "Type your message" in screen
    assert b"\x1b[?6c" in replay.answers


def test_gemini_is_stable_at_its_ready_screen_with_the_footer_below_the_prompt() -> None:
    screen = Replay("gemini_0.61.0_hello.ansi").to(1467)
    assert screen.split("\n")[-1].strip().startswith("/tmp/gem/work")  # the footer is the last row
    assert rules_for("gemini").prompt_visible(screen)


def test_gemini_yolo_prompt_marker_is_the_input_row() -> None:
    replay = Replay("gemini_0.61.0_yolo.ansi")
    mark_at = 1464
    replay.to(mark_at)
    mark = replay.mark()
    screen = replay.to()
    assert " *   Type your message" in screen
    assert rules_for("gemini").prompt_visible(screen)
    assert replay.reply("gemini", mark, "hello") == "✦ " + GREETING.replace("\n", "\n  ")


def test_gemini_reply_does_not_end_with_its_input_box() -> None:
    replay = Replay("gemini_0.61.0_hello.ansi")
    replay.to(1467)
    mark = replay.mark()
    screen = replay.to()
    assert "? for shortcuts" in screen
    reply = replay.reply("gemini", mark, "hello")
    assert reply == "✦ " + GREETING.replace("\n", "\n  ")


def test_gemini_nested_approval_boxes_are_a_question_kept_whole() -> None:
    replay = Replay("gemini_0.61.0_edit.ansi")
    replay.to(1467)
    mark = replay.mark()
    screen = replay.to(12619)
    rules = rules_for("gemini")
    assert not rules.prompt_visible(screen)
    assert rules.question(screen) == Question(
        "Apply this change?",
        (
            Choice("1", "Allow once"),
            Choice("2", "Allow for this session"),
            Choice("3", "Modify with external editor"),
            Choice("4", "No, suggest changes (esc)"),
        ),
    )
    reply = replay.reply("gemini", mark, "please edit the file")
    assert reply.startswith("✦ I will write the file.")
    assert "│ ? WriteFile  Writing to hello.txt" in reply
    assert "Apply this change?" in reply
    assert reply.rstrip().endswith("╯")
    screen = replay.to()
    assert rules.prompt_visible(screen)
    assert rules.question(screen) is None


# Codex 0.171.0: "hello" at 3534 (Enter 3633), "please edit the file" at 6592 (Enter 6795), its question at 12757.
def test_codex_approval_menu_cursor_is_not_the_input_row_and_the_choices_stay() -> None:
    replay = Replay("codex_0.171.0_session.ansi")
    replay.to(6592)
    mark = replay.mark()
    screen = replay.to(12757)
    rules = rules_for("codex")
    assert "› 1. Yes, proceed (y)" in screen
    assert not rules.prompt_visible(screen)
    question = rules.question(screen)
    assert question is not None
    assert question.question == "Would you like to run the following command?"
    assert [c.key for c in question.choices] == ["1", "2", "3"]
    assert question.choices[0].label == "Yes, proceed (y)"
    assert question.choices[1].label.endswith("(p)")  # a wrapped option is read whole
    reply = replay.reply("codex", mark, "please edit the file")
    assert "Would you like to run the following command?" in reply
    assert "› 1. Yes, proceed (y)" in reply
    assert "3. No, and tell Codex what to do differently (esc)" in reply


def test_codex_replies_are_clean_and_blank_runs_are_collapsed() -> None:
    replay = Replay("codex_0.171.0_session.ansi")
    replay.to(3534)
    mark = replay.mark()
    screen = replay.to(6592)
    rules = rules_for("codex")
    assert rules.prompt_visible(screen)
    assert replay.reply("codex", mark, "hello") == "• " + GREETING.replace("\n", "\n  ")
    # On the 1,000-row terminal issue 15 saw Codex's first screen as its header, 488 blank rows, then the rest
    # (0.171.0 draws it compactly here); runs of blank rows are cut to one, shorter ones kept.
    start = Replay("codex_0.171.0_session.ansi").to(3534).split("\n")
    first = rules.format_reply("\n".join([*start[:6], *[""] * 488, *start[6:]]), "")
    assert "\n\n\n" not in first
    assert first.split("\n")[:6] == [row.rstrip() for row in start[:6]]
    assert rules.format_reply("a\n\n\nb\n\nc", "") == "a\n\n\nb\n\nc"


def test_codex_tip_rows_are_chrome() -> None:
    rules = rules_for("codex")
    screen = "• Done.\n  └ Tip: Use /fork to branch this conversation.\n\n  Worked for 2s • 10:00\n\n› Ask Codex"
    assert rules.format_reply(screen, "") == "• Done."


# Aider 0.86.2: "hello" at 4043 (Enter 4126), "pause please" at 9358, paused mid-answer at 13849, "please edit" at
# 21121, its question at 25207.
def test_aider_pause_mid_answer_is_not_a_prompt() -> None:
    replay = Replay("aider_0.86.2_session.ansi")
    screen = replay.to(13849)
    assert screen.rstrip().endswith("Comparing the two:")
    assert "whole> pause please" in screen  # the echoed input, under a rule, two rows up
    assert not rules_for("aider").prompt_visible(screen)
    assert not rules_for("aider").prompt_visible(screen + "\n\nx > y holds here.")


def test_aider_reply_drops_its_token_line_rule_and_files_row() -> None:
    replay = Replay("aider_0.86.2_session.ansi")
    rules = rules_for("aider")
    assert rules.prompt_visible(replay.to(4043))
    mark = replay.mark()
    assert rules.prompt_visible(replay.to(9358))
    assert replay.reply("aider", mark, "hello") == GREETING.replace("\n", "\n\n")
    replay.to(9358)
    mark = replay.mark()
    replay.to(21121)
    assert (
        replay.reply("aider", mark, "pause please") == "Comparing the two:\n\nx > y holds here.\n\nAnd that settles it."
    )
    replay.to(25207)
    edit_mark = replay.mark()
    screen = replay.to()
    assert screen.split("\n")[-2:] == ["hello.txt", "whole>"]  # the files in the chat above the prompt
    assert rules.prompt_visible(screen)
    reply = replay.reply("aider", edit_mark, "y")
    assert reply.endswith("Applied edit to hello.txt")
    assert "Tokens:" not in reply


def test_aider_yes_no_question_is_waiting_with_its_choices() -> None:
    replay = Replay("aider_0.86.2_session.ansi")
    screen = replay.to(25207)
    rules = rules_for("aider")
    assert not rules.prompt_visible(screen)
    assert rules.question(screen) == Question("Create new file?", (Choice("y", "Yes"), Choice("n", "No")))


def test_claude_permission_menu_is_a_question() -> None:
    menu = (DATA / "claude_2.1.197_permission_menu.txt").read_text(encoding="utf-8").rstrip("\n")
    question = rules_for("claude").question(menu)
    assert question is not None
    assert question.question == "Do you want to proceed?"
    assert [c.key for c in question.choices] == ["1", "2", "3"]
    assert question.choices[2].label == "No"


def test_numbered_list_without_a_menu_cursor_is_not_a_question() -> None:
    reply = "Which do you prefer?\n1. Tabs\n2. Spaces"
    assert rules_for("claude").question(reply) is None


def test_kitty_keyboard_sequences_draw_nothing_even_split_across_chunks() -> None:
    """Gemini pops its keyboard mode with `ESC[<u`; pyte alone ends the sequence at `<` and prints `u`."""
    terminal = Terminal(40, 5)
    for chunk in (b" * \x1b[", b"<", b"u\x1b[=1;1u\x1b[>4;0mType", b" here\x1b"):
        terminal.feed(chunk)
    assert terminal.text() == " * Type here"
    terminal.feed(b"[1mX")
    assert terminal.text() == " * Type hereX"


# Codex 0.171.0: "pause please" at 6990 - 2.5 s into the reply, whose stream pauses 4 s after its second row.
def test_codex_paused_reply_is_busy_by_its_title_spinner_though_its_screen_looks_idle() -> None:
    replay = Replay("codex_0.171.0_pause.ansi")
    rules = rules_for("codex")
    screen = replay.to(6990)
    assert "› Ask Codex" in screen
    assert "Working" not in screen  # no busy row: the screen alone reads as idle
    assert rules.prompt_visible(screen)
    assert rules.title_busy(replay.terminal.title)
    replay.to()
    assert not rules.title_busy(replay.terminal.title)


def test_aider_question_with_many_choices_names_each_key() -> None:
    screen = "Run shell command? (Y)es/(N)o/(A)ll/(S)kip all/(D)on't ask again [Yes]: "
    question = rules_for("aider").question(screen)
    assert question is not None
    assert question.question == "Run shell command?"
    assert [(c.key, c.label) for c in question.choices] == [
        ("y", "Yes"),
        ("n", "No"),
        ("a", "All"),
        ("s", "Skip all"),
        ("d", "Don't ask again"),
    ]


def test_a_numbered_list_streaming_while_busy_is_not_a_question() -> None:
    screen = (
        "❯ list two steps\n\n● Here they are?\n● 1. First step\n  2. Second step\n\n"
        "✻ Thinking… (esc to interrupt)\n" + "─" * 80 + "\n❯ \n" + "─" * 80
    )
    assert rules_for("claude").question(screen) is None
