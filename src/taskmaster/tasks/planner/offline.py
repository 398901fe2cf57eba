"""The offline planner: a deterministic reading of a PRD's structure and wording into a task graph.

No model and no network: headings give sections, list items give requirements, the words give priority, type and
dependencies. Used when no LLM is configured, and as the baseline the LLM planners are compared against.
"""

from __future__ import annotations

import heapq
import itertools
import math
import re
from collections import defaultdict
from collections.abc import Iterator

from taskmaster.core.errors import InvalidInput
from taskmaster.tasks.planner.references import (
    RELATION,
    STRONG,
    ReferenceIndex,
    dependency_phrases,
)
from taskmaster.tasks.planner.sections import Item, Section, read_document, roman_or_word_to_number
from taskmaster.tasks.planner.units import DependencyGraph, Unit, sinks
from taskmaster.tasks.planner.wording import (
    Vocabulary,
    clean_inline,
    complexity_of,
    description_of,
    first_sentence,
    heading_title,
    make_title,
    plain_heading,
    priority_of,
    section_priority,
    type_of,
    word_priority,
)
from taskmaster.tasks.schemas import PlannedTask, TaskStatus, TaskType

__all__ = ["parse_prd"]

# --- what a heading says about its section ----------------------------------------------------------------------------

_CONTEXT = re.compile(
    r"^(?:the )?(?:intro(?:duction)?|overview|background|context|summary|executive summary|tl;?dr|purpose|"
    r"problem(?: statement)?|motivation|vision|goals?|objectives?|non-?goals?|out of scope|not in scope|"
    r"scope exclusions|exclusions|glossary|definitions?|terminology|terms|open questions?|questions|open issues|"
    r"appendix|appendices|references?|revision history|change ?log|document (?:history|info\w*|control)|"
    r"version history|stakeholders?|personas?|target (?:users|audience|customers)|audience|users and personas|"
    r"success metrics|metrics|kpis?|measures of success|risks?|assumptions?|constraints?|timeline|schedule|"
    r"table of contents|contents|toc|faq|notes?|approvals?|sign-?off|team|contacts?|authors?|owners?|about|"
    r"related (?:work|documents)|competitive analysis|competitors|market|user research|research|"
    r"dependencies|external dependencies|third-party dependencies|alternatives considered|prior art|"
    r"future considerations|discussion|rationale|metadata|status|not doing|won'?t do|not planned)"
    r"(?P<rest>(?:\s*(?:and|&|/|,|:|-|—|–|\(|of|for|to|vs\.?)(?:\s|$).*)?)$"
    r"|^(?:the )?(?:appendix|appendices)\b(?P<appendix>.*)$",
    re.I,
)
_REQUIREMENT_WORDS = re.compile(r"\b(requirements?|features?|stories|tasks|scope|deliverables|must|should)\b", re.I)
_CRITERIA = re.compile(
    r"^(?:acceptance(?: criteria| tests?| checklist)?|definition of done|done criteria|exit criteria|"
    r"success criteria|acceptance and testing|verification|how to (?:test|verify)|test (?:plan|strategy|cases)|"
    r"testing (?:plan|strategy|notes)|qa (?:plan|checklist)|validation)\b",
    re.I,
)
_GENERIC = re.compile(
    r"^(?:(?:functional|non-?functional|technical|system|product|core|key|detailed|business|user|mvp|"
    r"v\d+(?:\.\d+)?|general|other|additional|initial|high-level|main|must|should|could|optional|"
    r"security|performance|quality|operational|platform)\s+)*"
    r"(?:requirements?|features?(?: list)?|feature set|capabilities|user stories|stories|use cases|scope|"
    r"in scope|tasks|work items|backlog|deliverables|bugs?|bug ?fix(?:es)?|bugs to fix|known (?:bugs|issues)|"
    r"issues|fixes|improvements|enhancements|to-?dos?|must[- ]haves?|should[- ]haves?|could[- ]haves?|"
    r"nice[- ]to[- ]haves?|won'?t[- ]haves?|p[0-4]|(?:high|medium|low)[- ]priority|specs?|specifications?|"
    r"functionality|epics?|milestones?|phases?|roadmap|plan|implementation(?: plan)?|mvp|stretch goals?|"
    r"future(?: work)?|later|chores?|maintenance|tech(?:nical)? debt|testing|tests|docs|documentation|"
    r"requirements and features|features and requirements|work|changes|what to build|"
    r"what we(?:'| a)re building|the plan|release plan|delivery plan|nfrs?|quality attributes|what we want|"
    r"what we need|wants|wish ?list|asks|ideas|wants and needs)"
    r"(?:\s+(?:in|for|of|to|from|at|on|found|reported|we|that|left|remaining)\b.*)?$",
    re.I,
)
_PHASE_KEYWORDS = frozenset({"phase", "milestone", "stage", "sprint", "iteration", "release", "epic", "part"})
_SETUP_SECTION = re.compile(
    r"\b(set ?up|foundations?|infrastructure|scaffold(?:ing)?|bootstrap(?:ping)?|groundwork|prerequisites|"
    r"getting started|environment|tooling|project skeleton|phase 0)\b",
    re.I,
)
_SETUP_TITLE = re.compile(
    r"^(set up|setup|initiali[sz]e|bootstrap|scaffold|create the (?:project|repo|repository|skeleton|monorepo)|"
    r"configure ci|provision)\b",
    re.I,
)
_FIELD_CHILD = re.compile(
    r"^(?:\*\*|__)?(priority|prio|moscow|severity|depends on|dependencies|dependency|requires|prerequisites?|"
    r"blocked by|after|type|kind|owner|assignee|acceptance(?: criteria)?|ac|test|tests|verify|verification|"
    r"done when)(?:\*\*|__)?\s*:\s*(?:\*\*|__)?\s*(.+)$",
    re.I,
)
_CRITERION_CHILD = re.compile(
    r"^(?:given\b.*\bthen\b|verify\b|test that\b|check that\b|tests? (?:should|must)\b|ensure that .*\btests?\b)",
    re.I,
)
_ACTION = re.compile(
    r"\b(must|shall|should|will|needs? to|has to|can|could|may)\b|^(?:add|allow|build|create|implement|support|"
    r"enable|provide|display|show|send|store|save|generate|validate|write|fix|remove|delete|update|integrate|"
    r"configure|set up|deploy|track|notify|export|import|sync|cache|encrypt|log|expose|persist|document|test|"
    r"publish|install|handle|parse|render|retry|schedule|migrate|refactor|replace|rename|upload|download|record|"
    r"report|reject|block|prevent|detect|warn|return|accept|load|fetch|let|make|ensure|introduce|define|design)\b",
    re.I,
)


