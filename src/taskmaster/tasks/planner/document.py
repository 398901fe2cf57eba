"""A PRD as an immutable tree of sections and blocks, read from Markdown or plain text in one pass over its lines.

The first stage of the offline planner and the LLM planner's chunking: every later stage reads this tree, never the
raw lines. Line numbers are 1-based and point into the text as given.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Literal

from taskmaster.tasks.planner.lexicon import clean_inline

__all__ = ["Block", "Document", "Section", "read_document"]

BlockKind = Literal["text", "item", "row", "code"]


@dataclass(frozen=True)
class Block:
    """A paragraph line group, a list item (with its nested items), a table row or a code block."""

    kind: BlockKind
    text: str
    line: int
    end: int
    depth: int = 0
    number: str | None = None
    """The ordinal of an ordered-list item ("3" for "3.")."""
    checked: bool | None = None
    cells: tuple[str, ...] = ()
    header: tuple[str, ...] = ()
    children: tuple[Block, ...] = ()

    def walk(self) -> Iterator[Block]:
        yield self
        for child in self.children:
            yield from child.walk()


@dataclass(frozen=True)
class Section:
    """A heading and what follows it up to the next heading of the same or a higher level."""

    title: str
    level: int
    line: int
    blocks: tuple[Block, ...] = ()
    children: tuple[Section, ...] = ()
    tags: tuple[str, ...] = ()
    """Template tags around the section (`<context>`, `<PRD>`), outermost first."""
    pseudo: bool = False
    """A lead-in line ("MVP:") rather than a real heading."""

    def walk(self) -> Iterator[Section]:
        yield self
        for child in self.children:
            yield from child.walk()


@dataclass(frozen=True)
class Document:
    root: Section
    markdown: bool
    tags: frozenset[str] = field(default_factory=frozenset)

    def sections(self) -> Iterator[Section]:
        return self.root.walk()


# --- building --------------------------------------------------------------------------------------------------------


@dataclass
class _Open:
    title: str
    level: int
    line: int
    tags: tuple[str, ...]
    pseudo: bool
    blocks: list[Block] = field(default_factory=list)
    children: list[Section] = field(default_factory=list)

    def freeze(self) -> Section:
        return Section(
            self.title, self.level, self.line, tuple(self.blocks), tuple(self.children), self.tags, self.pseudo
        )


class _Builder:
    """Opens and closes sections as headings arrive; blocks go to the innermost open section."""

    def __init__(self) -> None:
        self.stack = [_Open("", 0, 1, (), False)]
        self.tags: list[str] = []
        self.base = 0

    def heading(self, title: str, level: int, line: int, *, pseudo: bool = False) -> None:
        if pseudo:
            level = self.base + 1
            while len(self.stack) > 1 and self.stack[-1].pseudo:
                self.close()
        else:
            self.base = level
        while len(self.stack) > 1 and self.stack[-1].level >= level:
            self.close()
        self.stack.append(_Open(title, level, line, tuple(self.tags), pseudo))

    def close(self) -> None:
        done = self.stack.pop()
        self.stack[-1].children.append(done.freeze())

    def add(self, block: Block) -> None:
        self.stack[-1].blocks.append(block)

    def tag(self, name: str, closing: bool) -> None:
        while len(self.stack) > 1:
            self.close()
        self.base = 0
        if closing:
            if name in self.tags:
                del self.tags[self.tags.index(name) :]
        else:
            self.tags.append(name)

    def finish(self) -> Section:
        while len(self.stack) > 1:
            self.close()
        return self.stack[0].freeze()


_TAG_LINE = re.compile(r"^\s*<(/?)([A-Za-z][\w-]*)>\s*$")
_LABEL_START = re.compile(r"^(?:[A-Z][A-Za-z]{0,5}-?\d{1,4}(?:\.\d+)?\b|As an? \w|\w[\w /-]{0,24}:\s+\S)")
_LEAD_IN = re.compile(r"^(?P<title>[^:]{1,50}):$")


def _pieces(lines: list[tuple[str, int]]) -> list[tuple[str, int, int]]:
    """Lines of one paragraph grouped into pieces: a new piece starts at a requirement label, a user story or a
    "Name: value" line, so that a paragraph of stories is not read as one."""
    out: list[tuple[str, int, int]] = []
    for text, line in lines:
        text = text.strip()
        if not text:
            continue
        if out and not _LABEL_START.match(text):
            prev, start, _ = out[-1]
            out[-1] = (f"{prev} {text}", start, line)
        else:
            out.append((text, line, line))
    return out


def _lead_in(text: str) -> str | None:
    """The title of a short lead-in line ("MVP:", "**Future enhancements:**"), or None."""
    plain = clean_inline(text).strip()
    match = _LEAD_IN.match(plain)
    if match and len(match.group("title").split()) <= 6:
        return match.group("title").strip()
    if re.fullmatch(r"(\*\*|__)[^*_]{1,60}\1", text.strip()) and len(plain.split()) <= 6:
        return plain.rstrip(":")
    return None


# --- reading lines ----------------------------------------------------------------------------------------------------

_FENCE = re.compile(r"^\s{0,3}(```|~~~)")
_ATX = re.compile(r"^\s{0,3}(#{1,6})\s+(.*?)(?:\s+#+)?\s*$")
_TABLE_RULE = re.compile(r"^\|?\s*:?-{2,}:?\s*(?:\|\s*:?-{2,}:?\s*)*\|?$")
_RULE = re.compile(r"^(?:-\s*){3,}$|^(?:\*\s*){3,}$|^(?:_\s*){3,}$")
_ITEM = re.compile(
    r"^(?P<indent>\s*)(?P<marker>[-*•+]|\d{1,3}[.)]|[a-z][.)])\s+(?:\[(?P<box>[ xX])\]\s+)?(?P<text>\S.*)$"
)
# "2 Payments", "1.1 Login Flow": a numbered line in title case, alone between blank lines
_NUMBERED_HEADING = re.compile(
    r"^(\d+(?:\.\d+)*)\.?\s+(?=[A-Z])(?:[A-Z][\w'/&-]*|and|of|the|for|to|in|a|an|or)(?:\s+(?:[A-Z0-9][\w'/&-]*|and|of|the|for|to|in|a|an|or|&))*$"
)
_SETEXT = re.compile(r"^\s*(=+|-+)\s*$")


def _is_caps(text: str) -> bool:
    letters = [c for c in text if c.isalpha()]
    return len(letters) >= 2 and all(c.isupper() for c in letters) and len(text.split()) <= 10


def _read(text: str, builder: _Builder, *, markdown: bool) -> None:
    """One pass over the lines. Markdown headings, fences and tables in both modes; a plain-text document's
    headings come from their look (capitals, a short line alone) instead of `#`."""
    lines = text.split("\n")
    n = len(lines)
    paragraph: list[tuple[str, int]] = []
    items: list[tuple[int, Block]] = []  # (indent, block) of the current list, flat
    seen_heading = False
    final = max((i for i, raw in enumerate(lines) if raw.strip()), default=-1)

    def flush_paragraph() -> None:
        nonlocal paragraph
        for piece, a, b in _pieces(paragraph):
            builder.add(Block("text", clean_inline(piece), a, b))
        paragraph = []

    def flush() -> None:
        nonlocal items
        flush_paragraph()
        for block in _nest(items):
            builder.add(block)
        items = []

    index = 0
    blank_before = True
    while index < n:
        raw = lines[index]
        line = index + 1
        stripped = raw.strip()
        index += 1
        if not stripped:
            flush_paragraph()
            blank_before = True
            continue
        was_blank, blank_before = blank_before, False
        fence = _FENCE.match(raw)
        if fence:
            flush()
            close = index
            while close < n and not lines[close].strip().startswith(fence.group(1)):
                close += 1
            builder.add(Block("code", "\n".join(lines[index:close]), line, close + 1))
            index = close + 1
            continue
        if stripped.startswith("<!--"):
            while index < n and "-->" not in lines[index - 1]:
                index += 1
            continue
        tag = _TAG_LINE.match(raw)
        if tag:
            flush()
            builder.tag(tag.group(2).lower(), bool(tag.group(1)))
            continue
        atx = _ATX.match(raw)
        if atx and markdown:
            flush()
            builder.heading(clean_inline(atx.group(2)).rstrip(":").strip() or "(untitled)", len(atx.group(1)), line)
            seen_heading = True
            continue
        following = lines[index].strip() if index < n else ""
        if (
            "|" in stripped
            and (stripped.startswith("|") or _TABLE_RULE.match(following))
            and (_TABLE_RULE.match(following) or stripped.startswith("|"))
        ):
            flush()
            index = _table(lines, index - 1, builder)
            continue
        if stripped.startswith(">"):
            stripped = stripped.lstrip("> ").strip()
            raw = stripped
            if not stripped:
                continue
        before = lines[index - 2].strip() if index >= 2 else ""
        if _SETEXT.match(following) and not _ITEM.match(raw) and len(stripped.split()) <= 12 and not items:
            flush()
            builder.heading(clean_inline(stripped), 1 if following.startswith("=") else 2, line)
            seen_heading = True
            index += 1
            continue
        if _RULE.match(stripped):
            continue
        item = _ITEM.match(raw)
        if item:
            flush_paragraph()
            marker = item.group("marker")
            number = marker[:-1] if marker[:-1].isdigit() else None
            box = item.group("box")
            block = Block(
                "item", clean_inline(item.group("text")), line, line, 0, number, None if box is None else box != " "
            )
            items.append((len(item.group("indent").expandtabs(4)), block))
            continue
        indented = raw[:1].isspace()
        if items and not paragraph and (indented or not was_blank):
            indent, last = items[-1]
            looks_new = (
                _LABEL_START.match(stripped)
                or _lead_in(stripped) is not None
                or (not markdown and _heading_like(stripped, before, following))
            )
            if indented or not looks_new:
                if indented and (was_blank or _LABEL_START.match(stripped)):
                    child = Block("text", clean_inline(stripped), line, line, last.depth + 1)
                    items[-1] = (indent, _with_child(last, child))
                else:
                    items[-1] = (indent, _extend(last, clean_inline(stripped), line))
                continue
        if not markdown:
            first_line = (
                not paragraph and not seen_heading and builder.stack[-1].level == 0 and not builder.stack[0].blocks
            )
            if (
                first_line
                and index - 1 < final
                and len(stripped.split()) <= 14
                and not re.search(r"[.!?,;]$", stripped)
            ):
                flush()
                builder.heading(stripped.rstrip(":"), 1, line)
                seen_heading = True
                continue
            numbered = _NUMBERED_HEADING.match(stripped)
            if numbered and not paragraph and was_blank and not following and index - 1 < final:
                flush()
                builder.heading(stripped, numbered.group(1).count(".") + 1, line)
                seen_heading = True
                continue
            caps_heading = paragraph and _is_caps(stripped) and not _caps_field(stripped) and index - 1 < final
            if caps_heading or (not paragraph and index - 1 < final and _heading_like(stripped, before, following)):
                flush()
                builder.heading(stripped.rstrip(":").strip(), 2, line)
                seen_heading = True
                continue
        lead = _lead_in(stripped)
        if lead is not None and not paragraph:
            flush()
            builder.heading(lead, 0, line, pseudo=True)
            continue
        if items:
            flush()
        paragraph.append((stripped, line))
    flush()


def _table(lines: list[str], start: int, builder: _Builder) -> int:
    """Rows of a pipe table from lines[start]; returns the index after it."""
    header = _cells(lines[start])
    index = start + 1
    if index < len(lines) and _TABLE_RULE.match(lines[index].strip()):
        index += 1
    else:
        builder.add(Block("row", " | ".join(c for c in header if c), start + 1, start + 1, cells=header))
        header = ()
    while index < len(lines) and "|" in lines[index] and lines[index].strip():
        cells = _cells(lines[index])
        if any(cells):
            text = " | ".join(cell for cell in cells if cell)
            builder.add(Block("row", text, index + 1, index + 1, cells=cells, header=header))
        index += 1
    return index


def _cells(raw: str) -> tuple[str, ...]:
    row = raw.strip()
    row = row[1:] if row.startswith("|") else row
    row = row[:-1] if row.endswith("|") else row
    return tuple(clean_inline(cell) for cell in re.split(r"(?<!\\)\|", row))


def _caps_field(text: str) -> bool:
    """ "MUST HAVE: 1, 2, 3" is a line of content; "PHASE 1: FOUNDATIONS" is a heading."""
    _, colon, rest = text.partition(":")
    return bool(colon) and not (sum(c.isalpha() for c in rest) >= 2 and _is_caps(rest))


def _heading_like(text: str, before: str, following: str) -> bool:
    if _ITEM.match(text):
        return False
    if _is_caps(text):
        return not _caps_field(text)
    if re.search(r":\s+\S", text):
        return False
    words = text.rstrip(":").split()
    return (
        not before
        and len(words) <= 6
        and text[:1].isupper()
        and not re.search(r"[.,;!?]$", text)
        and not _LABEL_START.match(text)
    )


def _extend(block: Block, text: str, line: int) -> Block:
    return Block(
        block.kind, f"{block.text} {text}", block.line, line, block.depth, block.number, block.checked,
        children=block.children,
    )  # fmt: skip


def _with_child(block: Block, child: Block) -> Block:
    return Block(
        block.kind, block.text, block.line, child.end, block.depth, block.number, block.checked,
        children=(*block.children, child),
    )  # fmt: skip


def _nest(flat: list[tuple[int, Block]]) -> list[Block]:
    """Plain-text list items nested by indentation."""
    if not flat:
        return []
    base = flat[0][0]
    out: list[Block] = []
    i = 0
    while i < len(flat):
        indent, block = flat[i]
        j = i + 1
        while j < len(flat) and flat[j][0] > max(indent, base):
            j += 1
        nested = _nest(flat[i + 1 : j])
        depth_fixed = tuple(_deepen(child) for child in nested)
        out.append(
            Block(
                block.kind,
                block.text,
                block.line,
                max([block.end, *(c.end for c in nested)]),
                block.depth,
                block.number,
                block.checked,
                children=(*block.children, *depth_fixed),
            )
        )
        i = j
    return out


def _deepen(block: Block) -> Block:
    return Block(
        block.kind, block.text, block.line, block.end, block.depth + 1, block.number, block.checked,
        children=tuple(_deepen(c) for c in block.children),
    )  # fmt: skip


_MARKDOWN_HINT = re.compile(r"^(?:#{1,6}\s+\S|\s*\|.*\|\s*$|\s*[-*]\s+\[[ xX]\]\s)", re.M)


def read_document(text: str) -> Document:
    """The document tree of a PRD; Markdown when it has Markdown headings, tables or task lists, else plain text."""
    text = text.replace("\r\n", "\n").replace("\r", "\n").replace("\t", "    ")
    builder = _Builder()
    markdown = bool(_MARKDOWN_HINT.search(text))
    _read(text, builder, markdown=markdown)
    tags = frozenset(m.group(2).lower() for raw in text.split("\n") if "<" in raw and (m := _TAG_LINE.match(raw)))
    return Document(builder.finish(), markdown, tags)
