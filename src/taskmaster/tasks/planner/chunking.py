"""Split a PRD into chunks of bounded size along its headings, whole paragraphs only, each with its heading path.

Markdown headings (ATX `#` and Setext underlines) are used when the document has any; otherwise plain-text
headings are recognised (short, unpunctuated lines standing alone: numbered, ALL CAPS or Title Case).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from taskmaster.tasks.planner.document import read_document

DEFAULT_MAX_CHARS = 12_000
SECTION_SEPARATOR = " > "
NO_HEADING = "(before the first heading)"

_ATX = re.compile(r"^ {0,3}(#{1,6})[ \t]+(.+?)[ \t]*#*[ \t]*$")
_SETEXT = re.compile(r"^ {0,3}(=+|-+)[ \t]*$")
_FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,})")
_NUMBERED = re.compile(r"^((?:\d+\.)*\d+)\.?[ \t]+(\S.*)$")
_LIST_ITEM = re.compile(r"^\s*([-*+•]|\d+[.)])\s")
_PLAIN_MAX = 80
_SMALL_WORDS = frozenset(
    [
        "a",
        "an",
        "and",
        "as",
        "at",
        "by",
        "for",
        "from",
        "in",
        "into",
        "of",
        "on",
        "or",
        "the",
        "to",
        "vs",
        "via",
        "with",
    ]
)


@dataclass(frozen=True, slots=True)
class Chunk:
    """One piece of the document to parse on its own.

    `heading_path` is where it sits (outermost heading first), shared by every section it holds; `sections` are
    the full paths of the sections whose text it carries, in order; `part`/`parts` count the pieces of a section
    too long for one chunk. `text` repeats the headings it contains, so it reads as a small document.
    """

    index: int
    heading_path: tuple[str, ...]
    sections: tuple[tuple[str, ...], ...]
    text: str
    part: int = 1
    parts: int = 1

    @property
    def section(self) -> str:
        """The heading path as one line: ``"3 Accounts > 3.2 Login"``."""
        return format_path(self.heading_path)


@dataclass(slots=True)
class _Section:
    path: tuple[str, ...]
    level: int
    blocks: list[str]


def format_path(path: tuple[str, ...]) -> str:
    """A heading path as one line; the empty path (text before any heading) has a name of its own."""
    return SECTION_SEPARATOR.join(path) if path else NO_HEADING


def chunk_document(text: str, *, max_chars: int = DEFAULT_MAX_CHARS) -> list[Chunk]:
    """The document as chunks of at most `max_chars` characters, in document order.

    Consecutive small sections under the same top-level heading share a chunk (its `heading_path` is their
    common ancestry; text before the first heading joins the chunk after it); a section too long for one chunk
    is cut between paragraphs into `parts`. A single paragraph (or fenced code block) longer than `max_chars`
    is never cut: it becomes a chunk of its own, over the limit. Sections without text give no chunk.
    """
    if max_chars < 100:
        raise ValueError("max_chars must be at least 100")
    chunks: list[Chunk] = []
    group: list[_Section] = []
    size = 0

    def flush() -> None:
        nonlocal size
        if group:
            paths = tuple(section.path for section in group)
            body = "\n\n".join(_render(section.path, section.level, section.blocks) for section in group)
            # The preamble is the document's introduction: it does not pull the chunk's path up to the root.
            titled = tuple(path for path in paths if path) or paths
            chunks.append(Chunk(len(chunks), _common_prefix(titled), paths, body))
        group.clear()
        size = 0

    for section in _sections(text):
        if not section.blocks:
            continue
        rendered = len(_render(section.path, section.level, section.blocks))
        if rendered > max_chars:
            flush()
            pieces = _pack(section, max_chars)
            for number, blocks in enumerate(pieces, start=1):
                body = _render(section.path, section.level, blocks, continued=number > 1)
                chunks.append(Chunk(len(chunks), section.path, (section.path,), body, number, len(pieces)))
            continue
        top = next((s.path[:1] for s in group if s.path), None)
        if group and (size + 2 + rendered > max_chars or (top is not None and section.path[:1] != top)):
            flush()
        group.append(section)
        size += rendered + (2 if size else 0)
    flush()
    return chunks


def outline(text: str) -> list[tuple[str, ...]]:
    """Every heading path of the document, in order (what a chunk's prompt may show of the rest)."""
    return [section.path for section in _sections(text) if section.path]


def _pack(section: _Section, max_chars: int) -> list[list[str]]:
    """Whole blocks into pieces whose rendering (with the heading line) stays within `max_chars` when possible."""
    heading = len(_heading_line(section.path, section.level, continued=True)) + 2 if section.path else 0
    pieces: list[list[str]] = [[]]
    size = heading
    for block in section.blocks:
        if pieces[-1] and size + 2 + len(block) > max_chars:
            pieces.append([])
            size = heading
        pieces[-1].append(block)
        size += len(block) + 2
    return pieces


def _render(path: tuple[str, ...], level: int, blocks: list[str], *, continued: bool = False) -> str:
    if not path:
        return "\n\n".join(blocks)
    return "\n\n".join([_heading_line(path, level, continued=continued), *blocks])


def _heading_line(path: tuple[str, ...], level: int, *, continued: bool) -> str:
    # A continuation starts with the whole path, so the piece still says where it belongs.
    title = SECTION_SEPARATOR.join(path) + " (continued)" if continued else path[-1]
    return f"{'#' * max(1, min(level, 6))} {title}"


def _common_prefix(paths: tuple[tuple[str, ...], ...]) -> tuple[str, ...]:
    first = paths[0]
    length = len(first)
    for path in paths[1:]:
        length = min(length, len(path))
        for i in range(length):
            if path[i] != first[i]:
                length = i
                break
    return first[:length]


def _sections(text: str) -> list[_Section]:
    """Headings and the blocks (paragraphs, lists, fenced code) under each, with heading paths by level."""
    lines = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    headings = document_headings(text, lines)
    sections = [_Section((), 0, [])]
    stack: list[tuple[int, str]] = []
    block: list[str] = []
    fence: str | None = None

    def end_block() -> None:
        if block:
            sections[-1].blocks.append("\n".join(block).strip("\n"))
            block.clear()

    skip = -1
    for number, line in enumerate(lines):
        if number == skip:
            continue
        if fence is not None:
            block.append(line)
            if line.strip().startswith(fence):
                fence = None
            continue
        if number in headings:
            end_block()
            level, title, underline = headings[number]
            if underline:
                skip = number + 1
            while stack and stack[-1][0] >= level:
                stack.pop()
            stack.append((level, title))
            sections.append(_Section(tuple(t for _, t in stack), level, []))
            continue
        opening = _FENCE.match(line)
        if opening:
            fence = opening.group(1)[0] * len(opening.group(1))
            block.append(line)
            continue
        if line.strip():
            block.append(line)
        else:
            end_block()
    end_block()
    return sections


def document_headings(text: str, lines: list[str]) -> dict[int, tuple[int, str, bool]]:
    """Line number -> (level, title, has an underline line): the headings of the planner's document tree."""
    found: dict[int, tuple[int, str, bool]] = {}
    for section in read_document(text).sections():
        if section.level and not section.pseudo:
            number = section.line - 1
            underline = number + 1 < len(lines) and bool(_SETEXT.match(lines[number + 1]))
            found[number] = (section.level, _clean_title(section.title), underline)
    return found


def _title_case(words: list[str]) -> bool:
    significant = [w for w in words if w.lower() not in _SMALL_WORDS]
    return bool(significant) and len(words) <= 10 and all(w[0].isupper() or not w[0].isalpha() for w in significant)


def _clean_title(raw: str) -> str:
    # Emphasis markers around a whole heading carry no meaning in a path.
    return raw.strip().strip("*_`").strip()