_WONT = re.compile(r"won'?t", re.I)


def _render_item(item: Item, depth: int = 0) -> list[str]:
    lines = [("  " * depth) + "- " + clean_inline(item.text)]
    for child in item.children:
        lines.extend(_render_item(child, depth + 1))
    return lines


def _item_words(item: Item) -> int:
    return len(item.text.split()) + sum(_item_words(child) for child in item.children)


def _item_text(item: Item) -> str:
    return " ".join([item.text, *(_item_text(child) for child in item.children)])


class _Planner:
    """Holds one document's sections and units through the passes of `parse_prd`."""

    def __init__(self, root: Section, vocab: Vocabulary, source: str | None) -> None:
        self.root = root
        self.vocab = vocab
        self.source = source
        self.units: list[Unit] = []
        """Top-level units in document order."""
        self.sections = root.walk()
        self.role: dict[Section, str] = {}
        self.paths: dict[Section, tuple[str, ...]] = {}
        self.section_units: dict[Section, list[Unit]] = defaultdict(list)
        """Top-level units made under each section (directly)."""
        self.glossary: list[tuple[str, str]] = []
        self.global_criteria: list[tuple[str, Section]] = []
        self.relations: list[str] = []
        self.counter = 0
        self.doc_title: Section | None = None

    # --- classification -------------------------------------------------------------------------------------------

    def classify(self) -> None:
        """Give each section a role: requirements, context (intro, glossary, non-goals …) or criteria."""
        if len(self.sections) > 2:
            first = self.sections[1]
            short = sum(len(p.text) for p in first.paragraphs) < 300
            if not first.items and short and (first.children or len(self.root.children) > 1):
                # the document's title line (and a subtitle); what follows is the document
                self.doc_title = first
        for section in self.sections:
            self.paths[section] = tuple(clean_inline(t) for t in section.path)
            if section is self.root:
                self.role[section] = "requirements"
                continue
            parent_role = self.role.get(section.parent, "requirements") if section.parent else "requirements"
            title = plain_heading(section.title)
            if parent_role in {"context", "criteria"}:
                self.role[section] = parent_role
                continue
            if _CRITERIA.match(title):
                self.role[section] = "criteria"
                continue
            context = _CONTEXT.match(title)
            if context and section is not self.doc_title and not _REQUIREMENT_WORDS.search(context.group("rest") or ""):
                self.role[section] = "context"
                continue
            self.role[section] = "requirements"

    def is_generic(self, section: Section) -> bool:
        """Whether the heading only groups requirements ("Requirements", "Phase 2", "Known bugs")."""
        if section is self.root or section.keyword in _PHASE_KEYWORDS:
            return True
        title = plain_heading(section.title)
        title = re.sub(r"^(phase|milestone|stage|sprint|iteration|release|part|epic)\s+\S+\s*[:.)-]?\s*", "", title)
        return bool(_GENERIC.match(title)) or not title

    def requirement_children(self, section: Section) -> list[Section]:
        return [child for child in section.children if self.role[child] == "requirements"]

    # --- building units -------------------------------------------------------------------------------------------

    def new_unit(self, section: Section, item: Item | None, text: str, line: int) -> Unit:
        self.counter += 1
        unit = Unit(order=self.counter, line=line, section=section, item=item, text=text)
        unit.members = [unit]
        return unit

    def build(self) -> None:
        """Make the units: one per requirement item, or one per feature section with its items as subtasks."""
        leaves = [
            s
            for s in self.sections
            if self.role[s] == "requirements"
            and not self.requirement_children(s)
            and (s.items or s.paragraphs or s.fields or s is not self.root)
        ]
        few_leaves = len(leaves) < 3
        for section in self.sections:
            role = self.role[section]
            if role == "context":
                self.collect_context(section)
                continue
            if role == "criteria":
                continue
            self.build_section(section, leaf=section in leaves, few_leaves=few_leaves)

    def collect_context(self, section: Section) -> None:
        title = plain_heading(section.title)
        if re.match(r"^(glossary|definitions?|terminology|terms)\b", title):
            for item in section.items:
                self.add_definition(item.text)
            for paragraph in section.paragraphs:
                self.add_definition(paragraph.text)
        if re.match(r"^(dependencies|external dependencies)\b", title) or "depends" in section.fields:
            self.relations.extend(item.text for item in section.items)
            self.relations.extend(p.text for p in section.paragraphs)

    def add_definition(self, text: str) -> None:
        match = re.match(r"^\s*(?:\*\*|__)?([^:—–=]{1,60}?)(?:\*\*|__)?\s*(?::|—|–|=|\s-\s)\s*(.+)$", text)
        if match:
            term = clean_inline(match.group(1)).strip()
            if 1 <= len(term.split()) <= 5:
                self.glossary.append((term, clean_inline(match.group(2)).strip()))

    def build_section(self, section: Section, *, leaf: bool, few_leaves: bool) -> None:
        """A generic or crowded section gives a task per item; a feature section with a few items, one task."""
        items: list[Item] = []
        for item in section.items:
            field_line = _FIELD_CHILD.match(clean_inline(item.text))
            if field_line and not item.children and len(field_line.group(2).split()) <= 12:
                # "- Priority: high" among the bullets describes the section, it is not a requirement
                section.fields.setdefault(_child_role(field_line.group(1)), []).append(field_line.group(2).strip())
            else:
                items.append(item)
        requirement_paragraphs = [p for p in section.paragraphs if _ACTION.search(p.text) and len(p.text) > 20]
        generic = self.is_generic(section)
        if not leaf:
            # a section with subsections: its own list items are requirements in their own right
            for item in items:
                self.add_item_unit(section, item)
            if not items and generic and len(requirement_paragraphs) >= 2 and section is not self.root:
                for paragraph in requirement_paragraphs:
                    self.add_item_unit(section, Item(text=paragraph.text, line=paragraph.line, indent=0))
            return
        if not items and generic and len(requirement_paragraphs) >= 2:
            items = [Item(text=p.text, line=p.line, indent=0) for p in requirement_paragraphs]
            for paragraph in requirement_paragraphs:
                section.paragraphs.remove(paragraph)
        if not items:
            if section is self.doc_title or (section is self.root and not section.paragraphs):
                return
            if generic and not requirement_paragraphs and section is not self.root:
                # "## Scope" with a sentence of prose: context, not work
                return
            self.add_section_unit(section, [])
            return
        rich = sum(_item_words(item) for item in items) / len(items) >= 22 or any(
            len([c for c in item.children if _ACTION.search(c.text)]) >= 2 for item in items
        )
        if generic or few_leaves or len(items) > 7 or rich:
            for item in items:
                self.add_item_unit(section, item)
        else:
            self.add_section_unit(section, items)

    def add_item_unit(self, section: Section, item: Item) -> None:
        unit = self.item_unit(section, item, parent=None)
        self.units.append(unit)
        self.section_units[section].append(unit)

    def item_unit(self, section: Section, item: Item, parent: Unit | None) -> Unit:
        """A unit for a list item: `Key: value` children become fields, action children subtasks, the rest details."""
        unit = self.new_unit(section, item, item.text, item.line)
        unit.parent = parent
        if item.label:
            unit.labels.add(item.label.upper())
        for key, value in item.fields.items():
            unit.fields.setdefault(key, []).append(value)
        actions: list[Item] = []
        details: list[Item] = []
        for child in item.children:
            match = _FIELD_CHILD.match(clean_inline(child.text))
            if match and not child.children:
                key = match.group(1).lower()
                role = _child_role(key)
                unit.fields.setdefault(role, []).append(match.group(2).strip())
                continue
            if _CRITERION_CHILD.match(clean_inline(child.text)):
                unit.criteria.append(clean_inline(_item_text(child)))
                continue
            (actions if _ACTION.search(child.text) else details).append(child)
        if parent is None and len(actions) >= 2:
            for child in actions:
                unit.children.append(self.item_unit(section, child, parent=unit))
        else:
            details = [c for c in item.children if c in actions or c in details]
        unit.body = [clean_inline(item.text)]
        for child in details:
            unit.body.extend(_render_item(child))
        unit.fields.setdefault("criteria", [])
        unit.criteria.extend(unit.fields.pop("criteria"))
        return unit

    def add_section_unit(self, section: Section, items: list[Item]) -> None:
        """One task for a whole feature section; its items (when more than one) are its subtasks."""
        text = " ".join(p.text for p in section.paragraphs)
        unit = self.new_unit(section, None, text, section.line)
        unit.is_section_task = True
        for key, values in section.fields.items():
            unit.fields.setdefault(key, []).extend(values)
        unit.criteria.extend(unit.fields.pop("criteria", []))
        if section.number:
            unit.labels.add(section.number)
        if len(items) == 1:
            only = items[0]
            unit.text = (text + " " + _item_text(only)).strip()
            unit.body = [clean_inline(p.text) for p in section.paragraphs] + _render_item(only)
            if only.label:
                unit.labels.add(only.label.upper())
        else:
            unit.body = [clean_inline(p.text) for p in section.paragraphs]
            for item in items:
                unit.children.append(self.item_unit(section, item, parent=unit))
        self.units.append(unit)
        self.section_units[section].append(unit)

    # --- wording ----------------------------------------------------------------------------------------------------

    def describe(self) -> None:
        # parents first (children inherit their priority), then the section-level summaries that need the children
        for unit in self.all_units():
            self.describe_unit(unit)
        for unit in self.units:
            if unit.is_section_task and unit.children and not unit.text:
                names = [c.title[0].lower() + c.title[1:] for c in unit.children[:4]]
                more = "; …" if len(unit.children) > 4 else ""
                unit.description = f"{clean_inline(unit.section.title)}: " + "; ".join(names) + more + "."
        for unit in self.units:
            if unit.is_section_task and unit.children and not unit.explicit_priority:
                unit.priority = min(child.priority for child in unit.children)
            if unit.is_section_task and unit.children and all(c.deferred for c in unit.children):
                unit.deferred = True

    def describe_unit(self, unit: Unit) -> None:
        """Title, type, description, priority and complexity from the unit's own words and its headings."""
        path = self.paths[unit.section]
        own_text = unit.text if unit.item is None else unit.item.text
        explicit_type = unit.fields["type"][0] if unit.fields.get("type") else None
        hint: TaskType | None = "bug" if type_of("", own_text, path, explicit_type) == "bug" else None
        if unit.is_section_task and unit.section is self.root:
            unit.title = make_title(unit.text, self.vocab, type_hint=hint)
        elif unit.is_section_task:
            unit.title = heading_title(unit.section.title, self.vocab, type_hint=hint)
        else:
            unit.title = make_title(own_text, self.vocab, type_hint=hint)
        unit.type = type_of(unit.title, own_text, path, explicit_type)
        if unit.is_section_task:
            lead = first_sentence(unit.text) if unit.text else ""
            if lead:
                unit.description = description_of(unit.text)
            elif unit.children:
                unit.description = ""
            else:
                unit.description = description_of(unit.text or unit.section.title)
        else:
            unit.description = description_of(own_text)
        # priority: explicit field, then the wording, then the headings above, then the parent
        level: int | None = None
        deferred = False
        for value in unit.fields.get("priority", []):
            level = word_priority(value) or (int(value) if value.strip().isdigit() and 1 <= int(value) <= 5 else None)
            if level:
                deferred = level == 5 and bool(_WONT.search(value))
                break
        if level is None:
            level, deferred = priority_of(own_text if unit.item is not None else unit.section.title + " " + own_text)
        if level is None:
            node: Section | None = unit.section
            while node is not None and level is None:
                level, deferred = section_priority(node.title) if node.title else (None, False)
                node = node.parent
        if level is None and unit.parent is not None and unit.parent.explicit_priority:
            level, deferred = unit.parent.priority, unit.parent.deferred
        unit.explicit_priority = level is not None
        unit.priority = level or 3
        unit.deferred = deferred
        all_text = unit.text if unit.item is None else _item_text(unit.item)
        if unit.is_section_task:
            all_text = " ".join([unit.text, *(_item_text(c.item) for c in unit.children if c.item)])
        unit.complexity = complexity_of(all_text, len(unit.children) or max(0, len(unit.body) - 1))

    def all_units(self) -> Iterator[Unit]:
        for unit in self.units:
            yield unit
            yield from unit.descendants()

    # --- criteria and context ---------------------------------------------------------------------------------------

    def make_index(self) -> ReferenceIndex:
        index = ReferenceIndex(
            list(self.all_units()), [s for s in self.sections if self.role[s] == "requirements"], self.vocab
        )
        index.section_members = {s: self.units_under(s) for s in self.sections}
        return index

    def attach_criteria(self, index: ReferenceIndex) -> None:
        """Acceptance criteria go to the test strategy of the unit they are about (or the whole scope)."""
        for section in self.sections:
            if self.role[section] != "criteria" or (section.parent and self.role[section.parent] == "criteria"):
                continue
            scope_section = section.parent or self.root
            scope = [u for s in scope_section.walk() for u in self.section_units.get(s, [])]
            whole_doc = scope_section is self.root or (
                scope_section.parent is self.root and not scope_section.paragraphs
            )
            if whole_doc or not scope:
                scope = list(self.units)
            for sub in section.walk():
                lines = [clean_inline(_item_text(i)) for i in sub.items] + [
                    clean_inline(p.text) for p in sub.paragraphs
                ]
                lines += sub.fields.get("criteria", [])
                target: list[Unit] | None = None
                if sub is not section and sub.title:
                    found = index.best(sub.title, threshold=0.5, among=scope)
                    target = [found] if found else None
                for line in lines:
                    if not line:
                        continue
                    if target:
                        for unit in target:
                            unit.criteria.append(line)
                        continue
                    best = index.best(line, threshold=0.34, among=scope, loose=True)
                    if best is not None:
                        best.criteria.append(line)
                    elif len(scope) <= 3 and not whole_doc:
                        for unit in scope:
                            unit.criteria.append(line)
                    else:
                        self.global_criteria.append((line, sub))

    def enrich(self) -> None:
        """Definitions from the glossary go into the details of the tasks that use the terms."""
        if not self.glossary:
            return
        definitions: dict[str, str] = {}
        for term, definition in self.glossary:
            definitions.setdefault(term.lower(), f"{term}: {definition}")
        pattern = re.compile(
            r"\b(" + "|".join(re.escape(t) for t in sorted(definitions, key=len, reverse=True)) + r")\b", re.I
        )
        for unit in self.all_units():
            haystack = unit.title + " " + " ".join(unit.body)
            hits = list(dict.fromkeys(definitions[m.group(1).lower()] for m in pattern.finditer(haystack)))
            if hits:
                unit.context.append("Terms: " + "; ".join(hits[:4]))

    # --- dependencies -----------------------------------------------------------------------------------------------

    def collect_phrases(self) -> None:
        """Gather each unit's dependency phrases (its own text and its `Depends on:` fields)."""
        for unit in self.all_units():
            texts: list[str] = []
            if unit.item is not None:
                texts.append(clean_inline(unit.item.text))
                texts.extend(
                    clean_inline(c.text) for c in unit.item.children if c not in [d.item for d in unit.children]
                )
            else:
                texts.append(clean_inline(unit.text))
            for value in unit.fields.get("depends", []):
                unit.phrases.append((value, STRONG, False))
            for text in texts:
                unit.phrases.extend(dependency_phrases(text))

    def resolve(self, index: ReferenceIndex) -> DependencyGraph:
        """Explicit dependencies: units' phrases, section-level phrases, and the Dependencies section."""
        every = list(self.all_units())
        graph = DependencyGraph(every)
        for unit in every:
            for target, threshold, reverse in unit.phrases:
                for found in index.resolve(target, unit, threshold):
                    if reverse:
                        self.link(graph, found, unit, "explicit")
                    else:
                        self.link(graph, unit, found, "explicit")
        # section bodies: "Depends on: Phase 1" or a sentence in the section's prose applies to its root tasks
        for section in self.sections:
            if self.role[section] != "requirements":
                continue
            phrases = [(v, STRONG, False) for v in section.fields.get("depends", [])]
            if not any(u.is_section_task for u in self.section_units.get(section, [])):
                for paragraph in section.paragraphs:
                    phrases.extend(dependency_phrases(clean_inline(paragraph.text)))
            if not phrases:
                continue
            members = self.units_under(section)
            inside = set(members)
            roots = [u for u in members if not any(d in inside for d in u.deps)]
            anchor = members[0] if members else None
            for target, threshold, reverse in phrases:
                if anchor is None:
                    break
                for found in index.resolve(target, anchor, threshold, exclude=inside):
                    for unit in roots:
                        if reverse:
                            self.link(graph, found, unit, "explicit")
                        else:
                            self.link(graph, unit, found, "explicit")
        for statement in self.relations:
            match = RELATION.match(clean_inline(statement))
            if not match:
                continue
            left = index.resolve_any(match.group("left"), STRONG)
            right = index.resolve_any(match.group("right"), STRONG)
            reverse = match.group("kw").lower() in {
                "must precede",
                "precedes",
                "comes before",
                "before",
                "blocks",
                "unblocks",
                "->",
                "→",
                "=>",
            }
            for a in left:
                for b in right:
                    if reverse:
                        self.link(graph, b, a, "explicit")
                    else:
                        self.link(graph, a, b, "explicit")
        return graph

    def link(self, graph: DependencyGraph, unit: Unit, target: Unit, how: str) -> bool:
        """Record "unit depends on target" unless it is pointless or would close a cycle."""
        if unit is target:
            return False
        if target in set(unit.ancestors()) or unit in set(target.ancestors()):
            return False
        if unit.parent is not None and target.parent is not unit.parent:
            # a subtask waits only for its siblings; anything else is a wait of its whole task
            unit = unit.top()
            if target in set(unit.descendants()) or unit is target:
                return False
        if target in unit.deps:
            return False
        if graph.reaches(target, unit):
            return False
        unit.deps[target] = how
        graph.add(unit, target)
        return True

    def units_under(self, section: Section) -> list[Unit]:
        return [u for s in section.walk() for u in self.section_units.get(s, [])]

    def structural(self, graph: DependencyGraph) -> None:
        """Light defaults: setup sections first, phases in order, a section's own setup item before its siblings."""
        for parent in self.sections:
            phases = [c for c in parent.children if c.keyword in _PHASE_KEYWORDS and self.role[c] == "requirements"]
            if len(phases) < 2:
                continue
            phases.sort(key=lambda s: (_phase_number(s), s.line))
            previous: list[Unit] = []
            for phase in phases:
                members = self.units_under(phase)
                if not members:
                    continue
                if previous:
                    ends = sinks(previous)
                    for unit in members:
                        if not unit.deps:
                            for sink in ends:
                                self.link(graph, unit, sink, "phase")
                previous = members
        setup_sections = [
            s
            for s in self.sections
            if self.role[s] == "requirements" and s is not self.root and _SETUP_SECTION.search(plain_heading(s.title))
        ]
        seen: set[Unit] = set()
        for section in setup_sections:
            setup_units = [u for u in self.units_under(section) if u.parent is None]
            if not setup_units:
                continue
            seen.update(setup_units)
            # a setup section comes first among its neighbours (the whole document when it is top-level)
            scope = section.parent if section.parent not in (None, self.root, self.doc_title) else self.root
            inside = set(setup_units)
            ends = sinks(setup_units)
            for unit in self.units_under(scope) if scope is not None else self.units:
                # a bug in what exists can be fixed before the new foundations are laid
                if unit in inside or unit.deps or unit.type == "bug" or unit.parent is not None:
                    continue
                for sink in ends:
                    self.link(graph, unit, sink, "setup")
        for units in self.section_units.values():
            setups = [u for u in units if _SETUP_TITLE.match(u.title) and u not in seen]
            if not setups:
                continue
            first = setups[0]
            for unit in units:
                if unit is not first and not unit.deps and unit.order > first.order and unit not in setups:
                    self.link(graph, unit, first, "setup")

    # --- fitting to num_tasks ---------------------------------------------------------------------------------------

    def promote(self, target: int) -> None:
        """Split section tasks into their items while that brings the count closer to `target`."""
        while len(self.units) < target:
            candidates = [u for u in self.units if u.is_section_task and len(u.children) >= 2 and len(u.members) == 1]
            if not candidates:
                return
            best = max(candidates, key=lambda u: (len(u.children), -u.order))
            if len(self.units) - 1 + len(best.children) > target and len(self.units) > 1:
                fits = [u for u in candidates if len(self.units) - 1 + len(u.children) <= target]
                if not fits:
                    return
                best = max(fits, key=lambda u: (len(u.children), -u.order))
            self.split(best)

    def split(self, unit: Unit) -> None:
        """Replace a section task by its subtasks, which inherit its context, criteria and edges."""
        position = self.units.index(unit)
        children = unit.children
        shared_context = [line for line in unit.body if line] + unit.context
        for child in children:
            child.parent = None
            if shared_context:
                context = f"Context ({clean_inline(unit.section.title)}): " + " ".join(shared_context)[:600]
                child.context = [context, *child.context]
            if not child.criteria and unit.criteria:
                child.criteria = list(unit.criteria)
            for dep, how in unit.deps.items():
                child.deps.setdefault(dep, how)
        for other in self.all_units():
            if unit in other.deps:
                how = other.deps.pop(unit)
                for child in children:
                    if child is not other:
                        other.deps.setdefault(child, how)
        self.units[position : position + 1] = children
        bucket = self.section_units[unit.section]
        spot = bucket.index(unit)
        bucket[spot : spot + 1] = children

    def merge_to(self, target: int) -> None:
        """Merge neighbouring tasks, lowest priority first and within a section first, until `target` remain."""
        units = self.units
        if len(units) <= target:
            return
        prev: dict[Unit, Unit | None] = {}
        nxt: dict[Unit, Unit | None] = {}
        for index, unit in enumerate(units):
            prev[unit] = units[index - 1] if index else None
            nxt[unit] = units[index + 1] if index + 1 < len(units) else None
        version: dict[Unit, int] = {u: 0 for u in units}
        heap: list[tuple[tuple[int, int, int, int], int, int, int, int]] = []
        serial = 0

        def push(a: Unit, b: Unit) -> None:
            nonlocal serial
            serial += 1
            key = (self.distance(a, b), -(a.priority + b.priority), len(a.members) + len(b.members), a.order)
            heapq.heappush(heap, (key, serial, id(a), version[a], version[b]))
            pairs[serial] = (a, b)

        pairs: dict[int, tuple[Unit, Unit]] = {}
        dependents: dict[Unit, set[Unit]] = defaultdict(set)
        for unit in self.all_units():
            for dep in unit.deps:
                dependents[dep].add(unit)
        for a, b in itertools.pairwise(units):
            push(a, b)
        alive = len(units)
        removed: set[Unit] = set()
        while alive > target and heap:
            _key, number, _ident, va, vb = heapq.heappop(heap)
            a, b = pairs.pop(number)
            if a in removed or b in removed or version[a] != va or version[b] != vb:
                continue
            self.absorb(a, b, dependents)
            removed.add(b)
            alive -= 1
            version[a] += 1
            after = nxt[b]
            nxt[a] = after
            if after is not None:
                prev[after] = a
            before = prev[a]
            if before is not None:
                push(before, a)
            if after is not None:
                push(a, after)
        self.units = [u for u in units if u not in removed]
        for section, bucket in list(self.section_units.items()):
            self.section_units[section] = [u for u in bucket if u not in removed]

    def distance(self, a: Unit, b: Unit) -> int:
        """How far apart two neighbouring units are in the outline (0: same section)."""
        if a.section is b.section:
            return 0
        if a.section.parent is b.section.parent:
            return 1
        path_a, path_b = self.paths[a.section], self.paths[b.section]
        return 2 if path_a[:1] == path_b[:1] else 3

    def absorb(self, a: Unit, b: Unit, dependents: dict[Unit, set[Unit]]) -> None:
        """Fold `b` into `a`: its text, subtasks and edges (both ways) become `a`'s."""
        a.members.extend(b.members)
        for child in b.children:
            child.parent = a
        a.children.extend(b.children)
        a.priority = min(a.priority, b.priority)
        a.deferred = a.deferred and b.deferred
        a.complexity = min(10, max(a.complexity, b.complexity) + 1)
        if b.priority < a.priority:
            a.type = b.type
        for dep, how in b.deps.items():
            dependents[dep].discard(b)
            if dep is not a:
                a.deps.setdefault(dep, how)
                dependents[dep].add(a)
        b.deps = {}
        if a.deps.pop(b, None) is not None:
            dependents[b].discard(a)
        for other in dependents.pop(b, set()):
            how = other.deps.pop(b, "")
            if how and other is not a:
                other.deps.setdefault(a, how)
                dependents[a].add(other)

    def retitle_merged(self) -> None:
        """A merged task is named after the section it now covers, or after the requirements it joins."""
        for unit in self.units:
            if len(unit.members) == 1:
                continue
            sections = {m.section for m in unit.members}
            common = _common_section(list(sections))
            whole = (
                len(sections) == 1
                and common is not None
                and common is not self.root
                and len(self.section_units.get(common, [])) == 1
            )
            if whole and common is not None:
                unit.title = self.section_title(common, unit)
            else:
                first, second = unit.members[0].title, unit.members[1].title
                verb, _, rest = second.partition(" ")
                if first.split(" ", 1)[0] == verb and rest:
                    second = rest  # "Implement subscriptions and invoicing", not "… and implement invoicing"
                joined = f"{first} and {second[0].lower() + second[1:]}"
                if len(unit.members) == 2 and len(joined) <= 90:
                    unit.title = joined
                else:
                    unit.title = f"{first} (+{len(unit.members) - 1} more)"
            if common is not None and common is not unit.section:
                unit.section = common

    def section_title(self, section: Section, unit: Unit) -> str:
        if not self.is_generic(section):
            return heading_title(section.title, self.vocab)
        name = self.vocab.sentence_case(clean_inline(section.title)).rstrip(":")
        name = re.sub(r"^(\d{1,2}(?:\.\d{1,2})*|[IVX]{1,4})[.)]?\s+", "", name) or name
        if section.keyword in _PHASE_KEYWORDS:
            return f"Complete {name[0].lower() + name[1:]}"
        verb = {"bug": "Fix", "docs": "Write", "test": "Write"}.get(unit.type, "Implement")
        return f"{verb} the “{name}” items ({len(unit.members)})"

    def rebuild_graph(self) -> None:
        """After merging or splitting, re-add every edge (explicit ones first) so that no cycle survives."""
        every = list(self.all_units())
        graph = DependencyGraph(every)
        edges: list[tuple[int, int, Unit, Unit, str]] = []
        rank = {"explicit": 0, "setup": 1, "phase": 2}
        for unit in every:
            for dep, how in unit.deps.items():
                edges.append((rank.get(how, 3), unit.order, unit, dep, how))
            unit.deps = {}
        valid = set(every)
        edges.sort(key=lambda e: (e[0], e[1], e[3].order))
        for _rank, _order, unit, dep, how in edges:
            if dep in valid and unit in valid:
                self.link(graph, unit, dep, how)

    # --- output -----------------------------------------------------------------------------------------------------

    def final_criteria_task(self) -> None:
        """Criteria no task owns become one verification task at the end, so none is dropped."""
        if not self.global_criteria:
            return
        section = self.global_criteria[0][1]
        unit = self.new_unit(section, None, "", section.line)
        unit.title = "Verify the acceptance criteria"
        unit.description = "Check the product against the document's acceptance criteria that no single task owns."
        unit.criteria = [line for line, _ in self.global_criteria]
        unit.body = ["Acceptance criteria from the document:"] + [f"- {line}" for line, _ in self.global_criteria]
        unit.type = "test"
        unit.priority = min((u.priority for u in self.units), default=3)
        unit.complexity = complexity_of(" ".join(unit.criteria), len(unit.criteria))
        for sink in sinks(self.units):
            unit.deps[sink] = "phase"
        self.units.append(unit)
        self.section_units[section].append(unit)

    def emit(self) -> list[PlannedTask]:
        """Keys in document order ("1", "1.1", …) and the `PlannedTask`s."""
        keys: dict[Unit, str] = {}
        for number, unit in enumerate(self.units, start=1):
            self.assign_keys(unit, str(number), keys)
        self.disambiguate(self.units)
        return [self.to_task(unit, keys) for unit in self.units]

    def assign_keys(self, unit: Unit, key: str, keys: dict[Unit, str]) -> None:
        keys[unit] = key
        for number, child in enumerate(unit.children, start=1):
            self.assign_keys(child, f"{key}.{number}", keys)
        self.disambiguate(unit.children)

    def disambiguate(self, siblings: list[Unit]) -> None:
        seen: dict[str, int] = {}
        for unit in siblings:
            low = unit.title.lower()
            if low in seen:
                seen[low] += 1
                where = clean_inline(unit.section.title)
                suffix = f" ({where})" if where and where.lower() not in low else f" ({seen[low]})"
                unit.title = (unit.title + suffix)[:500]
            else:
                seen[low] = 1

    def to_task(self, unit: Unit, keys: dict[Unit, str]) -> PlannedTask:
        details = self.details(unit)
        path = self.paths.get(unit.section, ())
        source_section = " > ".join(path)[-500:] if path else None
        extra: dict[str, object] = {"prd_line": unit.line}
        if self.source:
            extra["prd_source"] = self.source
        status: TaskStatus = "deferred" if unit.deferred else "pending"
        dependencies = sorted((d for d in unit.deps if d in keys), key=lambda d: _key_order(keys[d]))
        return PlannedTask(
            key=keys[unit],
            title=unit.title[:500] or "Untitled requirement",
            description=unit.description or None,
            details=details or None,
            test_strategy=self.test_strategy(unit),
            type=unit.type,
            status=status,
            priority=unit.priority,
            complexity=unit.complexity,
            dependencies=[keys[d] for d in dependencies],
            subtasks=[self.to_task(child, keys) for child in unit.children],
            source_section=source_section,
            extra=extra,
        )

    def details(self, unit: Unit) -> str:
        """The requirement text, merged requirements, the section's introduction and glossary terms."""
        parts: list[str] = []
        for index, member in enumerate(unit.members):
            body = "\n".join(line for line in member.body if line)
            if index == 0:
                if body:
                    parts.append(body)
            else:
                head = f"Also covers ({clean_inline(member.section.title) or 'document'}): {member.title}"
                parts.append(head + ("\n" + body if body else ""))
        if unit.is_section_task and unit.children and len(unit.members) == 1:
            parts.append("Requirements:\n" + "\n".join(_render_item(c.item)[0] for c in unit.children if c.item))
        if unit.item is not None and unit.parent is None and not unit.is_section_task:
            intro = [clean_inline(p.text) for p in unit.section.paragraphs[:2]]
            if intro:
                context = " ".join(intro)
                context = context if len(context) <= 600 else context[:600].rsplit(" ", 1)[0] + "…"
                parts.append(f"Context ({clean_inline(unit.section.title) or 'document'}): {context}")
        parts.extend(dict.fromkeys(unit.context))
        return "\n\n".join(parts).strip()

    def test_strategy(self, unit: Unit) -> str:
        """The acceptance criteria found for the unit, or a strategy fitting its type."""
        criteria = list(dict.fromkeys(c for m in unit.members for c in m.criteria if c))
        if criteria:
            return "Acceptance criteria:\n" + "\n".join(f"- {c}" for c in criteria)
        requirement = first_sentence(unit.text if unit.item is None else unit.item.text).rstrip(".") or unit.title
        requirement = clean_inline(requirement)
        if unit.type == "bug":
            return (
                f"Add a regression test that reproduces the problem ({requirement}) and fails before the fix; "
                "it passes after the fix and the rest of the suite stays green."
            )
        if unit.type == "test":
            return (
                "The new tests run in CI, pass on the current code, and fail when the behaviour they cover is "
                "broken on purpose."
            )
        if unit.type == "docs":
            return "Review the rendered documentation; every command and example in it runs as written."
        if unit.type == "chore" and _SETUP_TITLE.match(unit.title):
            return "A fresh checkout builds and passes lint and tests in CI; the setup steps work as written."
        if unit.type == "chore":
            return "Behaviour is unchanged: the existing tests and linters pass before and after, and CI is green."
        checks = [c.title for c in unit.children][:6]
        if checks:
            return "Tests cover each part: " + "; ".join(checks) + "."
        return (
            f"Tests check: {requirement}. Include the failure paths (invalid input, missing permissions, "
            "an unavailable dependency)."
        )


