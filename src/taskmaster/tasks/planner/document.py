"""A PRD as an immutable tree of sections and blocks, read from Markdown (markdown-it-py) or plain text.

The first stage of the offline planner and the LLM planner's chunking: every later stage reads this tree, never the
raw lines. Line numbers are 1-based and point into the text as given.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Literal

from markdown_it import MarkdownIt
from markdown_it.token import Token

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


# --- Markdown ---------------------------------------------------------------------------------------------------------

_MD = MarkdownIt("commonmark").enable("table")
_CHECK = re.compile(r"^\[([ xX])\]\s+")


def _markdown(text: str, builder: _Builder) -> None:
    lines = text.split("\n")
    # Template tags, and lead-in lines right under a list item (which Markdown would fold into the item), are
    # blanked out and replayed as events at their line, in document order with the blocks.
    events: list[tuple[int, str, str]] = []
    for number, raw in enumerate(lines):
        tag = _TAG_LINE.match(raw)
        if tag and tag.group(2).lower() not in {"br", "hr", "p", "div", "span"}:
            events.append((number + 1, "close" if tag.group(1) else "open", tag.group(2).lower()))
            lines[number] = ""
        elif number and lines[number - 1].strip() and not raw[:1].isspace() and _ITEM.match(lines[number - 1]):
            lead = _lead_in(raw)
            if lead is not None:
                events.append((number + 1, "lead", lead))
                lines[number] = ""
    tokens = _MD.parse("\n".join(lines))

    def replay(before: int) -> None:
        while events and events[0][0] < before:
            line, kind, name = events.pop(0)
            if kind == "lead":
                builder.heading(name, 0, line, pseudo=True)
            else:
                builder.tag(name, kind == "close")

    i = 0
    while i < len(tokens):
        token = tokens[i]
        start = token.map[0] if token.map else None
        if start is not None:
            replay(start + 1)
        if token.type == "heading_open":
            title = clean_inline(tokens[i + 1].content).rstrip(":").strip()
            builder.heading(title or "(untitled)", int(token.tag[1]), (start or 0) + 1)
            i += 3
            continue
        if token.type in {"bullet_list_open", "ordered_list_open"}:
            i, items = _md_list(tokens, i, 0)
            for item in items:
                replay(item.line)
                builder.add(item)
            continue
        if token.type == "paragraph_open":
            content = tokens[i + 1].content
            first = (start or 0) + 1
            lead = _lead_in(content) if "\n" not in content else None
            if lead is not None:
                builder.heading(lead, 0, first, pseudo=True)
            else:
                for piece, a, b in _pieces([(raw, first + n) for n, raw in enumerate(content.split("\n"))]):
                    builder.add(Block("text", clean_inline(piece), a, b))
            i += 3
            continue
        if token.type == "table_open":
            i = _md_table(tokens, i, builder)
            continue
        if token.type in {"fence", "code_block"} and token.map:
            builder.add(Block("code", token.content.rstrip("\n"), token.map[0] + 1, token.map[1]))
        i += 1
    replay(len(lines) + 2)


def _md_list(tokens: list[Token], i: int, depth: int) -> tuple[int, list[Block]]:
    """Parse a list starting at tokens[i] (its *_list_open); return the index after it and its items."""
    close = tokens[i].type.replace("_open", "_close")
    items: list[Block] = []
    i += 1
    while i < len(tokens) and tokens[i].type != close:
        token = tokens[i]
        if token.type != "list_item_open":
            i += 1
            continue
        start, end = (token.map[0] + 1, token.map[1]) if token.map else (0, 0)
        number = token.info or None
        texts: list[str] = []
        children: list[Block] = []
        i += 1
        while tokens[i].type != "list_item_close":
            inner = tokens[i]
            if inner.type in {"bullet_list_open", "ordered_list_open"}:
                i, nested = _md_list(tokens, i, depth + 1)
                children.extend(nested)
                continue
            if inner.type == "inline":
                if texts:
                    base = inner.map[0] + 1 if inner.map else start
                    for piece, a, b in _pieces([(r, base + n) for n, r in enumerate(inner.content.split("\n"))]):
                        children.append(Block("text", clean_inline(piece), a, b, depth + 1))
                else:
                    texts.append(inner.content)
            i += 1
        i += 1
        raw = " ".join(" ".join(texts).split("\n"))
        checked: bool | None = None
        box = _CHECK.match(raw)
        if box:
            checked = box.group(1) != " "
            raw = raw[box.end() :]
        items.append(Block("item", clean_inline(raw), start, end, depth, number, checked, children=tuple(children)))
    return i + 1, items


def _md_table(tokens: list[Token], i: int, builder: _Builder) -> int:
    header: tuple[str, ...] = ()
    row: list[str] = []
    row_line = 0
    in_head = False
    while tokens[i].type != "table_close":
        token = tokens[i]
        if token.type == "thead_open":
            in_head = True
        elif token.type == "thead_close":
            in_head = False
        elif token.type == "tr_open":
            row, row_line = [], (token.map[0] + 1 if token.map else 0)
        elif token.type == "inline":
            row.append(clean_inline(token.content))
        elif token.type == "tr_close":
            if in_head:
                header = tuple(row)
            elif any(row):
                text = " | ".join(cell for cell in row if cell)
                builder.add(Block("row", text, row_line, row_line, cells=tuple(row), header=header))
        i += 1
    return i + 1


# --- plain text -------------------------------------------------------------------------------------------------------

_ITEM = re.compile(
    r"^(?P<indent>\s*)(?P<marker>[-*•+]|\d{1,3}[.)]|[a-z][.)])\s+(?:\[(?P<box>[ xX])\]\s+)?(?P<text>\S.*)$"
)
_SETEXT = re.compile(r"^\s*(=+|-+)\s*$")


def _is_caps(text: str) -> bool:
    letters = [c for c in text if c.isalpha()]
    return len(letters) >= 2 and all(c.isupper() for c in letters) and len(text.split()) <= 10


def _plain(text: str, builder: _Builder) -> None:
    lines = text.split("\n")
    n = len(lines)
    paragraph: list[tuple[str, int]] = []
    items: list[tuple[int, Block]] = []  # (indent, block) of the current list, flat
    seen_heading = False
    final = max((i for i, raw in enumerate(lines) if raw.strip()), default=-1)

    def flush() -> None:
        nonlocal paragraph
        for piece, a, b in _pieces(paragraph):
            builder.add(Block("text", clean_inline(piece), a, b))
        paragraph = []
        flush_items()

    def flush_items() -> None:
        nonlocal items
        for block in _nest(items):
            builder.add(block)
        items = []

    for index, raw in enumerate(lines):
        line = index + 1
        stripped = raw.strip()
        if not stripped:
            if paragraph:
                flush()
            continue
        tag = _TAG_LINE.match(raw)
        if tag:
            flush()
            builder.tag(tag.group(2).lower(), bool(tag.group(1)))
            continue
        following = lines[index + 1].strip() if index + 1 < n else ""
        before = lines[index - 1].strip() if index else ""
        if _SETEXT.match(following) and not _ITEM.match(raw) and len(stripped.split()) <= 12:
            flush()
            builder.heading(stripped, 1 if following.startswith("=") else 2, line)
            seen_heading = True
            continue
        if _SETEXT.match(raw) and before:
            continue
        item = _ITEM.match(raw)
        if item:
            if paragraph:
                for piece, a, b in _pieces(paragraph):
                    builder.add(Block("text", clean_inline(piece), a, b))
                paragraph = []
            marker = item.group("marker")
            number = marker[:-1] if marker[:-1].isdigit() else None
            box = item.group("box")
            block = Block(
                "item", clean_inline(item.group("text")), line, line, 0, number, None if box is None else box != " "
            )
            items.append((len(item.group("indent").expandtabs(4)), block))
            continue
        if items and not paragraph and (raw[:1].isspace() or not _heading_like(stripped, before, following)):
            indent, last = items[-1]
            if raw[:1].isspace() or not _LABEL_START.match(stripped):
                if raw[:1].isspace() and len(raw) - len(raw.lstrip()) > indent + 1 and _LABEL_START.match(stripped):
                    child = Block("text", clean_inline(stripped), line, line, last.depth + 1)
                    items[-1] = (indent, _with_child(last, child))
                else:
                    items[-1] = (indent, _extend(last, clean_inline(stripped), line))
                continue
        first_line = not paragraph and not seen_heading and builder.stack[-1].level == 0 and not builder.stack[0].blocks
        if first_line and index < final and len(stripped.split()) <= 14 and not re.search(r"[.!?,;]$", stripped):
            flush()
            builder.heading(stripped.rstrip(":"), 1, line)
            seen_heading = True
            continue
        caps_heading = paragraph and _is_caps(stripped) and not _caps_field(stripped) and index < final
        if caps_heading or (not paragraph and index < final and _heading_like(stripped, before, following)):
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
            flush_items()
        paragraph.append((stripped, line))
    flush()


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
    if markdown:
        _markdown(text, builder)
    else:
        _plain(text, builder)
    tags = frozenset(m.group(2).lower() for raw in text.split("\n") if "<" in raw and (m := _TAG_LINE.match(raw)))
    return Document(builder.finish(), markdown, tags)
