"""PRD files in other formats reach the planner as text with their structure; other formats are refused by name."""

from __future__ import annotations

from pathlib import Path

import pytest

from taskmaster.core.errors import InvalidInput
from taskmaster.tasks.planner.document import read_document
from taskmaster.tasks.planner.formats import html_to_markdown, read_prd

PRDS = Path(__file__).resolve().parents[1] / "prds"


def test_docx_headings_lists_and_tables_become_markdown() -> None:
    text = read_prd((PRDS / "warehouse-returns.docx").read_bytes(), "warehouse-returns.docx")
    assert "# Warehouse returns desk" in text
    assert "## Requirements" in text
    assert "1. RT-2 Clerks grade each returned item as resellable, damaged or missing. Depends on RT-1." in text
    assert "| RT-6 | P2 |" in text
    titles = [s.title for s in read_document(text).sections()]
    assert titles[1:] == ["Warehouse returns desk", "Background", "Stakeholders", "Requirements", "Priorities",
                          "Out of scope"]  # fmt: skip


def test_pdf_text_keeps_its_lines() -> None:
    text = read_prd((PRDS / "kiosk-ordering.pdf").read_bytes(), "kiosk-ordering.pdf")
    lines = text.splitlines()
    assert lines[0] == "KIOSK ORDERING - requirements brief"
    assert "2. Let guests build an order and change quantities before paying. (needs 1)" in lines


def test_html_becomes_markdown_with_nested_lists_and_tables() -> None:
    html = (
        "<html><head><title>x</title><style>p{}</style></head><body><h1>Plan</h1><p>Intro <b>bold</b>.</p>"
        "<ul><li>One<ul><li>Blocked by: Two</li></ul></li><li>Two</li></ul>"
        "<table><tr><th>ID</th><th>Need</th></tr><tr><td>N1</td><td>Export</td></tr></table></body></html>"
    )
    assert html_to_markdown(html) == (
        "# Plan\n\nIntro **bold**.\n\n- One\n    - Blocked by: Two\n- Two\n\n"
        "| ID | Need |\n|---|---|\n| N1 | Export |\n"
    )


def test_other_formats_and_bad_files_get_a_clear_error() -> None:
    with pytest.raises(InvalidInput, match=r"notes.odt: cannot read \.odt files; a PRD must be one of"):
        read_prd(b"PK\x03\x04", "notes.odt")
    with pytest.raises(InvalidInput, match=r"prd.md is not UTF-8 text \(byte 2"):
        read_prd(b"ok\xff", "prd.md")
    with pytest.raises(InvalidInput, match=r"broken.docx is not a readable .docx file"):
        read_prd(b"not a zip", "broken.docx")
    with pytest.raises(InvalidInput, match=r"broken.pdf is not a readable PDF"):
        read_prd(b"%PDF-1.4 nothing else", "broken.pdf")