def _child_role(key: str) -> str:
    key = key.lower()
    if key in {"priority", "prio", "moscow", "severity"}:
        return "priority"
    if key in {"type", "kind"}:
        return "type"
    if key in {"owner", "assignee"}:
        return "owner"
    if key in {"acceptance", "acceptance criteria", "ac", "test", "tests", "verify", "verification", "done when"}:
        return "criteria"
    return "depends"


def _phase_number(section: Section) -> float:
    number = section.number or ""
    number = roman_or_word_to_number(number) if number else ""
    try:
        return float(number.split(".")[0]) if number else math.inf
    except ValueError:
        return math.inf


def _common_section(sections: list[Section]) -> Section | None:
    if not sections:
        return None
    chains = []
    for section in sections:
        chain: list[Section] = []
        node: Section | None = section
        while node is not None:
            chain.append(node)
            node = node.parent
        chains.append(list(reversed(chain)))
    common = None
    for level in zip(*chains, strict=False):
        if all(s is level[0] for s in level):
            common = level[0]
        else:
            break
    return common


def _key_order(key: str) -> tuple[int, ...]:
    return tuple(int(part) for part in key.split("."))


def parse_prd(text: str, *, num_tasks: int | None = None, source: str | None = None) -> list[PlannedTask]:
    """Read a PRD (Markdown or plain text) into planned tasks, without any model or network.

    Sections and list items become tasks and subtasks; MUST/SHOULD/MAY and priority words set priorities;
    "depends on / after / requires / once X is done" phrasing becomes dependencies (never a cycle); intro, glossary,
    non-goals and similar sections only enrich details. `num_tasks` merges (or splits) top-level tasks to about that
    many without dropping any requirement. `source` (e.g. the file name) is recorded in each task's `extra`.
    Keys are "1", "2", … with subtasks "1.1", "1.2", …, in document order.
    """
    if num_tasks is not None and num_tasks < 1:
        raise InvalidInput("num_tasks must be at least 1", field="num_tasks")
    if not text or not text.strip():
        return []
    root = read_document(text)
    planner = _Planner(root, Vocabulary(text), source)
    planner.classify()
    planner.build()
    if not planner.units:
        return []
    planner.describe()
    index = planner.make_index()
    planner.attach_criteria(index)
    planner.enrich()
    planner.collect_phrases()
    graph = planner.resolve(index)
    planner.structural(graph)
    planner.final_criteria_task()
    if len(planner.units) < 3:
        planner.promote(3)
    if num_tasks is not None:
        planner.promote(num_tasks)
        planner.merge_to(num_tasks)
        planner.retitle_merged()
    planner.rebuild_graph()
    return planner.emit()
