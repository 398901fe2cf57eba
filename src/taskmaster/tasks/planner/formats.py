"""PRD files to text the planner reads: Markdown and plain text as they are; HTML and .docx turned into Markdown
(headings, lists, tables kept); PDF through pypdf's text extraction. Anything else is refused by name."""

from __future__ import annotations

import io
import re
from html.parser import HTMLParser
from pathlib import PurePath

from taskmaster.core.errors import InvalidInput

__all__ = ["SUPPORTED", "read_prd"]

TEXT_SUFFIXES = frozenset({"", ".md", ".markdown", ".mdown", ".txt", ".text", ".prd", ".rst"})
SUPPORTED = ".md, .markdown, .txt, .html, .htm, .docx, .pdf"


def read_prd(data: bytes, name: str) -> str:
    """The text of a PRD file named `name`; raises `InvalidInput` for an unknown format or an unreadable file."""
    suffix = PurePath(name).suffix.lower()
    if suffix in TEXT_SUFFIXES:
        return _decode(data, name)
    if suffix in {".html", ".htm", ".xhtml"}:
        return html_to_markdown(_decode(data, name))
    if suffix == ".docx":
        return _docx(data, name)
    if suffix == ".pdf":
        return _pdf(data, name)
    raise InvalidInput(f"{name}: cannot read {suffix} files; a PRD must be one of {SUPPORTED}", field="file")


def _decode(data: bytes, name: str) -> str:
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise InvalidInput(f"{name} is not UTF-8 text (byte {exc.start} cannot be decoded)", field="file") from None


def _docx(data: bytes, name: str) -> str:
    from docx import Document
    from docx.oxml.ns import qn

    try:
        document = Document(io.BytesIO(data))
    except Exception as exc:  # python-docx raises zipfile, lxml and its own errors for a damaged file
        raise InvalidInput(f"{name} is not a readable .docx file ({type(exc).__name__})", field="file") from None
    lines: list[str] = []
    body = document.element.body
    for child in body.iterchildren():
        if child.tag == qn("w:p"):
            lines.extend(_docx_paragraph(child, document))
        elif child.tag == qn("w:tbl"):
            lines.extend(_docx_table(child))
    return "\n".join(lines).strip() + "\n"


def _docx_paragraph(element: object, document: object) -> list[str]:
    from docx.text.paragraph import Paragraph

    paragraph = Paragraph(element, document)  # type: ignore[arg-type]
    text = paragraph.text.strip()
    if not text:
        return []
    style = (paragraph.style.name if paragraph.style is not None else "") or ""
    heading = re.match(r"Heading (\d)", style)
    if style == "Title":
        return ["", f"# {text}", ""]
    if heading:
        return ["", "#" * min(int(heading.group(1)) + 1, 6) + f" {text}", ""]
    if style.startswith("List Number"):
        return [f"1. {text}"]
    if style.startswith("List"):
        return [f"- {text}"]
    return ["", text, ""]


def _docx_table(element: object) -> list[str]:
    from docx.oxml.ns import qn

    rows: list[list[str]] = []
    for row in element.iter(qn("w:tr")):  # type: ignore[attr-defined]
        cells = []
        for cell in row.iter(qn("w:tc")):
            texts = [node.text or "" for node in cell.iter(qn("w:t"))]
            cells.append("".join(texts).replace("|", "/").strip())
        rows.append(cells)
    if not rows:
        return []
    width = max(len(r) for r in rows)
    out = ["", "| " + " | ".join(rows[0] + [""] * (width - len(rows[0]))) + " |", "|" + "---|" * width]
    out += ["| " + " | ".join(r + [""] * (width - len(r))) + " |" for r in rows[1:]]
    return [*out, ""]


def _pdf(data: bytes, name: str) -> str:
    from pypdf import PdfReader
    from pypdf.errors import PdfReadError

    try:
        reader = PdfReader(io.BytesIO(data))
        pages = [page.extract_text() or "" for page in reader.pages]
    except (PdfReadError, ValueError, KeyError, OSError) as exc:
        raise InvalidInput(f"{name} is not a readable PDF ({exc})", field="file") from None
    text = "\n".join(pages).strip()
    if not text:
        raise InvalidInput(f"{name} holds no text (a scanned PDF needs OCR first)", field="file")
    return text + "\n"


class _HtmlToMarkdown(HTMLParser):
    """Block structure of an HTML page as Markdown: headings, paragraphs, nested lists, tables."""

    _BLOCKS = frozenset({"p", "div", "section", "article", "br", "tr", "table", "ul", "ol", "blockquote", "pre"})
    _SKIP = frozenset({"script", "style", "head", "title", "nav", "footer", "template"})

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.out: list[str] = []
        self.line: list[str] = []
        self.lists: list[list[int]] = []
        self.skip = 0
        self.row: list[str] | None = None
        self.cell: list[str] | None = None
        self.header_done = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in self._SKIP:
            self.skip += 1
            return
        if re.fullmatch(r"h[1-6]", tag):
            self.flush()
            self.line.append("#" * int(tag[1]) + " ")
        elif tag in {"ul", "ol"}:
            self.flush()
            self.lists.append([1 if tag == "ol" else 0])
        elif tag == "li":
            self.flush()
            depth = max(len(self.lists) - 1, 0)
            counter = self.lists[-1] if self.lists else [0]
            marker = f"{counter[0]}." if counter[0] else "-"
            if counter[0]:
                counter[0] += 1
            self.line.append("    " * depth + marker + " ")
        elif tag == "table":
            self.flush()
            self.header_done = False
        elif tag == "tr":
            self.row = []
        elif tag in {"td", "th"}:
            self.cell = []
        elif tag in {"strong", "b"}:
            self.text("**")
        elif tag in self._BLOCKS:
            self.flush()

    def handle_endtag(self, tag: str) -> None:
        if tag in self._SKIP:
            self.skip = max(self.skip - 1, 0)
            return
        if tag in {"strong", "b"}:
            self.text("**")
        elif tag in {"td", "th"} and self.row is not None and self.cell is not None:
            self.row.append(" ".join("".join(self.cell).split()).replace("|", "/"))
            self.cell = None
        elif tag == "tr" and self.row is not None:
            self.out.append("| " + " | ".join(self.row) + " |")
            if not self.header_done:
                self.out.append("|" + "---|" * len(self.row))
                self.header_done = True
            self.row = None
        elif tag in {"ul", "ol"}:
            self.flush()
            if self.lists:
                self.lists.pop()
            if not self.lists:
                self.out.append("")
        elif tag == "li" or re.fullmatch(r"h[1-6]", tag) or tag in self._BLOCKS:
            self.flush()
            if not self.lists:
                self.out.append("")

    def handle_data(self, data: str) -> None:
        if not self.skip:
            self.text(data)

    def text(self, data: str) -> None:
        if self.cell is not None:
            self.cell.append(data)
        else:
            self.line.append(data)

    def flush(self) -> None:
        text = "".join(self.line)
        self.line = []
        lead = len(text) - len(text.lstrip(" "))
        text = " " * lead + " ".join(text.split())
        if text.strip() and text.strip() not in {"-", "#"}:
            self.out.append(text)


def html_to_markdown(html: str) -> str:
    parser = _HtmlToMarkdown()
    parser.feed(html)
    parser.close()
    parser.flush()
    text = "\n".join(parser.out)
    return re.sub(r"\n{3,}", "\n\n", text).strip() + "\n"
