"""Dependency phrasing in a PRD ("depends on X", "after X", "once X is done", "requires FR-2") and what X names.

`dependency_phrases` finds the phrases; `ReferenceIndex` resolves their targets to units by requirement id, item or
section number, phase, or by the words of titles weighed by how rare they are in the document.
"""

from __future__ import annotations

import heapq
import math
import re
from collections import defaultdict
from collections.abc import Iterable

from taskmaster.tasks.planner.sections import Section, roman_or_word_to_number
from taskmaster.tasks.planner.units import Unit
from taskmaster.tasks.planner.wording import Vocabulary, clean_inline, first_sentence, plain_heading, tokens

__all__ = [
    "RELATION",
    "STRONG",
    "SUPPORT_TYPES",
    "WEAK",
    "ReferenceIndex",
    "clip_target",
    "dependency_phrases",
    "without_dependencies",
]

_DEP_STRONG = re.compile(
    r"\b(?:depends? (?:up)?on|dependent on|dependency on|builds? (?:up)?on|built (?:up)?on|building on|"
    r"blocked by|relies on|rely on|waits? for|comes? after|must follow|only after|after|following completion of|"
    r"subsequent to|prerequisites?(?: is| are)?:?|extends)\s+(?P<target>(?:[^.;!?\n]|\.(?=\d)){2,160})",
    re.I,
)


_DEP_ONCE = re.compile(
    r"\b(?:once|when|as soon as|until)\s+(?P<target>(?:[^.;!?\n]|\.(?=\d)){2,120}?)\s+(?:is|are|has been|have been)\s+"
    r"(?:done|complete|completed|ready|in place|available|finished|shipped|live|implemented|merged|stable|built|"
    r"delivered|working)\b",
    re.I,
)


_DEP_WEAK = re.compile(
    r"\b(?:requires|require|required|needs|need|requiring)(?!\s+to\b)\s+(?P<target>(?:[^.;!?\n]|\.(?=\d)){2,160})", re.I
)


_DEP_REVERSE = re.compile(
    r"\b(?:before|blocks|prerequisite for|is needed by|needed by|unblocks)\s+(?P<target>(?:[^.;!?\n]|\.(?=\d)){2,160})",
    re.I,
)


_TARGET_STOP = re.compile(
    r",|\s(?:and then|so|so that|because|to|which|where|while|but|then|in order|otherwise|unless|since|"
    r"for|with|via|using|is|are|has|have|was|were|can|will|must|should)\s|\(|\)|\s[—–-]\s",
    re.I,
)


_TARGET_LEAD = re.compile(
    r"^(?:(?:the|a|an|our|both|all|any|existing|completed|finished|working|successful|having|first|its|their|"
    r"completion of|implementation of|the completion of|work on|delivery of|that|this|these)\s+)+",
    re.I,
)


_TARGET_TAIL = re.compile(
    r"\s+(?:is|are|has been|have been)?\s*(?:done|complete|completed|ready|in place|available|finished|shipped|"
    r"live|implemented|merged|stable|built|delivered|working|feature|work|task|tasks|section)$",
    re.I,
)


_EXPLICIT_REF = re.compile(
    r"(?P<reqid>\b[A-Z][A-Z0-9]{0,7}-\d{1,4}(?:\.\d+)*\b|\b[A-Z]{1,4}\d{1,4}(?:\.\d+)*\b)"
    r"|\b(?P<kind>task|item|step|requirement|req|story|bug|#)\s*#?(?P<num>\d{1,4}(?:\.\d+)?)\b"
    r"|(?:\bsection|§)\s*(?P<section>\d{1,2}(?:\.\d{1,2})*)"
    r"|(?:^\s*|\(\s*|\bsee\s+)(?P<decimal>\d{1,2}\.\d{1,2}(?:\.\d{1,2})*)\b(?!\s*(?:%|[a-zA-Z]{1,3}\b))"
    r"|\b(?P<phase>phase|milestone|stage|sprint|iteration|release|part|epic)\s+(?P<pnum>\d+|[ivx]{1,4}|one|two|"
    r"three|four|five|six|seven|eight|nine|ten)\b",
    re.I,
)


_SPLIT_TARGETS = re.compile(r"\s*(?:,|\band\b|&|\bplus\b|\bas well as\b|/)\s*", re.I)


