"""The document tree: sections with their lines and template tags, list items with their nesting and checked state,
table rows with their header, lead-in lines as sub-sections, in Markdown and plain text alike."""

from __future__ import annotations

from taskmaster.tasks.planner.document import read_document
from taskmaster.tasks.planner.roles import read_roles

MARKDOWN = """<context>
# Overview
A tool.
</context>
<PRD>
# Stories

- [x] BK-1 Patients log in
- [ ] BK-2 Patients book
    - Blocked by: BK-1
Roadmap:
- Later things

| ID | Need | Priority |
|----|------|----------|
| N1 | Export | Must |

```
- not an item
```
</PRD>
"""

PLAIN = """HABIT TRACKER - brief

WHY
People drop habits.

STORIES
1. As a user I want to create a habit.
2. As a user I want to tick it off. (needs 1)
MUST HAVE: 1, 2

Not now
Sharing.
"""


def test_markdown_tree_keeps_lines_tags_nesting_and_checked_state() -> None:
    document = read_document(MARKDOWN)
    overview, stories = document.root.children
    assert (overview.title, overview.line, overview.tags) == ("Overview", 2, ("context",))
    assert (stories.title, stories.line, stories.tags) == ("Stories", 6, ("prd",))
    done, booking = stories.blocks[:2]
    assert (done.text, done.checked, done.line) == ("BK-1 Patients log in", True, 8)
    assert (booking.checked, [c.text for c in booking.children]) == (False, ["Blocked by: BK-1"])
    (roadmap,) = stories.children
    assert roadmap.pseudo and roadmap.title == "Roadmap"
    later, row, code = roadmap.blocks
    assert later.text == "Later things"
    assert (row.kind, row.cells, row.header, row.line) == (
        "row",
        ("N1", "Export", "Must"),
        ("ID", "Need", "Priority"),
        16,
    )
    assert code.kind == "code" and code.text == "- not an item"
    assert read_roles(document).genre == "tagged template"


def test_plain_text_headings_items_and_content_lines() -> None:
    document = read_document(PLAIN)
    (title,) = document.root.children
    assert title.title == "HABIT TRACKER - brief"
    assert [s.title for s in title.children] == ["WHY", "STORIES", "Not now"]
    stories = title.children[1]
    first, second, must = stories.blocks
    assert (first.kind, first.number, first.line) == ("item", "1", 7)
    assert second.text == "As a user I want to tick it off. (needs 1)"
    assert (must.kind, must.text) == ("text", "MUST HAVE: 1, 2")
    roles = read_roles(document)
    assert [roles.role(s) for s in title.children] == ["context", "requirement", "out_of_scope"]
    assert roles.genre == "story brief"
