"""Chunking a PRD along its headings: bounded size, whole paragraphs, heading paths."""

from __future__ import annotations

import re

import pytest

from taskmaster.tasks.planner.chunking import NO_HEADING, chunk_document, outline

MARKDOWN = """\
Intro before any heading.

# Product

Overview.

## Accounts

Users sign up.

```
# not a heading inside a fence

still code
```

## Billing

Invoices monthly.

Setext Title
============

Under a Setext heading.

### Refunds

Refunds within 14 days.
"""


def paragraphs(text: str) -> list[str]:
    return [p.strip() for p in re.split(r"\n\s*\n", text) if p.strip()]


def test_markdown_headings_give_each_chunk_its_heading_path_and_fences_hide_headings() -> None:
    chunks = chunk_document(MARKDOWN, max_chars=100_000)
    assert [c.heading_path for c in chunks] == [("Product",), ("Setext Title",)]
    first, second = chunks
    assert first.sections == ((), ("Product",), ("Product", "Accounts"), ("Product", "Billing"))
    assert "# not a heading inside a fence\n\nstill code" in first.text
    assert second.sections == (("Setext Title",), ("Setext Title", "Refunds"))
    assert outline(MARKDOWN) == [
        ("Product",),
        ("Product", "Accounts"),
        ("Product", "Billing"),
        ("Setext Title",),
        ("Setext Title", "Refunds"),
    ]


def test_small_limits_split_between_sections_and_never_inside_a_paragraph() -> None:
    chunks = chunk_document(MARKDOWN, max_chars=100)
    assert all(len(c.text) <= 100 for c in chunks)
    # Every paragraph of the document (headings aside) is found whole in exactly one chunk.
    body = [p for p in paragraphs(MARKDOWN) if not re.match(r"^#|^Setext", p) and "```" not in p]
    for paragraph in body:
        assert sum(paragraph in c.text for c in chunks) == 1, paragraph
    assert [c.section for c in chunks][:2] == ["Product", "Product > Accounts"]


def test_a_long_section_is_cut_into_parts_that_repeat_where_they_belong() -> None:
    text = "# Spec\n\n## Search\n\n" + "\n\n".join(f"Requirement {i}: " + "x" * 180 for i in range(30))
    chunks = chunk_document(text, max_chars=1_000)
    assert len(chunks) > 5
    assert {c.heading_path for c in chunks} == {("Spec", "Search")}
    assert [c.part for c in chunks] == list(range(1, len(chunks) + 1))
    assert {c.parts for c in chunks} == {len(chunks)}
    assert chunks[1].text.startswith("## Spec > Search (continued)\n\nRequirement")
    assert all(len(c.text) <= 1_000 for c in chunks)
    found = [int(n) for c in chunks for n in re.findall(r"Requirement (\d+):", c.text)]
    assert found == list(range(30))


def test_a_paragraph_longer_than_the_limit_stays_whole_in_a_chunk_of_its_own() -> None:
    giant = "word " * 400
    chunks = chunk_document(f"# A\n\nshort\n\n{giant}\n\nafter", max_chars=500)
    assert [giant.strip() in c.text for c in chunks].count(True) == 1
    assert [c.text.count("short") + c.text.count("after") for c in chunks] == [1, 0, 1]


def test_plain_text_headings_are_recognised_when_there_is_no_markdown() -> None:
    text = """\
PRODUCT REQUIREMENTS

This document describes the shop.

1 Accounts

Users sign up.

1.1 Login Flow

1. Users can sign in with email.
2. Users can reset a password.

2 Payments

Cards are accepted.
"""
    chunks = chunk_document(text, max_chars=100)
    assert [c.heading_path for c in chunks] == [
        ("PRODUCT REQUIREMENTS",),
        ("1 Accounts",),
        ("1 Accounts", "1.1 Login Flow"),
        ("2 Payments",),
    ]
    assert "1. Users can sign in with email." in chunks[2].text


def test_a_document_without_headings_is_chunked_by_paragraphs() -> None:
    text = "\n\n".join(f"the service must do thing {i} well and fast." for i in range(40))
    chunks = chunk_document(text, max_chars=300)
    assert len(chunks) > 3
    assert {c.section for c in chunks} == {NO_HEADING}
    assert "\n\n".join(c.text for c in chunks) == text


def test_a_tiny_limit_is_refused() -> None:
    with pytest.raises(ValueError, match="at least 100"):
        chunk_document("text", max_chars=10)
