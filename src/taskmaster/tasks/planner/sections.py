"""Reading a PRD's structure: headings (Markdown ATX and setext, or plain text), paragraphs, nested lists, tables.

The reader knows nothing about tasks; `offline.py` decides what the sections and items mean.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

__all__ = ["Item", "Paragraph", "Section", "read_document"]


@dataclass(eq=False)
class Item:
    """A list item (bullet, number, requirement id, table row or user story) with its nested items."""

    text: str
    line: int
    indent: int
    label: str | None = None
    """How the document numbers it: "3", "b", "FR-2"; used to resolve "depends on FR-2"."""
    fields: dict[str, str] = field(default_factory=dict)
    """Cells of a table row by role ("priority", "depends", "type"), or "key: value" children."""
    children: list[Item] = field(default_factory=list)
    lead_in: bool = False
    """A sentence ending with ':' that introduces the list below it ("The export must include:")."""


@dataclass(eq=False)
class Paragraph:
    """Prose of a section (lines joined), with the line it starts on."""

    text: str
    line: int


@dataclass(eq=False)
class Section:
    """A heading with its own paragraphs, items and `Key: value` fields, and the sections under it."""

    title: str
    level: int
    line: int
    number: str | None = None
    """Its numbering ("3.2", or "2" for "Phase 2"); resolves "see section 3.2" and orders phases."""
    keyword: str | None = None
    """"phase", "milestone", … when the heading is of that form."""
    pseudo: bool = False
    """A bold line or a short "Label:" line acting as a sub-heading."""
    parent: Section | None = None
    children: list[Section] = field(default_factory=list)
    paragraphs: list[Paragraph] = field(default_factory=list)
    items: list[Item] = field(default_factory=list)
    fields: dict[str, list[str]] = field(default_factory=dict)
    """"Priority: high" / "Depends on: Phase 1" lines written in the section body."""
    end_line: int = 0

    @property
    def path(self) -> tuple[str, ...]:
        """The titles from the top-level heading down to this one."""
        titles: list[str] = []
        node: Section | None = self
        while node is not None and node.parent is not None:
            titles.append(node.title)
            node = node.parent
        return tuple(reversed(titles))

    def walk(self) -> list[Section]:
        """This section and every section below it, in document order."""
        out: list[Section] = []
        stack = [self]
        while stack:
            node = stack.pop()
            out.append(node)
            stack.extend(reversed(node.children))
        return out


_ATX = re.compile(r"^ {0,3}(#{1,6})(?:[ \t]+(.*?))?(?:[ \t]+#+)?[ \t]*$")
_SETEXT = re.compile(r"^ {0,3}(={3,}|-{3,})[ \t]*$")
_RULE = re.compile(r"^ {0,3}([-*_])(?:[ \t]*\1){2,}[ \t]*$")
_FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,})")
_BULLET = re.compile(r"^([ \t]*)(?:[-*+•◦▪‣·–]|o(?=\s))[ \t]+(?:\[[ xX]\][ \t]+)?(\S.*)$")
_NUMBERED = re.compile(r"^([ \t]*)(?:\(?(\d{1,3}|[a-zA-Z]|[ivxIVX]{2,4})[.)])[ \t]+(\S.*)$")
_REQ_ID = re.compile(
    r"^([ \t]*)(?:\*\*|__)?([A-Z][A-Z0-9]{0,7}-\d{1,4}(?:\.\d+)*|[A-Z]{1,4}\d{1,4}(?:\.\d+)*)(?:\*\*|__)?"
    r"[ \t]*(?:[:.)\-–—]|(?=\*\*))[ \t]*(?:\*\*|__)?[ \t]*(\S.*)$"
)
_STEP = re.compile(r"^([ \t]*)(?:step|task|item|req(?:uirement)?)[ \t]+(\d{1,3})[ \t]*[:.)\-–—][ \t]*(\S.*)$", re.I)
_PHASE = re.compile(
    r"^(?:\*\*|__)?(phase|milestone|stage|sprint|iteration|release|part|chapter|epic|section)[ \t]+"
    r"(\d+(?:\.\d+)*|[ivx]{1,5}|one|two|three|four|five|six|seven|eight|nine|ten|[a-h])\b(?:\*\*|__)?"
    r"[ \t]*(?:[:.)\-–—][ \t]*(.*?))?(?:\*\*|__)?[ \t]*$",
    re.I,
)
_DECIMAL_HEADING = re.compile(r"^(\d{1,2}(?:\.\d{1,2})+)\.?[ \t]+(\S.{0,100})$")
_NUMBER_HEADING = re.compile(r"^(\d{1,2}|[IVX]{1,4})[.)][ \t]+(\S.{0,100})$")
_BOLD_LINE = re.compile(r"^(?:\*\*|__)([^*_].{0,80}?)(?:\*\*|__)[ \t]*:?[ \t]*$")
_LABEL = re.compile(r"^(?:\*\*|__)?([A-Za-z][A-Za-z0-9 /&'()\-]{0,50}?)(?:\*\*|__)?[ \t]*:(?:\*\*|__)?(?:[ \t]+(.*))?$")
_TABLE_ROW = re.compile(r"^[ \t]*\|.*\|[ \t]*$")
_TABLE_SEP = re.compile(r"^[ \t]*\|?[ \t]*:?-{2,}:?[ \t]*(?:\|[ \t]*:?-{2,}:?[ \t]*)*\|?[ \t]*$")
_STORY = re.compile(r"^\s*(?:\*\*|__)?as an? \w", re.I)
_MODAL = re.compile(r"\b(must|shall|should|will|needs? to|has to|have to|required to|can|could|may)\b", re.I)
_FOLLOWING = re.compile(r"\b(following|below|as follows|these)\b", re.I)

_NUMBER_WORDS = {
    "one": "1",
    "two": "2",
    "three": "3",
    "four": "4",
    "five": "5",
    "six": "6",
    "seven": "7",
    "eight": "8",
    "nine": "9",
    "ten": "10",
}
_ROMAN = {"i": 1, "v": 5, "x": 10, "l": 50, "c": 100}

FIELD_KEYS: dict[str, str] = {
    "priority": "priority",
    "prio": "priority",
    "moscow": "priority",
    "importance": "priority",
    "severity": "priority",
    "depends on": "depends",
    "dependencies": "depends",
    "dependency": "depends",
    "depends": "depends",
    "requires": "depends",
    "prerequisite": "depends",
    "prerequisites": "depends",
    "blocked by": "depends",
    "after": "depends",
    "type": "type",
    "kind": "type",
    "category": "type",
    "owner": "owner",
    "assignee": "owner",
    "acceptance": "criteria",
    "acceptance criteria": "criteria",
    "acceptance test": "criteria",
    "acceptance tests": "criteria",
    "ac": "criteria",
    "test": "criteria",
    "tests": "criteria",
    "testing": "criteria",
    "verify": "criteria",
    "verification": "criteria",
    "done when": "criteria",
    "definition of done": "criteria",
}
"""Keys of "Key: value" lines that describe the requirement they sit in rather than adding text to it."""

_IMPERATIVE_HINT = re.compile(
    r"^(add|allow|build|create|implement|support|enable|provide|display|show|send|store|save|generate|validate|"
    r"verify|write|fix|resolve|refactor|migrate|remove|delete|update|upgrade|integrate|configure|set up|deploy|"
    r"ensure|make|let|use|define|design|introduce|replace|handle|track|notify|export|import|sync|cache|encrypt|"
    r"log|expose|persist|document|test|publish|install|initialize|bootstrap|scaffold|run|prevent|detect)\b",
    re.I,
)


def roman_or_word_to_number(token: str) -> str:
    """'IV' → '4', 'two' → '2', '3.1' stays: the numbering phases and sections are compared by."""
    low = token.lower()
    if low in _NUMBER_WORDS:
        return _NUMBER_WORDS[low]
    if (low and all(ch in _ROMAN for ch in low) and len(low) > 1) or low in {"i", "v", "x"}:
        total = 0
        values = [_ROMAN[ch] for ch in low]
        for index, value in enumerate(values):
            total += -value if index + 1 < len(values) and values[index + 1] > value else value
        return str(total)
    if len(low) == 1 and low.isalpha():
        return str(ord(low) - ord("a") + 1)
    return token


def _indent_width(prefix: str) -> int:
    return len(prefix.expandtabs(4))


def _strip_emphasis(text: str) -> str:
    return re.sub(r"(\*\*|__)(.+?)\1", r"\2", text).strip()


class _Reader:
    """One pass over the lines, with a stack of open sections and a stack of open list items."""

    def __init__(self, lines: list[str], plain: bool) -> None:
        self.lines = lines
        self.plain = plain
        self.root = Section(title="", level=0, line=1)
        self.section = self.root
        self.base_level = 0
        self.stack: list[Item] = []
        self.para: list[str] = []
        self.para_line = 0
        self.blank_before = True
        self.after_blank_in_list = False
        self.table: list[tuple[int, list[str]]] = []
        self.last_para: Paragraph | None = None

    # --- sections -------------------------------------------------------------------------------------------------

    def open_section(
        self,
        title: str,
        level: int,
        line: int,
        *,
        number: str | None = None,
        keyword: str | None = None,
        pseudo: bool = False,
    ) -> None:
        self.flush()
        node = self.section
        while node.parent is not None and node.level >= level:
            node.end_line = line - 1
            node = node.parent
        section = Section(
            title=title, level=level, line=line, number=number, keyword=keyword, pseudo=pseudo, parent=node
        )
        node.children.append(section)
        self.section = section
        if not pseudo:
            self.base_level = level

    # --- blocks ---------------------------------------------------------------------------------------------------

    def flush_paragraph(self) -> None:
        if not self.para:
            return
        text = " ".join(part.strip() for part in self.para).strip()
        self.para = []
        if text:
            if _STORY.match(text):
                self.section.items.append(Item(text=text, line=self.para_line, indent=0))
            else:
                self.last_para = Paragraph(text=text, line=self.para_line)
                self.section.paragraphs.append(self.last_para)

    def flush_table(self) -> None:
        if not self.table:
            return
        rows, self.table = self.table, []
        _table_to_blocks(rows, self.section)

    def flush(self) -> None:
        self.flush_paragraph()
        self.flush_table()
        self.stack = []
        self.after_blank_in_list = False

    def add_item(self, indent: int, text: str, line: int, label: str | None) -> None:
        self.flush_paragraph()
        self.flush_table()
        item = Item(text=text.strip(), line=line, indent=indent, label=label)
        while self.stack and self.stack[-1].indent >= indent and not self.stack[-1].lead_in:
            self.stack.pop()
        if self.stack:
            self.stack[-1].children.append(item)
        else:
            self.section.items.append(item)
        self.stack.append(item)
        self.after_blank_in_list = False
        self.last_para = None

    def add_field(self, key: str, value: str) -> None:
        self.section.fields.setdefault(key, []).append(value.strip())

    # --- the pass -------------------------------------------------------------------------------------------------

    def run(self) -> Section:
        lines = self.lines
        count = len(lines)
        index = 0
        fence: str | None = None
        fence_lines: list[str] = []
        fence_start = 0
        while index < count:
            raw = lines[index]
            lineno = index + 1
            if fence is not None:
                if raw.strip().startswith(fence):
                    self.attach_code(fence_lines, fence_start)
                    fence, fence_lines = None, []
                else:
                    fence_lines.append(raw)
                index += 1
                continue
            fence_match = _FENCE.match(raw)
            if fence_match:
                self.flush_paragraph()
                fence, fence_start = fence_match.group(1)[:3], lineno
                index += 1
                continue
            stripped = raw.strip()
            if stripped.startswith(">"):
                stripped = stripped.lstrip("> ").strip()
                raw = stripped
            if not stripped:
                self.flush_paragraph()
                self.flush_table()
                if self.stack:
                    self.after_blank_in_list = True
                self.blank_before = True
                index += 1
                continue
            if stripped.startswith("<!--"):
                while index < count and "-->" not in lines[index]:
                    index += 1
                index += 1
                continue
            consumed = self.line(raw, stripped, lineno, lines[index + 1] if index + 1 < count else "")
            self.blank_before = False
            index += consumed
        if fence is not None:
            self.attach_code(fence_lines, fence_start)
        self.flush()
        end = len(lines)
        node: Section | None = self.section
        while node is not None:
            node.end_line = end
            node = node.parent
        return self.root

    def attach_code(self, code: list[str], line: int) -> None:
        text = "\n".join(code).strip("\n")
        if not text.strip():
            return
        if self.stack:
            self.stack[-1].text += "\n```\n" + text + "\n```"
        else:
            self.flush_paragraph()
            self.section.paragraphs.append(Paragraph(text="```\n" + text + "\n```", line=line))

    def line(self, raw: str, stripped: str, lineno: int, following: str) -> int:
        """Handle one non-blank line; returns how many lines it consumed (2 for a setext heading)."""
        indent = _indent_width(raw[: len(raw) - len(raw.lstrip())])

        atx = _ATX.match(raw)
        if atx:
            title = _strip_emphasis(atx.group(2) or "")
            if title:
                self.heading(title, len(atx.group(1)), lineno)
            return 1

        if _TABLE_ROW.match(raw):
            self.flush_paragraph()
            if not self.table:
                self.stack = []
            if not _TABLE_SEP.match(raw):
                self.table.append((lineno, [cell.strip() for cell in stripped.strip("|").split("|")]))
            return 1
        if self.table:
            self.flush_table()

        setext = _SETEXT.match(following) if following else None
        if (
            setext
            and indent <= 3
            and not self.para
            and not self.stack_owns(indent)
            and not _BULLET.match(raw)
            and not _NUMBERED.match(raw)
            and len(stripped) <= 120
        ):
            self.heading(_strip_emphasis(stripped), 1 if setext.group(1)[0] == "=" else 2, lineno)
            return 2
        if _RULE.match(raw):
            self.flush_paragraph()
            return 1

        if indent <= 3 and self.blank_before_or_heading():
            phase = _PHASE.match(stripped)
            if phase and len(stripped) <= 120 and not (self.stack and indent > 0):
                keyword = phase.group(1).lower()
                number = roman_or_word_to_number(phase.group(2))
                title = _strip_emphasis(stripped.rstrip(":"))
                level = self.phase_level(keyword)
                self.heading(title, level, lineno, number=number, keyword=keyword)
                return 1
            if self.is_caps_heading(stripped):
                caps = re.sub(r"^(\d{1,2}(?:\.\d+)*|[IVX]{1,4})[.)]?\s+", "", stripped).rstrip(":").strip()
                number_match = re.match(r"^(\d{1,2}(?:\.\d+)*)", stripped)
                level = 1 if not number_match else number_match.group(1).count(".") + 1
                self.heading(caps, level, lineno, number=_group(number_match))
                return 1
            decimal = _DECIMAL_HEADING.match(stripped)
            if decimal and self.heading_like(decimal.group(2)) and not self.stack_owns(indent):
                number = decimal.group(1)
                self.heading(_strip_emphasis(decimal.group(2)), number.count(".") + 1, lineno, number=number)
                return 1
            if self.plain:
                numbered = _NUMBER_HEADING.match(stripped)
                if numbered and self.heading_like(numbered.group(2)) and not self.next_is_sibling(following, raw):
                    number = roman_or_word_to_number(numbered.group(1))
                    self.heading(_strip_emphasis(numbered.group(2)), 1, lineno, number=number)
                    return 1
            bold = _BOLD_LINE.match(stripped)
            if bold and not self.stack_owns(indent) and len(bold.group(1).split()) <= 10:
                self.pseudo_heading(_strip_emphasis(bold.group(1)).rstrip(":"), lineno)
                return 1

        label = _LABEL.match(stripped) if indent <= 3 and not self.stack_owns(indent) else None
        if label and len(label.group(1).split()) <= 5 and not _MODAL.search(label.group(1)):
            key = label.group(1).strip().lower()
            rest = (label.group(2) or "").strip()
            role = FIELD_KEYS.get(key)
            if rest and role and role != "criteria":
                self.flush_paragraph()
                self.add_field(role, rest)
                return 1
            if not rest and not re.match(r"^(https?|ftp)$", key):
                self.pseudo_heading(_strip_emphasis(label.group(1)), lineno)
                return 1
            if rest and role == "criteria":
                self.flush_paragraph()
                self.add_field("criteria", rest)
                return 1

        marker = self.match_item(raw)
        if marker is not None:
            item_indent, label_text, text = marker
            if not self.stack and item_indent <= 3:
                self.take_lead_in()
            self.add_item(item_indent, text, lineno, label_text)
            return 1

        if self.stack and (indent > self.stack[-1].indent or not self.after_blank_in_list):
            # continuation of the open item (indented, or a lazy line right below it)
            self.stack[-1].text += " " + stripped
            return 1
        if self.stack:
            self.stack = []
            self.after_blank_in_list = False
        if not self.para:
            self.para_line = lineno
        self.para.append(stripped)
        return 1

    # --- helpers --------------------------------------------------------------------------------------------------

    def heading(
        self, title: str, level: int, line: int, *, number: str | None = None, keyword: str | None = None
    ) -> None:
        if number is None:
            numbered = re.match(r"^(\d{1,2}(?:\.\d{1,2})*)[.)]?\s+(\S.*)$", title)
            if numbered:
                number = numbered.group(1)
        if keyword is None:
            phase = _PHASE.match(title)
            if phase:
                keyword = phase.group(1).lower()
                number = roman_or_word_to_number(phase.group(2))
        self.open_section(title, level, line, number=number, keyword=keyword)

    def pseudo_heading(self, title: str, line: int) -> None:
        level = self.base_level + 1
        self.open_section(title, level, line, pseudo=True)

    def phase_level(self, keyword: str) -> int:
        """Phases sit under a heading about phases ("Roadmap"), beside each other, or beside plain headings."""
        if keyword in {"part", "chapter"} or self.base_level == 0:
            return 1
        node: Section | None = self.section
        while node is not None and node.pseudo:
            node = node.parent
        if node is None or node.parent is None:
            return 1
        if node.keyword == keyword:
            return node.level
        if not self.plain or re.search(
            r"\b(phases|roadmap|plan|milestones|delivery|releases|implementation|requirements|stages|sprints)\b",
            node.title,
            re.I,
        ):
            return node.level + 1
        return node.level

    def blank_before_or_heading(self) -> bool:
        return self.blank_before or (not self.para and not self.stack)

    def stack_owns(self, indent: int) -> bool:
        return bool(self.stack) and indent > max(self.stack[-1].indent, 0)

    def is_caps_heading(self, text: str) -> bool:
        body = re.sub(r"^(\d{1,2}(?:\.\d+)*|[IVX]{1,4})[.)]?\s+", "", text).rstrip(":").strip()
        if not (3 <= len(body) <= 80) or body.endswith((".", ",", ";")):
            return False
        letters = [ch for ch in body if ch.isalpha()]
        if len(letters) < 3 or any(ch.islower() for ch in letters):
            return False
        return len(body.split()) <= 10 and bool(re.search(r"[A-Z]{3}", body))

    def heading_like(self, text: str) -> bool:
        text = _strip_emphasis(text)
        words = text.split()
        if not words or len(words) > 8 or text.endswith((".", ",", ";", "!", "?")):
            return False
        if not (text[0].isupper() or text[0].isdigit()):
            return False
        return not _MODAL.search(text) and not _IMPERATIVE_HINT.match(text)

    def next_is_sibling(self, following: str, current: str) -> bool:
        """A numbered line directly followed by another at the same indent is a list, not a heading."""
        sibling = _NUMBERED.match(following)
        return sibling is not None and _indent_width(sibling.group(1)) == _indent_width(
            current[: len(current) - len(current.lstrip())]
        )

    def take_lead_in(self) -> None:
        """Turn the sentence just before a list ("Exports must include:") into an item owning that list."""
        if self.para:
            text, line = " ".join(part.strip() for part in self.para).strip(), self.para_line
        elif self.last_para is not None and self.section.paragraphs and self.section.paragraphs[-1] is self.last_para:
            text, line = self.last_para.text, self.last_para.line
        else:
            return
        if not _is_lead_in(text):
            return
        if self.para:
            self.para = []
        else:
            self.section.paragraphs.pop()
        self.add_item(-1, text, line, None)
        self.stack[-1].lead_in = True

    def match_item(self, raw: str) -> tuple[int, str | None, str] | None:
        bullet = _BULLET.match(raw)
        if bullet:
            text = bullet.group(2)
            inner = _REQ_ID.match(text)
            if inner and inner.group(3):
                return _indent_width(bullet.group(1)), inner.group(2), inner.group(3)
            return _indent_width(bullet.group(1)), None, text
        req = _REQ_ID.match(raw)
        if req and req.group(3):
            return _indent_width(req.group(1)), req.group(2), req.group(3)
        step = _STEP.match(raw)
        if step:
            return _indent_width(step.group(1)), step.group(2), step.group(3)
        numbered = _NUMBERED.match(raw)
        if numbered:
            token = numbered.group(2)
            if len(token) == 1 and token.isalpha() and token.isupper() and not re.match(r"^\s*[A-E][.)]", raw):
                return None
            return _indent_width(numbered.group(1)), token, numbered.group(3)
        return None


def _is_lead_in(text: str) -> bool:
    return (
        text.endswith(":")
        and len(text) <= 300
        and bool(_MODAL.search(text) or _IMPERATIVE_HINT.match(text))
        and not _FOLLOWING.search(text)
    )


def _group(match: re.Match[str] | None) -> str | None:
    return match.group(1) if match else None


_COLUMN_ROLES: list[tuple[str, re.Pattern[str]]] = [
    ("id", re.compile(r"^(id|#|no\.?|ref|key|req(uirement)? ?id|number)$", re.I)),
    ("priority", re.compile(r"priority|moscow|importance|prio|severity|must/should", re.I)),
    ("depends", re.compile(r"depend|prerequisite|requires|blocked by|after", re.I)),
    ("type", re.compile(r"^(type|kind|category)$", re.I)),
    ("criteria", re.compile(r"acceptance|criteria|test|verification", re.I)),
    ("text", re.compile(r"requirement|description|feature|story|task|item|capability|title|name|what|summary", re.I)),
]


def _table_to_blocks(rows: list[tuple[int, list[str]]], section: Section) -> None:
    """A table of requirements becomes items (one per row); any other table stays text of its section."""
    header = rows[0][1]
    roles: dict[int, str] = {}
    for column, name in enumerate(header):
        for role, pattern in _COLUMN_ROLES:
            if role not in roles.values() and pattern.search(_strip_emphasis(name)):
                roles[column] = role
                break
    body = rows[1:]
    if "text" not in roles.values() or not body:
        for line, cells in rows:
            joined = " — ".join(_strip_emphasis(cell) for cell in cells if cell)
            if joined:
                section.paragraphs.append(Paragraph(text=joined, line=line))
        return
    for line, cells in body:
        fields: dict[str, str] = {}
        text = ""
        label: str | None = None
        for column, cell in enumerate(cells):
            cell_role = roles.get(column)
            value = _strip_emphasis(cell)
            if not value:
                continue
            if cell_role == "text":
                text = value if not text else text + " — " + value
            elif cell_role == "id":
                label = value
            elif cell_role is not None:
                fields[cell_role] = value
        if text:
            section.items.append(Item(text=text, line=line, indent=0, label=label, fields=fields))


def read_document(text: str) -> Section:
    """Parse `text` into a tree of sections rooted at an untitled section holding what precedes the first heading."""
    text = text.replace("\r\n", "\n").replace("\r", "\n").lstrip("\ufeff")
    lines = text.split("\n")
    if lines and lines[0].strip() == "---":
        # YAML front matter: metadata, not requirements
        for index in range(1, min(len(lines), 200)):
            if lines[index].strip() in {"---", "..."}:
                lines = [""] * (index + 1) + lines[index + 1 :]
                break
    markdown_headings = 0
    for index, line in enumerate(lines):
        if (_ATX.match(line) and line.lstrip().startswith("#") and len(line.strip("# \t")) > 0) or (
            index and _SETEXT.match(line) and lines[index - 1].strip() and not _BULLET.match(lines[index - 1])
        ):
            markdown_headings += 1
        if markdown_headings >= 2:
            break
    return _Reader(lines, plain=markdown_headings < 2).run()