RELATION = re.compile(
    r"^(?P<left>.+?)\s+(?P<kw>depends (?:up)?on|requires|needs|builds on|is blocked by|blocked by|comes after|"
    r"follows|after|must precede|precedes|comes before|before|blocks|unblocks|->|→|=>)\s+(?P<right>.+)$",
    re.I,
)


SUPPORT_TYPES = frozenset({"test", "docs"})


STRONG = 0.6


WEAK = 0.75


_DEP_HINT = re.compile(
    r"depend|build|built|blocked|rel(?:y|ies)|wait|after|follow|subsequent|prerequisite|extends|once|when|soon|"
    r"until|requir|need|before|blocks",
    re.I,
)


def dependency_phrases(text: str) -> list[tuple[str, float, bool]]:
    """Every (target, score threshold, reverse) a requirement's wording gives: "after X" → (X, strong, False)."""
    found: list[tuple[str, float, bool]] = []
    if not _DEP_HINT.search(text):
        return found
    for pattern, threshold, reverse in (
        (_DEP_STRONG, STRONG, False),
        (_DEP_ONCE, STRONG, False),
        (_DEP_WEAK, WEAK, False),
        (_DEP_REVERSE, WEAK, True),
    ):
        for match in pattern.finditer(text):
            found.append((match.group("target"), threshold, reverse))
    return found


