"""Shared pieces of the agent rules: echoed-input removal, input-box finders, questions on screen, blank runs."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

WHITESPACE = " \t\n\r\f\v"
RULE = "───────────────"
# How agents echo input: the first few characters of the input are looked for near the top of the reply, then the
# rest is matched loosely (agents drop or restyle characters, e.g. code fences).
ECHO_PREFIX_CHARS = 6
ECHO_SEARCH_LINES = 5
ECHO_SEARCH_MIN_CHARS = 25
ECHO_LOOKAHEAD = 5
# Busy markers count in the input box, under it, and this many rows above it (Codex's `• Working` row).
BUSY_ROWS_ABOVE = 4

# A reply keeps at most this many blank rows in a row: more is the unused part of the agent's screen, not text.
MAX_BLANK_RUN = 2
# A menu's options must end this close to the bottom of the screen (hint rows below them) to count as a question.
QUESTION_TAIL_ROWS = 6
QUESTION_SEARCH_ROWS = 10
BOX_EDGES = "│┃|"

BoxFinder = Callable[[list[str]], int]


@dataclass(frozen=True)
class Choice:
    """One answer to a question on screen: `key` is what to send as a raw message to pick it."""

    key: str
    label: str

    def as_json(self) -> dict[str, str]:
        return {"key": self.key, "label": self.label}


@dataclass(frozen=True)
class Question:
    """A question the agent waits on (a permission menu, a yes/no prompt), with its choices."""

    question: str
    choices: tuple[Choice, ...]

    def as_json(self) -> dict[str, Any]:
        return {"question": self.question, "choices": [c.as_json() for c in self.choices]}


QuestionFinder = Callable[[list[str]], Question | None]


def unboxed(row: str) -> str:
    """A row without the box edges and spaces around it (`│ │ ? WriteFile │ │` -> `? WriteFile`)."""
    return row.strip().strip(BOX_EDGES + " ").strip()


def is_rule(row: str) -> bool:
    """A horizontal rule: a row of `─` (at least RULE's length) and nothing else."""
    text = row.strip()
    return len(text) >= len(RULE) and set(text) == {"─"}


# A numbered option, as menus draw them: Claude `❯ 1. Yes`, Codex `› 1. Yes, proceed (y)`, Gemini `● 1. Allow once`.
_OPTION = re.compile(r"^(?P<cursor>[❯›>●▶]\s*)?(?P<key>\d{1,2})[.)]\s+(?P<label>\S.*)$")
# Aider's `Create new file hello.txt? (Y)es/(N)o [Yes]:`, with any number of `(X)word` choices.
_YES_NO = re.compile(r"^(?P<question>.*\?)\s+(?P<choices>\(\w\)[^\[]*?)\s*(\[[^\]]*\])?:?\s*$")
_ASKING = re.compile(r"^(Do|Would|Allow|Apply|Are|Should|Can|May|Proceed|Continue|Approve|Run|Trust)\b", re.I)
_LETTER_CHOICE = re.compile(r"\((\w)\)([^/]*)")


def find_question(lines: list[str]) -> Question | None:
    """A menu (numbered options, one under a cursor) or a `(Y)es/(N)o` prompt at the bottom of the screen, or None."""
    rows = [unboxed(line) for line in lines]
    last = len(rows) - 1
    while last >= 0 and not rows[last]:
        last -= 1
    if last < 0:
        return None
    yes_no = _YES_NO.match(rows[last])
    if yes_no:
        choices = tuple(
            Choice(key.lower(), (key + rest).strip()) for key, rest in _LETTER_CHOICE.findall(yes_no["choices"])
        )
        if len(choices) >= 2:
            return Question(yes_no["question"].strip(), choices)
    return _find_menu(rows, last)


def _find_menu(rows: list[str], last: int) -> Question | None:
    end = -1
    for index in range(last, max(last - QUESTION_TAIL_ROWS, -1), -1):
        if _OPTION.match(rows[index]):
            end = index
            break
    if end == -1:
        return None
    # Walk up the options; a row of text between two options is the upper one's label, wrapped.
    options: list[tuple[re.Match[str], list[str]]] = []
    wrapped: list[str] = []
    index = end
    while index >= 0:
        match = _OPTION.match(rows[index])
        if match:
            options.insert(0, (match, wrapped))
            wrapped = []
        elif rows[index] and len(wrapped) < 2 and any(_OPTION.match(r) for r in rows[max(index - 2, 0) : index]):
            wrapped.insert(0, rows[index])
        else:
            break
        index -= 1
    start = index + 1 + len(wrapped)
    keys = [int(m["key"]) for m, _ in options]
    in_order = keys == list(range(keys[0], keys[0] + len(keys)))
    if len(options) < 2 or not in_order or not any(m["cursor"] for m, _ in options):
        return None
    above = [row for row in rows[max(start - QUESTION_SEARCH_ROWS, 0) : start] if row][::-1]
    asked = [row for row in above if row.endswith("?")]
    # The menu's own question (`Do you want to proceed?`) before a `?` in the details it shows (a reason, a command).
    question = next((row for row in asked if _ASKING.match(row)), asked[0] if asked else above[0] if above else "")
    choices = tuple(Choice(m["key"], " ".join([m["label"].strip(), *more])) for m, more in options)
    return Question(question, choices)


@dataclass(frozen=True)
class AgentRules:
    """How to read one agent type's screen. `find_input_box` returns the first row of the input box, or -1."""

    name: str
    find_input_box: BoxFinder
    find_question: QuestionFinder = find_question
    trailing_echo_box: tuple[str, ...] = ()
    # Text that, shown near the input box, means the agent is still working (Claude and Codex keep their input box
    # on screen while they think, with "esc to interrupt" next to it).
    busy_markers: tuple[str, ...] = ()
    # Status rows the agent prints after a reply (Claude's `✻ Worked for 3s`), dropped from the end of a reply.
    trailing_noise: re.Pattern[str] | None = None
    # A window title that means the agent is working (Codex's braille spinner, Gemini's `Working…`), which it keeps
    # while its screen is still: Codex shows no busy row while a reply it streams pauses.
    busy_title: re.Pattern[str] | None = None

    def title_busy(self, title: str) -> bool:
        return self.busy_title is not None and self.busy_title.search(title) is not None

    def prompt_visible(self, screen_text: str) -> bool:
        lines = trim_empty_lines(screen_text).split("\n")
        if not lines or lines == [""]:
            return False
        start = self.find_input_box(lines)
        if start == -1:
            return False
        near = lines[max(start - BUSY_ROWS_ABOVE, 0) :]
        return not any(marker in line for line in near for marker in self.busy_markers)

    def format_reply(self, text: str, user_input: str) -> str:
        """The reply as a client sees it: echoed input and the input box removed, rows right-trimmed."""
        text = remove_user_input(text, user_input, self.trailing_echo_box)
        lines = text.split("\n")
        start = self.find_input_box(lines)
        if start != -1:
            lines = lines[:start]
        lines = trim_empty_lines("\n".join(line.rstrip() for line in lines)).split("\n")
        if self.trailing_noise is not None:
            while lines and (not lines[-1].strip() or self.trailing_noise.search(lines[-1])):
                lines.pop()
        return trim_empty_lines("\n".join(collapse_blank_runs(lines)))

    def question(self, screen_text: str) -> Question | None:
        """The question the agent shows at the bottom of its screen, if any.

        None while a busy marker shows: a numbered list streaming in a reply (Claude's `● 1. …`) is no menu.
        """
        lines = trim_empty_lines(screen_text).split("\n")
        if any(marker in line for line in lines[-QUESTION_SEARCH_ROWS:] for marker in self.busy_markers):
            return None
        return self.find_question(lines)


def collapse_blank_runs(lines: list[str], keep: int = MAX_BLANK_RUN) -> list[str]:
    """`lines` with every run of more than `keep` blank rows cut down to one blank row."""
    out: list[str] = []
    run = 0
    for line in lines:
        if line.strip():
            if run > keep:
                out.append("")
            elif run:
                out.extend([""] * run)
            run = 0
            out.append(line)
        else:
            run += 1
    return out


def trim_empty_lines(text: str) -> str:
    lines = text.split("\n")
    start, end = 0, len(lines)
    while start < end and not lines[start].strip(WHITESPACE):
        start += 1
    while end > start and not lines[end - 1].strip(WHITESPACE):
        end -= 1
    return "\n".join(lines[start:end])


def _normalize(text: str) -> tuple[list[str], list[str], list[int]]:
    lines = text.split("\n")
    chars: list[str] = []
    where: list[int] = []
    for index, line in enumerate(lines):
        for char in line:
            if char not in WHITESPACE:
                chars.append(char)
                where.append(index)
    return chars, lines, where


def _find(haystack: list[str], needle: list[str]) -> int:
    width = len(needle)
    for i in range(len(haystack) - width + 1):
        if haystack[i : i + width] == needle:
            return i
    return -1


def remove_user_input(text: str, user_input: str, trailing_box: tuple[str, ...] = ()) -> str:
    """Drop the echoed `user_input` from the top of `text` (best effort: unchanged when no echo is found)."""
    if not user_input:
        return text
    msg, lines, msg_lines = _normalize(text)
    wanted, _, wanted_lines = _normalize(user_input)
    prefix = [c for c, line in zip(wanted, wanted_lines, strict=True) if line == 0][:ECHO_PREFIX_CHARS]
    if not prefix:
        return text
    window = sum(1 for line in msg_lines if line <= ECHO_SEARCH_LINES)
    window = min(max(window, ECHO_SEARCH_MIN_CHARS), len(msg))
    start = _find(msg[:window], prefix)
    if start == -1:
        return text
    m, u = start, 0
    while True:
        step = _next_match(m, u, msg, wanted)
        if step is None:
            break
        m, u = step
    last_line = msg_lines[m]
    if trailing_box and last_line + 1 < len(lines) and all(mark in lines[last_line + 1] for mark in trailing_box):
        last_line += 1
    return "\n".join(lines[last_line + 1 :])


def _next_match(m: int, u: int, msg: list[str], wanted: list[str]) -> tuple[int, int] | None:
    for i in range(ECHO_LOOKAHEAD):
        for j in range(ECHO_LOOKAHEAD):
            ui, mi = u + i + 1, m + j + 1
            if ui >= len(wanted) or mi >= len(msg):
                return None
            if wanted[ui] == msg[mi]:
                return mi, ui
    return None


def greater_than_box(lines: list[str]) -> int:
    """A `>` prompt row near the bottom (Claude Code 1.x, Goose, custom): a row that starts with `>` (inside box
    edges), under a rule or a box top, or the last row with text.

    A `>` elsewhere in a row (`x > y holds`) is reply text; an echoed `> question` above a menu or a reply is neither
    under a rule nor last, so neither counts as the prompt.
    """
    for i in range(len(lines) - 1, max(len(lines) - 7, -1), -1):
        if not unboxed(lines[i]).startswith(">"):
            continue
        if i > 0 and RULE in lines[i - 1]:
            return i - 1
        if not any(line.strip() for line in lines[i + 1 :]):
            return i
    return -1


def ruled_prompt_box(markers: tuple[str, ...], search_rows: int = 15) -> BoxFinder:
    """An input box opened by a full rule with the prompt `marker` on the row right below it (Claude Code 2.x):

        ──────────
        ❯ typed text
          (more rows of typed text)
        ──────────
          ? for shortcuts

    Returns the opening rule's row. A `❯` menu cursor (`❯ 1. Yes`) has no rule right above it, so it does not count.
    """

    def find(lines: list[str]) -> int:
        for i in range(len(lines) - 1, max(len(lines) - search_rows, 0), -1):
            if lines[i].lstrip().startswith(markers) and RULE in lines[i - 1]:
                return i - 1
        return -1

    return find


def slim_box(lines: list[str]) -> int:
    """A one-row box between two rules: `───` / `│ …` / `───`."""
    for i in range(len(lines) - 3, max(len(lines) - 10, -1), -1):
        if RULE in lines[i] and ("|" in lines[i + 1] or "│" in lines[i + 1]) and RULE in lines[i + 2]:
            return i
    return -1


def rounded_box(lines: list[str]) -> int:
    """A rounded box `╭──╮ … ╰──╯` closing at the bottom of the screen; returns its top row.

    The top is the `╭` in the same column as the bottom's `╰`, so a box holding other boxes is taken whole.
    """
    for end in range(len(lines) - 1, max(len(lines) - 6, -1), -1):
        column = lines[end].find("╰")
        if column != -1 and "╯" in lines[end]:
            for top in range(end - 1, max(end - 60, -1), -1):
                if lines[top].find("╭") == column:
                    return top
            return -1
    return -1


def first_of(*finders: BoxFinder) -> BoxFinder:
    def find(lines: list[str]) -> int:
        for finder in finders:
            index = finder(lines)
            if index != -1:
                return index
        return -1

    return find


def prompt_regex_rules(name: str, pattern: re.Pattern[str]) -> AgentRules:
    """Rules for an agent whose prompt row, the last row with text on the screen, matches `pattern`.

    Only the last row counts, so the echoed `prompt$ question` above a reply is not taken for the prompt.
    """

    def find(lines: list[str]) -> int:
        for i in range(len(lines) - 1, -1, -1):
            if lines[i].strip():
                return i if pattern.search(lines[i]) else -1
        return -1

    return AgentRules(name=name, find_input_box=find)
