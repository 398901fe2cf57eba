"""Terminal output to HTML: SGR colours and styles as spans, everything else escaped, state kept across chunks.

A log arrives in chunks that may cut a line or an escape sequence anywhere, so the renderer is a small state
machine: `feed` returns the HTML of what it could decode and keeps an unfinished escape for the next chunk; each
fragment closes its span, and the next one reopens it with the same style.
"""

from __future__ import annotations

import html
import re
from dataclasses import dataclass, field

# CSI sequences (ESC [ params final), OSC sequences (ESC ] ... BEL or ESC \), and lone two-byte escapes.
_ESCAPE = re.compile(r"\x1b(?:\[([0-?]*)[ -/]*([@-~])|\][^\x07\x1b]*(?:\x07|\x1b\\)|[@-Z\\-_])")
_UNFINISHED = re.compile(r"\x1b(?:\[[0-?]*[ -/]*|\][^\x07\x1b]*(?:\x1b)?)?\Z")
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1a\x1c-\x1f\x7f]")
_SGR_SCAN = re.compile(r"\x1b\[([0-9;]*)m")

_NAMED = ("black", "red", "green", "yellow", "blue", "magenta", "cyan", "white")


@dataclass(slots=True)
class Style:
    """The SGR attributes in force; `classes` renders them as CSS classes (colours as `fg-red`, `bg-256-42`...)."""

    bold: bool = False
    dim: bool = False
    italic: bool = False
    underline: bool = False
    fg: str | None = None
    bg: str | None = None

    def apply(self, params: str) -> None:
        codes = [int(p) if p.isdigit() else 0 for p in params.split(";")] if params else [0]
        i = 0
        while i < len(codes):
            code = codes[i]
            if code == 0:
                self.bold = self.dim = self.italic = self.underline = False
                self.fg = self.bg = None
            elif code == 1:
                self.bold = True
            elif code == 2:
                self.dim = True
            elif code == 3:
                self.italic = True
            elif code == 4:
                self.underline = True
            elif code == 22:
                self.bold = self.dim = False
            elif code == 23:
                self.italic = False
            elif code == 24:
                self.underline = False
            elif 30 <= code <= 37 or 90 <= code <= 97:
                self.fg = _named(code - 30 if code < 90 else code - 90, bright=code >= 90)
            elif 40 <= code <= 47 or 100 <= code <= 107:
                self.bg = _named(code - 40 if code < 100 else code - 100, bright=code >= 100)
            elif code == 39:
                self.fg = None
            elif code == 49:
                self.bg = None
            elif code in (38, 48) and i + 1 < len(codes):
                colour, used = _extended(codes[i + 1 :])
                if code == 38:
                    self.fg = colour
                else:
                    self.bg = colour
                i += used
            i += 1

    def classes(self) -> str:
        names = [
            name for name, on in (("b", self.bold), ("d", self.dim), ("i", self.italic), ("u", self.underline)) if on
        ]
        if self.fg:
            names.append(f"fg-{self.fg}")
        if self.bg:
            names.append(f"bg-{self.bg}")
        return " ".join(names)


def _named(index: int, *, bright: bool) -> str:
    return ("br-" if bright else "") + _NAMED[index]


def _extended(rest: list[int]) -> tuple[str | None, int]:
    """38;5;n (256 colours, as a class) or 38;2;r;g;b (kept to the nearest of the 256, so no inline style)."""
    if rest[0] == 5 and len(rest) >= 2:
        return f"256-{max(0, min(255, rest[1]))}", 2
    if rest[0] == 2 and len(rest) >= 4:
        r, g, b = (max(0, min(255, v)) for v in rest[1:4])
        return f"256-{16 + 36 * round(r / 51) + 6 * round(g / 51) + round(b / 51)}", 4
    return None, 1


@dataclass(slots=True)
class AnsiRenderer:
    """Feed it a step's output in order; it returns safe HTML for each piece."""

    style: Style = field(default_factory=Style)
    pending: str = ""

    def feed(self, text: str) -> str:
        text = self.pending + text
        unfinished = _UNFINISHED.search(text)
        self.pending = unfinished.group(0) if unfinished else ""
        if self.pending:
            text = text[: len(text) - len(self.pending)]
        parts: list[str] = []
        classes = self.style.classes()
        if classes:
            parts.append(f'<span class="{classes}">')
        position = 0
        for match in _ESCAPE.finditer(text):
            parts.append(_escape(text[position : match.start()]))
            position = match.end()
            if match.group(2) != "m":
                continue  # cursor moves, erases, titles: meaningless in a log view
            if classes:
                parts.append("</span>")
            self.style.apply(match.group(1) or "")
            classes = self.style.classes()
            if classes:
                parts.append(f'<span class="{classes}">')
        parts.append(_escape(text[position:]))
        if classes:
            parts.append("</span>")
        return "".join(parts)

    def skip(self, text: str) -> None:
        """Advance the style over `text` without rendering it (to start a view in the middle of a log)."""
        for match in _SGR_SCAN.finditer(self.pending + text):
            self.style.apply(match.group(1))
        self.pending = ""


def _escape(text: str) -> str:
    # Carriage returns of progress bars: keep the last state of the line, as a terminal would show it.
    if "\r" in text:
        text = "\n".join(line.rstrip("\r").rsplit("\r", 1)[-1] for line in text.split("\n"))
    return html.escape(_CONTROL.sub("", text), quote=False)


def to_html(text: str) -> str:
    """A whole text at once."""
    return AnsiRenderer().feed(text)
