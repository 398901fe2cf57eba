"""The offline planner on a large PRD, as a ratio against a baseline measured in the same run.

  baseline     reading the PRD file from disk and decoding it (`formats.read_prd`): what any planner pays
  markdown     a ~1 MB Markdown PRD built from the corpus's shapes: feature areas with ID'd requirements and
               "Depends on" phrases, user stories with "Needs", checkbox epics with "Blocked by", priority tables,
               a roadmap with phases and a logical dependency chain; plus context sections that are not work
  plain        the same content as a plain-text brief (capitalised headings, numbered items)
Goal (issue 18): a 1 MB PRD parses in under 2 s. Reported: seconds per 100 KB for reading and for parsing.

Run: ./dev python bench/planner.py [--size-kb 1024] [--runs 3]
"""

from __future__ import annotations

import argparse
import random
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from taskmaster.tasks.planner.formats import read_prd
from taskmaster.tasks.planner.offline import plan_prd

_VERBS = ["Export", "Import", "Search", "Archive", "Share", "Schedule", "Approve", "Render", "Sync", "Validate"]
_THINGS = ["invoices", "reports", "contacts", "bookings", "orders", "tickets", "notes", "assets", "rounds", "plans"]


def markdown_prd(size: int, seed: int = 3) -> str:
    """A Markdown PRD of about `size` bytes, in the shapes real PRDs use."""
    rng = random.Random(seed)
    parts = ["# Operations platform — product requirements\n\n## Summary\n\nOne platform for the back office.\n\n"]
    parts.append("## Personas\n\n- **Clerk**: enters data.\n- **Manager**: approves.\n\n## Requirements\n\n")
    n = 0
    area = 0
    while sum(len(p) for p in parts) < size * 0.97:
        area += 1
        parts.append(f"### {area}. Area {area}: {rng.choice(_THINGS)}\n\n")
        for _ in range(rng.randint(4, 12)):
            n += 1
            verb, thing = rng.choice(_VERBS), rng.choice(_THINGS)
            line = f"- **FR-{n}** {verb} {thing} of area {area} by customer segment {rng.randint(1, 99)}."
            if n > 1 and rng.random() < 0.6:
                line += f" Depends on FR-{rng.randint(max(1, n - 30), n - 1)}."
            line += rng.choice(["", " (P0)", " (P1)", " (low priority)", " Priority: Should."])
            parts.append(line + "\n")
            if rng.random() < 0.3:
                parts.append(f"  - Acceptance: {thing} of area {area} appear within 2 s.\n")
        if area % 5 == 0:
            parts.append(f"\n#### Stories for area {area}\n\n")
            for s in range(3):
                parts.append(f"- [ ] As a clerk I want to {rng.choice(_VERBS).lower()} {rng.choice(_THINGS)} {s}.\n")
                parts.append(f"    - Blocked by: FR-{max(1, n - s)}\n")
        parts.append("\n")
    parts.append("## Priorities\n\n| Requirement | Priority |\n|---|---|\n")
    parts.extend(f"| FR-{i} | {rng.choice(['Must', 'Should', 'Could'])} |\n" for i in range(1, n, 7))
    parts.append("\n## Roadmap\n\n")
    for phase in range(1, 6):
        members = ", ".join(f"FR-{i}" for i in range(phase, n, 37))
        parts.append(f"- Phase {phase}: {members}\n")
    parts.append("\n## Logical Dependency Chain\n\n")
    parts.extend(f"{i}. Area {i} {_THINGS[i % 10]} (depends on {i - 1})\n" for i in range(2, min(area, 60)))
    parts.append("\n## Open questions\n\n- Who owns the data?\n")
    return "".join(parts)


def plain_prd(markdown: str) -> str:
    """The same document as a plain-text brief."""
    out = []
    for line in markdown.splitlines():
        if line.startswith("#"):
            out += ["", line.lstrip("# ").upper(), ""]
        else:
            out.append(line.replace("**", "").replace("- [ ] ", "- "))
    return "\n".join(out) + "\n"


def best(action: Callable[[], object], runs: int) -> float:
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        action()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size-kb", type=int, default=1024)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    size = args.size_kb * 1024
    text = markdown_prd(size)
    with tempfile.TemporaryDirectory() as tmp:
        for name, body in (("prd.md", text), ("prd.txt", plain_prd(text))):
            path = Path(tmp) / name
            path.write_text(body)
            kb100 = len(body.encode()) / (100 * 1024)
            read = best(lambda path=path: read_prd(path.read_bytes(), path.name), args.runs)
            content = read_prd(path.read_bytes(), path.name)
            plan = plan_prd(content, source=name)
            parse = best(lambda content=content, name=name: plan_prd(content, source=name), args.runs)
            count = sum(1 + len(t.subtasks) for t in plan.tasks)
            print(
                f"{name}: {len(body) / 1024:.0f} KB, {count} tasks; read {read / kb100 * 1000:.2f} ms/100KB; "
                f"parse {parse / kb100 * 1000:.1f} ms/100KB ({parse:.2f} s in all; x{parse / read:.0f} the read); "
                f"goal < 2 s: {'met' if parse < 2 else 'MISSED'}"
            )


if __name__ == "__main__":
    main()
