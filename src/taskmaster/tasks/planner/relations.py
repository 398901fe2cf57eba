"""Relations between requirement records: duplicates merged, roadmap items matched, dependencies and priorities
as the text states them (never a cycle: `core/graph.py` finds the one a phrase would close, reported as a warning)."""

from __future__ import annotations

import itertools
import math
import re
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace

from taskmaster.core.graph import cycle_if_added
from taskmaster.tasks.planner.lexicon import (
    BEFORE,
    LABEL,
    NEEDS,
    NUMBER_LIST,
    PRIORITY_TERMS,
    SPLIT_TARGETS,
    priority_class,
    tokens,
)
from taskmaster.tasks.planner.records import Extraction, Mention, Requirement, Statement

__all__ = ["Edge", "Relations", "relate"]


@dataclass(frozen=True)
class Edge:
    dependent: int
    dependency: int
    why: str
    """The phrase that says so, quoted, with its line."""


@dataclass(frozen=True)
class Relations:
    records: tuple[Requirement, ...]
    edges: tuple[Edge, ...]
    warnings: tuple[str, ...]


_SENTENCES = re.compile(r"(?<=[.;!?])\s+|\n")
_CLAUSES = re.compile(r";\s*|,\s+and\s+|\.\s+")
_ARROW = re.compile(r"\s*(?:->|→|=>|>>)\s*")
_SUBJECT_NOISE = re.compile(r"\b(?:only|also|both|first|then|will|must|can|should|all|any|every|each|it|they)\b", re.I)
_PHASE_WORDS = r"(?:phase|milestone|release|stage|sprint|step|iteration|week|month|quarter)\s+[\w.-]+"
_PHASE_SPLIT = re.compile(r"(?=\b" + _PHASE_WORDS + r"[^:.;]{0,40}:)", re.I)
_PHASE_LINE = re.compile(r"^" + _PHASE_WORDS + r"[^:]{0,40}:", re.I)
_PHASE_HEAD = re.compile(r"^(?P<phase>[^:]{1,60}):\s*(?P<rest>.*)$")
_PRONOUN_END = re.compile(r"[.;:,(]\s*(?:this|it|which|that|and)$|^(?:this|it)$", re.I)
_TEXT_VERBS = re.compile(r"depend|require|blocked|builds?|prerequisite|wait", re.I)
_PRIORITY_LABEL = re.compile(r"^P[0-4]$", re.I)
_PHASE_ENDS = 8
_PAREN_TAIL = re.compile(r"\s*\([^()]*\)\s*\.?\s*$")
_SECTION_NUMBER = re.compile(r"^\s*\d+(?:\.\d+)+\.?\s*|\b\d+(?:\.\d+)+\b")
_AREA_FILLER = re.compile(r"\b(?:engine|section|part|module|area|work|features?|requirements?|capabilit\w+)\b", re.I)
_NUMBER_WORDS = re.compile(
    r"\b(?:steps?|items?|stories|story|requirements?|numbers?|nos?\.?|points?|tasks?|features?|are|is|both|then|"
    r"first|done)\b",
    re.I,
)