class ReferenceIndex:
    """Finds the units (or sections) a phrase like "the payment processing work" refers to.

    Words are weighed by rarity among the units; a unit's title counts first, the first sentence of its text second.
    """

    def __init__(self, units: list[Unit], sections: list[Section], vocab: Vocabulary) -> None:
        self.units = units
        self.sections = sections
        self.vocab = vocab
        self.title_tokens: dict[Unit, frozenset[str]] = {}
        self.head_tokens: dict[Unit, frozenset[str]] = {}
        """The first words of a title name its subject ("tidyup *scan*", not "a --json flag on scan")."""
        self.all_tokens: dict[Unit, frozenset[str]] = {}
        self.by_token: dict[str, list[Unit]] = defaultdict(list)
        self.by_title_token: dict[str, list[Unit]] = defaultdict(list)
        self.by_label: dict[str, list[Unit]] = defaultdict(list)
        self.section_tokens: dict[Section, frozenset[str]] = {}
        self.section_by_token: dict[str, list[Section]] = defaultdict(list)
        self.section_members: dict[Section, list[Unit]] = {}
        self._numbered: dict[tuple[str, str], list[Section]] | None = None
        self.position = {u: i for i, u in enumerate(units)}
        self.frequency: dict[str, int] = defaultdict(int)
        for unit in units:
            ordered = tokens(unit.title)
            self.head_tokens[unit] = frozenset(ordered[:2])
            title = set(ordered)
            if unit.is_section_task:
                title |= set(tokens(plain_heading(unit.section.title)))
            words = set(title)
            if unit.item is not None:
                words |= set(tokens(without_dependencies(first_sentence(unit.item.text))))
            self.title_tokens[unit] = frozenset(title)
            for word in title:
                self.by_title_token[word].append(unit)
            self.all_tokens[unit] = frozenset(words)
            for word in words:
                self.by_token[word].append(unit)
                self.frequency[word] += 1
            for label in unit.labels:
                self.by_label[label.upper()].append(unit)
        for section in sections:
            words = set(tokens(plain_heading(section.title)))
            self.section_tokens[section] = frozenset(words)
            for word in words:
                self.section_by_token[word].append(section)
        self.total = max(1, len(units))
        self.idf = {word: math.log(1 + self.total / count) for word, count in self.frequency.items()}
        # a word no task uses cannot tell tasks apart ("the invoicing *engine*"): it weighs little
        self.default_idf = 0.5

    def weight(self, word: str) -> float:
        return self.idf.get(word, self.default_idf)

    def score(self, wanted: set[str], have: frozenset[str]) -> float:
        overlap = wanted & have
        if not overlap:
            return 0.0
        return sum(self.weight(w) for w in overlap) / sum(self.weight(w) for w in wanted)

    def distinctive(self, overlap: set[str]) -> bool:
        """One shared word is enough only when few units use it."""
        if len(overlap) >= 2:
            return True
        return all(self.frequency.get(w, 0) <= max(3, self.total // 3) for w in overlap)

    def best(self, text: str, *, threshold: float, among: list[Unit], loose: bool = False) -> Unit | None:
        """The unit of `among` that `text` (a criterion, a sub-heading) is most about, if any is close enough."""
        wanted = set(tokens(clean_inline(text)))
        if not wanted:
            return None
        allowed = set(among)
        if len(among) <= 64:
            candidates: Iterable[Unit] = among
        else:
            candidates = dict.fromkeys(u for w in wanted for u in self.by_token.get(w, ()) if u in allowed)
        best: tuple[float, float, int] | None = None
        chosen = None
        for unit in candidates:
            if unit not in self.all_tokens:
                continue
            have = self.all_tokens[unit]
            if loose:
                # a criterion is long and a title short: measure how much of the unit it covers
                overlap = wanted & have
                score = len(overlap) / max(1, len(have))
                strength = sum(self.weight(w) for w in overlap)
            else:
                score, strength = self.score(wanted, have), self.score(wanted, self.title_tokens[unit])
            key = (score, strength, -self.position[unit])
            if best is None or key > best:
                best, chosen = key, unit
        if best is None or best[0] < threshold:
            return None
        return chosen

    def resolve(self, target: str, origin: Unit, threshold: float, *, exclude: set[Unit] | None = None) -> list[Unit]:
        """The units `target` (a phrase after "depends on") names, seen from `origin`."""
        excluded = {origin, *origin.ancestors(), *origin.descendants()} | (exclude or set())
        found = [u for u in self.explicit(target, origin) if u not in excluded]
        if found:
            return found
        text = clip_target(target)
        if not text:
            return []
        parts = [p for p in _SPLIT_TARGETS.split(text) if p and tokens(p)]
        results: list[Unit] = []
        for part in parts if len(parts) > 1 else [text]:
            results.extend(self.fuzzy(part, origin, threshold, excluded))
        if not results and len(parts) > 1:
            results = self.fuzzy(text, origin, threshold, excluded)
        return list(dict.fromkeys(results))

    def resolve_any(self, text: str, threshold: float) -> list[Unit]:
        """Like `resolve`, for a statement of the Dependencies section that has no unit of its own."""
        found = self.explicit(text, None)
        if found:
            return found
        clipped = clip_target(text)
        return self.fuzzy(clipped, None, threshold, set()) if clipped else []

    def explicit(self, target: str, origin: Unit | None) -> list[Unit]:
        """Units named by id or number: "FR-2", "task 3", "section 6.4", "(6.4)", "phase 2"."""
        found: list[Unit] = []
        for match in _EXPLICIT_REF.finditer(target):
            if match.group("reqid"):
                found.extend(self.by_label.get(match.group("reqid").upper(), ()))
            elif match.group("num"):
                found.extend(self.numbered(match.group("num"), origin))
            elif match.group("section") or match.group("decimal"):
                number = match.group("section") or match.group("decimal")
                for section in self.numbered_sections().get(("", number), ()):
                    found.extend(self.section_members.get(section, ()))
            elif match.group("phase"):
                key = (match.group("phase").lower(), roman_or_word_to_number(match.group("pnum")))
                for section in self.numbered_sections().get(key, ()):
                    found.extend(self.section_members.get(section, ()))
        return list(dict.fromkeys(found))

    def numbered_sections(self) -> dict[tuple[str, str], list[Section]]:
        """Sections by ("", "3.2") and by ("phase", "2"), built on first use."""
        if self._numbered is None:
            table: dict[tuple[str, str], list[Section]] = defaultdict(list)
            for section in self.section_members:
                if section.number:
                    table[("", section.number)].append(section)
                    if section.keyword:
                        table[(section.keyword, roman_or_word_to_number(section.number))].append(section)
            self._numbered = table
        return self._numbered

    def numbered(self, number: str, origin: Unit | None) -> list[Unit]:
        candidates = self.by_label.get(number.upper(), [])
        if not candidates:
            return []
        if origin is not None:
            for scope in (origin.section, origin.section.parent):
                near = [u for u in candidates if u.section is scope]
                if near:
                    return near[:1]
        return candidates[:1] if len(candidates) == 1 else []

    def fuzzy(self, text: str, origin: Unit | None, threshold: float, excluded: set[Unit]) -> list[Unit]:
        """The unit (or the units of a section) whose title the words of `text` name best, if any is close enough."""
        wanted = set(tokens(text))
        if not wanted:
            return []
        total_weight = sum(self.weight(w) for w in wanted)
        # the phrase must name a unit: share a word with its title, not only with its prose. Candidates come from
        # the phrase's rarer words; when every word is in a large share of the titles, the phrase is too vague.
        limit = max(64, self.total // 20)
        rare = [w for w in wanted if 0 < len(self.by_title_token.get(w, ())) <= limit]
        title_weight: dict[Unit, float] = {}
        for word in rare:
            for unit in self.by_title_token[word]:
                if unit not in title_weight:
                    title_weight[unit] = sum(self.weight(w) for w in wanted & self.title_tokens[unit])
        best_unit: tuple[float, int, float, float, int, int] | None = None
        chosen: Unit | None = None
        origin_position = self.position.get(origin, 0) if origin is not None else 0
        position_of = self.position
        # past a few dozen equally good candidates a phrase is too vague to be worth an edge
        ranked = heapq.nsmallest(64, title_weight.items(), key=lambda pair: (-pair[1], position_of[pair[0]]))
        for unit, weight in ranked:
            title_score = weight / total_weight
            if best_unit is not None and title_score < best_unit[0]:
                break
            if unit in excluded:
                continue
            if origin is not None and origin.type not in SUPPORT_TYPES and unit.type in SUPPORT_TYPES:
                # a feature waits for other features, not for the tests or the docs of one
                continue
            have = self.all_tokens[unit]
            overlap = wanted & have
            score = sum(self.weight(w) for w in overlap) / total_weight
            if score < threshold or not self.distinctive(overlap):
                continue
            title = self.title_tokens[unit]
            coverage = len(wanted & title) / max(1, len(title))
            position = self.position[unit]
            head = len(wanted & self.head_tokens[unit])
            before = 1 if position < origin_position else 0
            key = (title_score, head, score, coverage, before, -abs(position - origin_position))
            if best_unit is None or key > best_unit:
                best_unit, chosen = key, unit
        own_sections: set[Section] = set()
        if origin is not None:
            node: Section | None = origin.section
            while node is not None:
                own_sections.add(node)
                node = node.parent
        best_section: tuple[float, float] | None = None
        section_choice: Section | None = None
        section_weight: dict[Section, float] = defaultdict(float)
        for word in wanted:
            weight = self.weight(word)
            for section in self.section_by_token.get(word, ()):
                section_weight[section] += weight
        for section, weight in section_weight.items():
            if section in own_sections:
                continue
            score = weight / total_weight
            if score < threshold:
                continue
            have = self.section_tokens[section]
            coverage = len(wanted & have) / max(1, len(have))
            if coverage >= 0.5 and (best_section is None or (score, coverage) > best_section):
                best_section, section_choice = (score, coverage), section
        if section_choice is not None and best_section is not None:
            members = [u for u in self.section_members.get(section_choice, []) if u not in excluded]
            unit_score = best_unit[0] if best_unit is not None else 0.0
            if members and (best_section[0] > unit_score + 0.1 or (len(members) == 1 and best_section[1] >= 0.99)):
                return members
        return [chosen] if chosen is not None else []


_DEPENDENCY_CLAUSE = re.compile(
    r"(?:^|[,;(]\s*|\s)(?:once|after|depends? on|requires?|required|needs|builds? on|blocked by|relies on)\b[^,.;()]*",
    re.I,
)


def without_dependencies(text: str) -> str:
    """The requirement without its "once X is done" / "requires X" clauses: X names another task, not this one."""
    return _DEPENDENCY_CLAUSE.sub(" ", text)


def clip_target(target: str) -> str:
    """The name inside a dependency phrase: "the payment work, so that …" → "payment"."""
    text = clean_inline(target)
    stop = _TARGET_STOP.search(" " + text + " ")
    if stop:
        text = (" " + text + " ")[: stop.start()].strip()
    words = text.split()
    text = " ".join(words[:10])
    text = _TARGET_LEAD.sub("", text)
    text = _TARGET_TAIL.sub("", text)
    return text.strip(" .,:;\"'")
