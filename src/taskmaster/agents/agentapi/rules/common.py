"""Shared pieces of the agent rules: echoed-input removal, input-box finders, empty-line trimming."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

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

BoxFinder = Callable[[list[str]], int]


@dataclass(frozen=True)
class AgentRules:
    """How to read one agent type's screen. `find_input_box` returns the first row of the input box, or -1."""

    name: str
    find_input_box: BoxFinder
    trailing_echo_box: tuple[str, ...] = ()
    # Text that, shown near the input box, means the agent is still working (Claude and Codex keep their input box
    # on screen while they think, with "esc to interrupt" next to it).
    busy_markers: tuple[str, ...] = ()
    # Status rows the agent prints after a reply (Claude's `✻ Worked for 3s`), dropped from the end of a reply.
    trailing_noise: re.Pattern[str] | None = None

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
        return trim_empty_lines("\n".join(lines))


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
    """A `>` prompt near the bottom (Claude Code, Aider, Goose, Gemini): under a rule, or the last row with text.

    An echoed `> question` above a menu or a reply is neither, so it does not count as the prompt.
    """
    for i in range(len(lines) - 1, max(len(lines) - 7, -1), -1):
        if ">" not in lines[i]:
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
    """A rounded box `╭──╮ … ╰──╯` closing at the bottom of the screen; returns its top row."""
    for end in range(len(lines) - 1, max(len(lines) - 6, -1), -1):
        if "╰" in lines[end] and "╯" in lines[end]:
            for top in range(end - 1, max(end - 30, -1), -1):
                if "╭" in lines[top] and "╮" in lines[top]:
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
