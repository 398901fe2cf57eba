"""Terminal emulation for one agent: pyte fed from the PTY, rendered lines cached, scrollback kept.

Only lines pyte marks dirty are re-rendered, so a snapshot of an 80x1000 screen costs a list copy, not a redraw.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

import pyte

# CSI sequences with a `<` or `=` parameter prefix (the kitty keyboard protocol: `ESC[<u`, `ESC[=1;1u`), which pyte
# mistakes for a sequence ending at the prefix and then draws the rest (`u`) as text. They set input modes only.
_PREFIXED_CSI = re.compile(rb"\x1b\[[<=][0-9;:]*[\x40-\x7e]")
# The start of such a sequence at the end of a chunk: held until the next chunk completes it.
_PREFIXED_CSI_START = re.compile(rb"\x1b(\[([<=][0-9;:]*)?)?$")


def _render(line: dict[int, pyte.screens.Char]) -> str:
    if not line:
        return ""
    # Wide characters leave an empty-data placeholder in the next cell; joining skips it, as pyte's display does.
    return "".join(line[x].data for x in range(max(line) + 1)).rstrip()


class _Screen(pyte.Screen):
    """A pyte screen that mirrors its rows as strings and keeps the lines that scroll off the top."""

    def __init__(self, columns: int, lines: int, scrollback_limit: int) -> None:
        self.rows: list[str] = [""] * lines
        self.scrollback: list[str] = []
        self.scrolled = 0  # lines ever pushed into scrollback, including ones since trimmed
        self.scrollback_limit = scrollback_limit
        self.changed = False
        # Where the terminal's answers to queries (cursor position, device attributes) go: the agent's input.
        self.respond: Callable[[bytes], None] | None = None
        super().__init__(columns, lines)

    def write_process_input(self, data: str) -> None:
        # Real agents ask where the cursor is (Codex's inline viewport needs `ESC[6n` answered) and what the
        # terminal is; a terminal that never answers leaves them waiting on a timeout and guessing.
        if self.respond is not None:
            self.respond(data.encode())

    def render_dirty(self) -> None:
        if not self.dirty:
            return
        rows, buffer = self.rows, self.buffer
        for y in self.dirty:
            if 0 <= y < self.lines:
                text = _render(buffer[y]) if y in buffer else ""
                if rows[y] != text:
                    rows[y] = text
                    self.changed = True
        self.dirty.clear()

    def index(self) -> None:
        top, bottom = self.margins or (0, self.lines - 1)
        if self.cursor.y != bottom:
            super().index()
            return
        # pyte marks every row dirty on a scroll; render what really changed first, then shift our mirror the same
        # way, so a scrolling burst costs one row per line instead of the whole screen per line.
        self.render_dirty()
        if top == 0:
            self.scrollback.append(self.rows[0])
            self.scrolled += 1
            if len(self.scrollback) > self.scrollback_limit:
                del self.scrollback[: len(self.scrollback) - self.scrollback_limit]
        del self.rows[top]
        self.rows.insert(bottom, "")
        super().index()
        self.dirty.clear()
        self.changed = True

    def select_graphic_rendition(self, *attrs: int, private: bool = False) -> None:
        # Private SGR (`ESC[>4;?m`, xterm's modifyOtherKeys, which Gemini CLI sends at start) sets key modes, not
        # colours; pyte 0.8 raises on its `private` flag.
        if not private:
            super().select_graphic_rendition(*attrs)

    def resize(self, lines: int | None = None, columns: int | None = None) -> None:
        super().resize(lines, columns)
        self.rows = [""] * self.lines
        self.dirty.update(range(self.lines))
        self.render_dirty()
        self.changed = True


class _TolerantStream(pyte.ByteStream):
    """A byte stream that drops an escape sequence it cannot handle and goes on with the rest of the chunk.

    pyte raises from its parser when a handler refuses a sequence, and the caller loses everything after it in the
    chunk (text, and queries such as device attributes that the agent then waits on).
    """

    def _send_to_parser(self, data: str) -> bool | None:
        try:
            return super()._send_to_parser(data)
        # Any handler error: the sequence is dropped, never the output after it.
        except Exception:
            return False


@dataclass(frozen=True)
class Mark:
    """A point in the terminal's history: how many lines had scrolled off, and the screen rows at that moment."""

    scrolled: int
    rows: tuple[str, ...]


class Terminal:
    """A virtual terminal. Not thread-safe: feed and read it from one event loop.

    `feed` returns whether the visible text (or the scrollback) changed; cursor moves alone do not count.
    """

    def __init__(self, columns: int = 80, lines: int = 1000, scrollback_limit: int = 100_000) -> None:
        self._screen = _Screen(columns, lines, scrollback_limit)
        self._stream = _TolerantStream(self._screen)
        self._held = b""

    def on_response(self, respond: Callable[[bytes], None] | None) -> None:
        """Send the terminal's answers to the agent's queries (cursor position report, device attributes) here."""
        self._screen.respond = respond

    @property
    def columns(self) -> int:
        return int(self._screen.columns)

    @property
    def lines(self) -> int:
        return int(self._screen.lines)

    def feed(self, data: bytes) -> bool:
        screen = self._screen
        screen.changed = False
        data = self._held + data
        tail = _PREFIXED_CSI_START.search(data)
        self._held = data[tail.start() :] if tail else b""
        if tail:
            data = data[: tail.start()]
        self._stream.feed(_PREFIXED_CSI.sub(b"", data))
        screen.render_dirty()
        return bool(screen.changed)

    @property
    def title(self) -> str:
        """The window title the agent set last (OSC 0 or 2)."""
        return str(self._screen.title)

    def rows(self) -> tuple[str, ...]:
        """The visible screen, one right-trimmed string per row."""
        return tuple(self._screen.rows)

    def text(self) -> str:
        """The visible screen as text with trailing blank rows dropped."""
        rows = self._screen.rows
        end = len(rows)
        while end and not rows[end - 1]:
            end -= 1
        return "\n".join(rows[:end])

    def mark(self) -> Mark:
        return Mark(self._screen.scrolled, self.rows())

    def since(self, mark: Mark) -> tuple[list[str], list[str]]:
        """(old, new): the rows at `mark`, and every line from that point on, scrolled-off lines included.

        Lines that scrolled off between the mark and now come first in `new`, so a reply longer than the screen is
        returned whole and in order, as long as the scrollback limit was not exceeded.
        """
        screen = self._screen
        scrolled_since = screen.scrolled - mark.scrolled
        kept = len(screen.scrollback)
        start = max(kept - scrolled_since, 0)
        return list(mark.rows), screen.scrollback[start:] + screen.rows

    def scrollback_lines(self) -> int:
        return len(self._screen.scrollback)

    @property
    def cursor(self) -> tuple[int, int]:
        return int(self._screen.cursor.x), int(self._screen.cursor.y)


def diff(old: tuple[str, ...] | list[str], new: tuple[str, ...] | list[str]) -> list[int]:
    """Indexes of the rows that differ between two snapshots (a longer snapshot's extra rows count as changed)."""
    changed = [i for i, (a, b) in enumerate(zip(old, new, strict=False)) if a != b]
    if len(old) != len(new):
        changed.extend(range(min(len(old), len(new)), max(len(old), len(new))))
    return changed