class _Matcher:
    """Finds the record a phrase names: by label, by number inside a list, or by its distinctive words."""

    def __init__(self, records: list[Requirement]) -> None:
        self.records = records
        self.by_label: dict[str, list[int]] = defaultdict(list)
        self.by_number: dict[str, list[int]] = defaultdict(list)
        self.words: list[frozenset[str]] = []
        self.head: list[frozenset[str]] = []
        frequency: dict[str, int] = defaultdict(int)
        for i, record in enumerate(records):
            if record.label:
                self.by_label[_norm_label(record.label)].append(i)
            if record.number:
                self.by_number[record.number].append(i)
            words = frozenset(
                tokens(" ".join([record.name or "", record.text, *record.details, *(m.text for m in record.mentions)]))
            )
            self.words.append(words)
            self.head.append(frozenset(tokens(record.name or _head(record.text))))
            for word in words:
                frequency[word] += 1
        self.postings: dict[str, list[int]] = defaultdict(list)
        for i, words in enumerate(self.words):
            for word in words:
                self.postings[word].append(i)
        total = max(len(records), 1)
        self.idf = {word: math.log(1 + total / count) for word, count in frequency.items()}
        self.areas: dict[tuple[str, ...], list[int]] = defaultdict(list)
        for i, record in enumerate(records):
            if record.area:
                self.areas[record.area].append(i)
        self.area_words = {area: frozenset(tokens(_SECTION_NUMBER.sub("", area[-1]))) for area in self.areas}

    def area(self, text: str) -> list[int] | None:
        """The records of the feature area a phrase names ("6.2 Plans and pricing", "the invoicing engine (6.4)")."""
        numbers = [n.strip().rstrip(".") for n in _SECTION_NUMBER.findall(text)]
        for area in self.areas:
            head = _SECTION_NUMBER.match(area[-1])
            if head and head.group(0).strip().rstrip(".") in numbers:
                return self.areas[area]
        wanted = set(tokens(_AREA_FILLER.sub(" ", _SECTION_NUMBER.sub("", text))))
        for area, words in self.area_words.items():
            if words and words == wanted:
                return self.areas[area]
        return None

    def label(self, text: str) -> list[int]:
        return list(self.by_label.get(_norm_label(text), []))

    def number(self, number: str, scope: int | None) -> list[int]:
        found = self.by_number.get(number, [])
        local = [i for i in found if self.records[i].scope == scope]
        if local:
            return local[:1]
        return found[:1] if len(found) == 1 or len({self.records[i].scope for i in found}) == 1 else []

    def phrase(self, text: str, *, threshold: float, exclude: int | None = None) -> int | None:
        wanted = set(tokens(text))
        if not wanted:
            return None
        weight = sum(self.idf.get(w, 2.0) for w in wanted)
        best: tuple[float, int] | None = None
        # candidates come from the phrase's distinctive words; a word half the records share names none of them
        common = max(50, len(self.records) // 20)
        sizes = {w: len(self.postings.get(w, ())) for w in wanted}
        rare = [w for w in wanted if sizes[w] <= common] or [min(wanted, key=sizes.__getitem__)]
        candidates = sorted({i for w in rare for i in self.postings.get(w, ())})
        for i in candidates:
            if i == exclude:
                continue
            overlap = wanted & self.words[i]
            if not overlap:
                continue
            score = sum(self.idf.get(w, 2.0) for w in overlap) / weight
            score += 0.25 * len(wanted & self.head[i]) / len(wanted)
            if self.head[i] and self.head[i] <= wanted:
                score = max(score, 0.9)  # the phrase names the whole of the record's name
            if best is None or score > best[0] + 1e-9:
                best = (score, i)
        return best[1] if best is not None and best[0] >= threshold else None

    def targets(self, text: str, origin: Requirement | None, *, allow_text: bool, threshold: float = 0.6) -> list[int]:
        """Records named by a list of targets ("FR-2 and FR-3", "1 & 2", "the RSS feed")."""
        found: list[int] = []
        labels = [m.group("label") for m in LABEL.finditer(text) if not _PRIORITY_LABEL.match(m.group("label"))]
        for label in labels:
            hits = self.label(label)
            if not hits and label.startswith("#"):
                hits = self.number(label[1:], origin.scope if origin else None)
            found.extend(hits)
        if labels:
            return found
        rest = LABEL.sub(" ", text)
        numbers = list(NUMBER_LIST.finditer(rest))
        if numbers and not re.search(
            r"[A-Za-z]{3,}", NUMBER_LIST.sub(" ", SPLIT_TARGETS.sub(" ", _NUMBER_WORDS.sub(" ", rest)))
        ):
            for match in numbers:
                low = int(match.group("a"))
                high = int(match.group("b") or low)
                for n in range(low, min(high, low + 200) + 1):
                    found.extend(self.number(str(n), origin.scope if origin else None))
            return found
        if not allow_text:
            return found
        exclude = origin.index if origin else None
        whole = self.area(rest)
        if whole is not None:
            return [i for i in whole if i != exclude]
        for part in SPLIT_TARGETS.split(rest):
            part = _strip_filler(part)
            if len(part) < 3:
                continue
            hit = self.phrase(part, threshold=threshold, exclude=exclude)
            if hit is not None:
                found.append(hit)
        return found


def relate(extraction: Extraction) -> Relations:
    """Merge duplicates and roadmap items, then read dependencies and priorities from the records and statements."""
    records, warnings = _merge(list(extraction.records), list(extraction.roadmap))
    matcher = _Matcher(records)
    graph = _Graph(len(records))
    graph.area_of = {r.index: r.area for r in records if r.area}
    for record in records:
        _record_edges(record, matcher, graph)
    phases: dict[str, list[int]] = {}
    chains = _chains(list(extraction.statements), matcher)
    for statement in extraction.statements:
        if statement.kind == "ordering" and _PHASE_LINE.match(statement.text):
            for phase, members in _phase_members(statement, matcher, graph):
                phases.setdefault(phase, [])
                phases[phase].extend(m for m in members if m not in phases[phase])
        elif statement.kind == "ordering":
            chain = chains.get(statement.scope, {})
            if not (chain and statement.number and _chain_edges(statement, chain, matcher, graph)):
                _ordering_edges(statement, matcher, graph)
        elif statement.kind == "section":
            _section_edges(statement, matcher, graph)
        elif statement.kind == "priorities":
            records = _priority_statement(statement, matcher, records)
            matcher.records = records
        elif statement.kind == "roadmap":
            for phase, members in _phase_members(statement, matcher, graph):
                phases.setdefault(phase, [])
                phases[phase].extend(m for m in members if m not in phases[phase])
    for record in records:
        if record.phase:
            phases.setdefault(record.phase, [])
            if record.index not in phases[record.phase]:
                phases[record.phase].append(record.index)
    _phase_edges(phases, graph)
    records = _phase_priorities(records, phases)
    records = _silent_priorities(records, graph)
    return Relations(tuple(records), tuple(graph.edges), tuple(warnings + graph.warnings))


class _Graph:
    """Edges between records, never a cycle. A rank per record keeps a topological order (dependencies first) the
    way Pearce and Kelly's dynamic algorithm does: an edge along the order is free; one against it searches only the
    records ranked between its ends, finding the cycle it would close or re-ranking that region."""

    def __init__(self, size: int) -> None:
        self.adjacency: dict[int, list[int]] = {i: [] for i in range(size)}
        self.reverse: dict[int, list[int]] = {i: [] for i in range(size)}
        self.edges: list[Edge] = []
        self.why: dict[tuple[int, int], str] = {}
        self.warnings: list[str] = []
        self.area_of: dict[int, tuple[str, ...]] = {}
        self.rank = list(range(size))

    def add(self, dependent: int, dependency: int, why: str, *, quiet: bool = False) -> None:
        if dependent == dependency or (dependent, dependency) in self.why:
            return
        low, high = self.rank[dependent], self.rank[dependency]
        if high < low:
            self._keep(dependent, dependency, why)
            return
        if quiet:
            return  # an edge only inferred (roadmap phases) never reorders what the text stated
        ahead = self._search(dependency, self.adjacency, lambda r: r >= low)
        if dependent in ahead:
            cycle = cycle_if_added(self.adjacency, dependent, dependency) or [dependent, dependency, dependent]
            steps = [self.why.get((a, b), "") for a, b in itertools.pairwise(cycle)]
            quoted = "; ".join(s for s in steps if s)
            self.warnings.append(f"ignored {why}: it would close a dependency cycle with {quoted}")
            return
        behind = self._search(dependent, self.reverse, lambda r: r <= high)
        first = sorted(ahead, key=self.rank.__getitem__)
        then = sorted(behind, key=self.rank.__getitem__)
        slots = sorted(self.rank[n] for n in first + then)
        for node, slot in zip(first + then, slots, strict=True):
            self.rank[node] = slot
        self._keep(dependent, dependency, why)

    def _search(self, start: int, edges: dict[int, list[int]], inside: Callable[[int], bool]) -> list[int]:
        seen = {start}
        stack = [start]
        while stack:
            for nxt in edges[stack.pop()]:
                if nxt not in seen and inside(self.rank[nxt]):
                    seen.add(nxt)
                    stack.append(nxt)
        return list(seen)

    def _keep(self, dependent: int, dependency: int, why: str) -> None:
        self.adjacency[dependent].append(dependency)
        self.reverse[dependency].append(dependent)
        self.why[(dependent, dependency)] = why
        self.edges.append(Edge(dependent, dependency, why))

    def dependents(self) -> dict[int, int]:
        counts: dict[int, int] = defaultdict(int)
        for edge in self.edges:
            counts[edge.dependency] += 1
        return counts


def _record_edges(record: Requirement, matcher: _Matcher, graph: _Graph) -> None:
    sources = [(record.text, record.line, False)]
    sources += [(f"{key}: {value}", record.line, True) for key, value in record.fields if _is_relation(key)]
    sources += [(text, record.line, False) for text in record.details]
    for text, line, is_field in sources:
        if is_field:
            _key, _, value = text.partition(": ")
            for target in matcher.targets(value, record, allow_text=True):
                graph.add(record.index, target, f'"{text}" (line {line})')
            continue
        for match in NEEDS.finditer(text):
            target_text = match.group("target")
            verb = match.group("verb").lower()
            if verb in {"after", "once"}:
                target_text = target_text.split(",")[0]
            before = text[: match.start()].rstrip()
            at_start = not before or before.endswith((".", ";", "(", ":", ",")) or bool(_PRONOUN_END.search(before))
            # "depends on"/"requires" name work wherever they stand; "needs"/"once" only at the head of a clause
            # ("a team that needs a simple tool" names no task); "after" only before an ID or a number
            allow_text = bool(_TEXT_VERBS.search(verb)) or (at_start and verb != "after")
            targets = matcher.targets(target_text, record, allow_text=allow_text)
            if verb == "after" and not at_start:
                targets = [t for t in targets if matcher.records[t].label or matcher.records[t].number]
            for target in targets:
                graph.add(record.index, target, f'"{match.group(0).strip()}" (line {line})')


def _is_relation(key: str) -> bool:
    return key in {"blocked by", "depends on", "dependencies", "dependency", "needs", "requires", "after"} or (
        key.startswith("prerequisite")
    )


def _chain_edges(statement: Statement, chain: dict[str, int], matcher: _Matcher, graph: _Graph) -> bool:
    """A numbered chain item naming earlier items by number ("5. POST endpoint (depends on 3 & 4)"): edges
    between the requirements the items name. False when the item names no chain number."""
    own = chain.get(statement.number or "")
    found = False
    for match in NEEDS.finditer(statement.text):
        numbers = [n for m in NUMBER_LIST.finditer(match.group("target")) for n in _expand(m)]
        if not numbers or re.search(
            r"[A-Za-z]{4,}", NUMBER_LIST.sub(" ", SPLIT_TARGETS.sub(" ", match.group("target")))
        ):
            continue
        found = True
        for number in numbers:
            target = chain.get(number)
            if own is not None and target is not None:
                graph.add(own, target, f'"{match.group(0).strip()}" (line {statement.line})')
    return found


def _expand(match: re.Match[str]) -> list[str]:
    low = int(match.group("a"))
    high = int(match.group("b") or low)
    return [str(n) for n in range(low, min(high, low + 200) + 1)]


def _chains(statements: list[Statement], matcher: _Matcher) -> dict[int, dict[str, int]]:
    """Per ordering section: the requirement each numbered item names (its text without the relation phrase)."""
    chains: dict[int, dict[str, int]] = defaultdict(dict)
    for statement in statements:
        if statement.kind != "ordering" or not statement.number:
            continue
        subject = _PAREN_TAIL.sub("", statement.text)
        relation = NEEDS.search(subject)
        subject = subject[: relation.start()] if relation else subject
        hit = matcher.phrase(_strip_filler(subject), threshold=0.5)
        if hit is not None:
            chains[statement.scope][statement.number] = hit
    return chains


def _ordering_edges(statement: Statement, matcher: _Matcher, graph: _Graph) -> None:
    """Edges from an ordering sentence: "A before B", "A needs B", "A -> B -> C"."""
    for sentence in _SENTENCES.split(statement.text):
        if _ARROW.search(sentence):
            chain = [matcher.targets(part, None, allow_text=True, threshold=0.5) for part in _ARROW.split(sentence)]
            for earlier, later in itertools.pairwise(chain):
                for a in later:
                    for b in earlier:
                        graph.add(a, b, f'"{sentence.strip()}" (line {statement.line})')
            continue
        for clause in _CLAUSES.split(sentence):
            why = f'"{clause.strip().rstrip(".")}" (line {statement.line})'
            before = BEFORE.search(clause)
            if before:
                first = matcher.targets(clause[: before.start()], None, allow_text=True, threshold=0.5)
                then = matcher.targets(clause[before.end() :], None, allow_text=True, threshold=0.5)
                for a in then:
                    for b in first:
                        graph.add(a, b, why)
                continue
            needs = NEEDS.search(clause)
            if not needs:
                continue
            subject = _SUBJECT_NOISE.sub(" ", clause[: needs.start()])
            dependents = matcher.targets(subject, None, allow_text=True, threshold=0.5)
            dependencies = matcher.targets(needs.group("target"), None, allow_text=True, threshold=0.5)
            for a in dependents:
                for b in dependencies:
                    graph.add(a, b, why)


def _section_edges(statement: Statement, matcher: _Matcher, graph: _Graph) -> None:
    """ "Depends on: 6.2 Plans and pricing" written once for a section: every requirement of it waits."""
    members = [r.index for r in matcher.records if r.scope == statement.scope]
    for match in NEEDS.finditer(statement.text):
        target = match.group("target")
        if match.group("verb").lower() in {"after", "once"}:
            target = re.split(r",|\b(?:is|are) (?:live|done|ready|in place)\b", target)[0]
        targets = [t for t in matcher.targets(target, None, allow_text=True) if t not in members]
        for member in members:
            for dependency in targets:
                graph.add(member, dependency, f'"{match.group(0).strip()}" (line {statement.line}, for its section)')


def _priority_statement(statement: Statement, matcher: _Matcher, records: list[Requirement]) -> list[Requirement]:
    """ "Must: US-01, US-02", "Steps 1-4 are critical", "P0: Tool catalogue, Borrowing", "RT-1 | P0"."""
    for sentence in _SENTENCES.split(statement.text):
        cls = priority_class(sentence)
        if cls is None:
            continue
        head = _PHASE_HEAD.match(sentence)
        body = head.group("rest") if head and priority_class(head.group("phase")) is not None else sentence
        body = PRIORITY_TERMS.sub(" ", body)
        origin = Requirement(-1, "", statement.line, statement.line, (), None, statement.scope)
        why = f'"{sentence.strip()}" (line {statement.line})'
        for target in matcher.targets(body, origin, allow_text=True, threshold=0.55):
            current = records[target].priority
            if current is None or current[1].startswith(("the roadmap", "the wording")):
                records[target] = replace(records[target], priority=(cls, why))
    return records


def _phase_members(
    statement: Statement, matcher: _Matcher, graph: _Graph | None = None
) -> Iterable[tuple[str, list[int]]]:
    """The requirements each phase of a roadmap line names; a relation inside the phase ("Week 3: reports
    (after receipt capture)") makes its members wait for what it names."""
    for part in _PHASE_SPLIT.split(statement.text):
        head = _PHASE_HEAD.match(part.strip())
        if head is None:
            continue
        rest = head.group("rest")
        relation = NEEDS.search(rest)
        members = matcher.targets(rest[: relation.start()] if relation else rest, None, allow_text=True, threshold=0.6)
        if relation and graph is not None:
            for target in matcher.targets(_strip_filler(relation.group("target")), None, allow_text=True):
                for member in members:
                    graph.add(member, target, f'"{relation.group(0).strip()}" (line {statement.line})')
        if members:
            yield head.group("phase").strip(), members


def _phase_edges(phases: dict[str, list[int]], graph: _Graph) -> None:
    """Work of a later phase that the text gives no dependency waits for where the phase before it ends (its
    members nothing else there needs); a phase ending in more than a few places says too little to link."""
    order = list(phases)
    waiting = {e.dependent for e in graph.edges}
    for earlier, later in itertools.pairwise(order):
        inside = set(phases[earlier])
        needed = {e.dependency for e in graph.edges if e.dependent in inside and e.dependency in inside}
        ends = [m for m in phases[earlier] if m not in needed] or phases[earlier][-1:]
        areas = {graph.area_of.get(m) for m in phases[earlier]}
        if len(areas) == 1 and None not in areas:
            ends = list(phases[earlier])  # a phase that is a section: wait for its parent task as a whole
        elif len(ends) > _PHASE_ENDS:
            continue
        for member in phases[later]:
            if member in inside or member in waiting:
                continue
            for end in ends:
                graph.add(member, end, f'"{later}" comes after "{earlier}" in the roadmap', quiet=True)


def _phase_priorities(records: list[Requirement], phases: dict[str, list[int]]) -> list[Requirement]:
    """Where the text gives no priority, an earlier roadmap phase is more urgent; a deferred mention lowers it."""
    rank: dict[int, tuple[int, str]] = {}
    for position, (phase, members) in enumerate(phases.items()):
        for member in members:
            rank.setdefault(member, (min(position + 1, 4), phase))
    out = []
    for record in records:
        if record.priority is None and record.deferred:
            record = replace(record, priority=(3, "only a later part of the roadmap names it"))
        elif record.priority is None and record.index in rank and len(phases) > 1:
            cls, phase = rank[record.index]
            record = replace(record, priority=(cls, f'the roadmap puts it in "{phase}"'))
        out.append(record)
    return out


def _silent_priorities(records: list[Requirement], graph: _Graph) -> list[Requirement]:
    """Where the text says nothing: work that other work waits for comes first."""
    dependents = graph.dependents()
    out = []
    for record in records:
        if record.priority is None:
            if dependents.get(record.index):
                record = replace(
                    record, priority=(2, f"the text gives none; {dependents[record.index]} task(s) wait for it")
                )
            else:
                record = replace(record, priority=(3, "the text gives none"))
        out.append(record)
    return out


def _merge(records: list[Requirement], roadmap: list[Requirement]) -> tuple[list[Requirement], list[str]]:
    """One record per requirement: a second statement of the same item, or a roadmap line naming it, becomes a
    mention of the first."""
    out: list[Requirement] = []
    seen: dict[str, int] = {}
    for record in records:
        key = _identity(record)
        if key in seen:
            first = out[seen[key]]
            out[seen[key]] = _absorb(first, record)
            continue
        seen[key] = len(out)
        out.append(record if record.index == len(out) else replace(record, index=len(out)))
    base = list(out)
    matcher = _Matcher(base) if base and roadmap else None
    for item in roadmap:
        hit: int | None = None
        if item.label and matcher is not None:
            labels = matcher.label(item.label)
            hit = labels[0] if labels else None
        if hit is None and matcher is not None:
            hit = matcher.phrase(item.name or item.text, threshold=0.6)
        if hit is not None:
            first = out[hit]
            out[hit] = replace(
                _absorb(first, item),
                deferred=first.deferred or item.deferred,
                phase=first.phase or item.phase,
            )
        elif not item.deferred or not base:
            out.append(replace(item, index=len(out), deferred=item.deferred and bool(base)))
    return out, []


def _absorb(first: Requirement, other: Requirement) -> Requirement:
    where = " > ".join(other.path) or "the document"
    priority = first.priority
    if other.priority and (priority is None or other.priority[0] < priority[0]) and not other.deferred:
        priority = other.priority
    return replace(
        first,
        mentions=(*first.mentions, Mention(other.text, other.line, where), *other.mentions),
        fields=(*first.fields, *other.fields),
        details=(*first.details, *other.details),
        criteria=(*first.criteria, *other.criteria),
        priority=priority,
    )


def _identity(record: Requirement) -> str:
    if record.label:
        return "label:" + _norm_label(record.label)
    words = " ".join(tokens(record.name or record.text))
    return "text:" + (words or " ".join((record.name or record.text).lower().split()))


def _norm_label(label: str) -> str:
    return _LABEL_NOISE.sub("", label).upper().lstrip("0")


_LABEL_NOISE = re.compile(r"[-\s#]")


def _head(text: str) -> str:
    return re.split(r"[.;:]\s|\s[—–]\s", text, maxsplit=1)[0]


_FILLER = re.compile(
    r"^\s*(?:on|upon|the|a|an|to|of|that|having|its|their|our|being|before|after|any|all)\s+|"
    r"\s+(?:first|done|is done|being done|are done|is live|are live|exists?|is in place|to be done|to exist|"
    r"being in place|work|working)\s*$",
    re.I,
)


def _strip_filler(text: str) -> str:
    previous = None
    text = text.strip().strip(".:()")
    while previous != text:
        previous = text
        text = _FILLER.sub("", text).strip()
    return text
