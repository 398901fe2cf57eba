"""What a requirement's words say: priority, task type, rough complexity, and a short imperative title.

Pure functions over strings (plus a per-document vocabulary for capitalisation), shared by the offline planner.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable
from functools import lru_cache

from taskmaster.tasks.schemas import TaskType

__all__ = [
    "Vocabulary",
    "clean_inline",
    "complexity_of",
    "description_of",
    "first_sentence",
    "make_title",
    "plain_heading",
    "priority_of",
    "section_priority",
    "stem",
    "tokens",
    "type_of",
]


def _word_set(words: str) -> frozenset[str]:
    """A set of words written as one string (lists of words read better as prose than as one item per line)."""
    return frozenset(words.split())


# --- cleaning ---------------------------------------------------------------------------------------------------------

_LINK = re.compile(r"!?\[([^\]]*)\]\([^)]*\)")
_EMPHASIS = re.compile(r"(\*\*|__|\*|_|~~)(?=\S)(.+?)(?<=\S)\1")
_CODE = re.compile(r"`([^`]*)`")
_HTML = re.compile(r"</?[a-zA-Z][^>]*>")
_CHECKBOX = re.compile(r"^\s*\[[ xX]\]\s+")
_LEADING_ID = re.compile(
    r"^\s*(?:[A-Z][A-Z0-9]{0,7}-\d{1,4}(?:\.\d+)*|[A-Z]{1,4}\d{1,4}(?:\.\d+)*|#\d+)\s*[:.)\-–—]\s*(?=\S)"
)
_TAG = re.compile(
    r"\s*[\[(]\s*(?:P[0-4]|critical|high|medium|med|low|lowest|highest|must(?:[- ]have)?|should(?:[- ]have)?|"
    r"could(?:[- ]have)?|may|won'?t(?:[- ]have)?|nice[- ]to[- ]have|optional|blocker|urgent|minor|major|trivial|"
    r"(?:high|medium|low) priority|priority:?\s*\w+|sev(?:erity)?[ -]?\d)\s*[\])]",
    re.I,
)


_SPACES = re.compile(r"\s+")


@lru_cache(maxsize=65536)
def clean_inline(text: str) -> str:
    """Markdown emphasis, links, code ticks, HTML tags and checkboxes removed; whitespace collapsed."""
    if "[" in text:
        text = _LINK.sub(r"\1", _CHECKBOX.sub("", text))
    if "`" in text:
        text = _CODE.sub(r"\1", text)
    if "<" in text:
        text = _HTML.sub("", text)
    if "*" in text or "_" in text or "~" in text:
        for _ in range(2):
            text = _EMPHASIS.sub(r"\2", text)
    return _SPACES.sub(" ", text).strip()


# the punctuation first, so that the look-behinds (initials, "e.g.", "etc.") only run where a sentence may end
_SENTENCE_END = re.compile(r"[.!?](?<!\b[A-Z]\.)(?<!\be\.g\.)(?<!\bi\.e\.)(?<!\betc\.)(?<!\bvs\.)\s+(?=[A-Z0-9\"'(])")


@lru_cache(maxsize=65536)
def first_sentence(text: str) -> str:
    """The first sentence of `text`, cleaned of Markdown; "e.g.", initials and "etc." do not end one."""
    text = clean_inline(text.split("\n```", 1)[0])
    match = _SENTENCE_END.search(text)
    return text[: match.start() + 1] if match else text


def description_of(text: str, limit: int = 300) -> str:
    """One or two sentences of the requirement, ending with a full stop."""
    text = _LEADING_ID.sub("", clean_inline(text.split("\n```", 1)[0]))
    text = _TAG.sub("", text).strip()
    sentence = first_sentence(text)
    if len(sentence) < 60 and len(text) > len(sentence):
        rest = first_sentence(text[len(sentence) :].strip())
        if len(sentence) + len(rest) < limit:
            sentence = (sentence + " " + rest).strip()
    if len(sentence) > limit:
        cut = sentence[:limit].rsplit(" ", 1)[0]
        sentence = cut.rstrip(",;:") + "…"
    if sentence and sentence[-1] not in ".!?…:":
        sentence += "."
    if sentence.endswith(":"):
        sentence = sentence[:-1] + "."
    return sentence[:1].upper() + sentence[1:]


_DEFERRED_WORDS = re.compile(r"won'?t|will not|later|someday|future", re.I)
_PRIORITY_HEADING = re.compile(r"priority|prio\b|importance", re.I)
_BUG_LABEL = re.compile(r"^(bug|fix)\s*:", re.I)
_CLAUSE_WORD = re.compile(r"\b(when|if|after|while|on|in|with|for|during|because)\b", re.I)
_WANT_LEAD = re.compile(r"^(be able to|to)\s+", re.I)
_DETERMINER_START = re.compile(r"^(the|a|an|my|our)\s", re.I)
_LEADING_CONDITION = re.compile(r"^(after|once|when|whenever|if|before|during|on|upon|for|with|in)\b", re.I)
_NOUN_PHRASE_START = re.compile(r"\b(the|a|an|each|every|all|any|its|their)\b", re.I)
_ADVERB_LEAD = re.compile(r"^(also|always|only|automatically|now)\s+", re.I)
_BE_ABLE = re.compile(r"^be able to\s+(.+)$", re.I)
_PASSIVE = re.compile(r"^(?:be|get)\s+(\w+)\s*(.*)$", re.I)
_PASSIVE_TAIL = re.compile(r"(?:^|\s+)and\s+(?:\S+\s+){0,4}?(?:be\s+)?\w+(?:ed|en)\b.*$")
_INFINITIVE = re.compile(r"^to\s+\w", re.I)
_KIND_LABEL = re.compile(r"(bug|fix|issue|story|feature)\s*#?\d*", re.I)


_TITLE_NUMBER = re.compile(r"^(\d{1,2}(?:\.\d{1,2})*|[ivx]{1,4}|[a-h])[.)]?\s+")


_TITLE_PARENS = re.compile(r"\s*\([^)]*\)\s*")


@lru_cache(maxsize=4096)
def plain_heading(title: str) -> str:
    """A heading reduced to its words: no numbering, emphasis, parentheses or trailing colon; lower case."""
    text = clean_inline(title).lower().replace("&", "and")
    text = _TITLE_NUMBER.sub("", text)
    text = _TITLE_PARENS.sub(" ", text)
    return text.strip(" :.-–—").strip()


# --- priority ---------------------------------------------------------------------------------------------------------

_PRIORITY_WORDS: dict[str, int] = {
    "p0": 1,
    "critical": 1,
    "blocker": 1,
    "urgent": 1,
    "highest": 1,
    "showstopper": 1,
    "sev1": 1,
    "p1": 2,
    "high": 2,
    "must": 2,
    "must-have": 2,
    "required": 2,
    "major": 2,
    "important": 2,
    "shall": 2,
    "sev2": 2,
    "p2": 3,
    "medium": 3,
    "med": 3,
    "normal": 3,
    "should": 3,
    "should-have": 3,
    "moderate": 3,
    "sev3": 3,
    "p3": 4,
    "low": 4,
    "could": 4,
    "could-have": 4,
    "may": 4,
    "nice-to-have": 4,
    "optional": 4,
    "minor": 4,
    "stretch": 4,
    "sev4": 4,
    "p4": 5,
    "lowest": 5,
    "trivial": 5,
    "won't": 5,
    "wont": 5,
    "won't-have": 5,
    "later": 5,
    "someday": 5,
    "future": 5,
}


def _normalise_word(word: str) -> str:
    word = word.lower().replace("’", "'").strip(" .:")
    word = re.sub(r"[\s_]+", "-", word)
    word = re.sub(r"^sev(?:erity)?-?(\d)$", r"sev\1", word)
    return word.replace("won't-have-(this-time)", "won't-have")


def word_priority(word: str) -> int | None:
    """A priority word or cell ("High", "P1", "Must have", "nice to have") as 1–5."""
    word = _normalise_word(word)
    if word in _PRIORITY_WORDS:
        return _PRIORITY_WORDS[word]
    head = word.split("-")[0]
    if word.endswith("-have") or word.endswith("-priority"):
        return _PRIORITY_WORDS.get(head) or _PRIORITY_WORDS.get(word)
    return _PRIORITY_WORDS.get(head) if head in {"p0", "p1", "p2", "p3", "p4", "critical", "high", "low"} else None


_EXPLICIT = re.compile(
    r"[\[(]\s*(P[0-4]|critical|highest|high|medium|med|low|lowest|must(?:[- ]have)?|should(?:[- ]have)?|"
    r"could(?:[- ]have)?|may|won'?t(?:[- ]have)?|nice[- ]to[- ]have|optional|blocker|urgent|minor|major|trivial|"
    r"sev(?:erity)?[ -]?[1-4])\s*[\])]"
    r"|\bpriority\s*(?:is|=|:|-|–)?\s*(P[0-4]|critical|highest|high|medium|med|low|lowest|[1-5])\b"
    r"|\b(critical|highest|high|medium|low|lowest)[- ]priority\b"
    r"|(?<![\w-])(P[0-4])(?![\w-])",
    re.I,
)
_MAYBE_EXPLICIT = re.compile(r"[\[(]|priority|\bP[0-4]\b", re.I)
_PHRASES = re.compile(
    r"\b(critical|blocker|urgent|show-?stopper|must[- ]have|should[- ]have|could[- ]have|"
    r"nice[- ]to[- ]have|won'?t[- ]have|stretch goal)\b",
    re.I,
)
_RFC_UPPER = re.compile(r"\b(MUST|SHALL|REQUIRED|SHOULD|RECOMMENDED|MAY|COULD|OPTIONAL|WON'?T|WILL NOT)\b")
_RFC_LOWER = re.compile(
    r"\b(must|shall|is required to|are required to|needs to|need to|has to|have to|should|could)\b"
    r"|\((optional)\)|\b(optionally)\b|^(optional)\b|\bis (optional)\b",
    re.I,
)
_RFC_MAP = {
    "must": 2,
    "shall": 2,
    "required": 2,
    "is required to": 2,
    "are required to": 2,
    "needs to": 2,
    "need to": 2,
    "has to": 2,
    "have to": 2,
    "should": 3,
    "recommended": 3,
    "may": 4,
    "could": 4,
    "optional": 4,
    "optionally": 4,
    "won't": 5,
    "wont": 5,
    "will not": 5,
}


def priority_of(text: str) -> tuple[int | None, bool]:
    """The priority the wording gives (1 = highest … 5), and whether it says the work is deferred (WON'T).

    Explicit tags ("[P1]", "priority: high") win over phrases ("nice to have"), which win over RFC 2119 words in
    capitals (MUST, SHOULD, MAY), which win over the same words in lower case. Within one kind the highest wins.
    """
    levels: list[int] = []
    if _MAYBE_EXPLICIT.search(text):
        found = [word_priority(next(g for g in m.groups() if g)) for m in _EXPLICIT.finditer(text)]
        levels = [p for p in found if p is not None]
    if not levels:
        levels = [p for p in (word_priority(m.group(1)) for m in _PHRASES.finditer(text)) if p is not None]
    if not levels:
        words = [m.group(1).lower().replace("’", "'") for m in _RFC_UPPER.finditer(text)]
        levels = [_RFC_MAP[w] for w in words if w in _RFC_MAP]
    if not levels:
        for match in _RFC_LOWER.finditer(text):
            word = next(g for g in match.groups() if g).lower()
            if word in _RFC_MAP:
                levels.append(_RFC_MAP[word])
    if not levels:
        return None, False
    best = min(levels)
    return best, best == 5 and bool(_DEFERRED_WORDS.search(text))


_SECTION_PRIORITY = re.compile(
    r"\b(must[- ]haves?|should[- ]haves?|could[- ]haves?|nice[- ]to[- ]haves?|won'?t[- ]haves?|"
    r"P[0-4]|critical|blockers?|high|medium|low|optional|stretch(?: goals?)?|future|later|someday)\b",
    re.I,
)


@lru_cache(maxsize=4096)
def section_priority(title: str) -> tuple[int | None, bool]:
    """Priority a heading gives to everything under it ("Must have", "P2", "Nice to have", "Future work")."""
    match = _SECTION_PRIORITY.search(title)
    if not match:
        return None, False
    word = match.group(1).lower().rstrip("s")
    if word in {"high", "medium", "low"} and not _PRIORITY_HEADING.search(title):
        return None, False
    if word in {"future", "later", "someday"}:
        return 5, True
    if word.startswith("stretch"):
        return 4, False
    level = word_priority(word)
    return level, level == 5


# --- type -------------------------------------------------------------------------------------------------------------

_BUG_TITLE = re.compile(
    r"^(fix|resolve|repair|patch|debug|correct)\b|\bcrash(es|ing)?\b(?!(?:\s+and\s+\w+)?\s+report)|"
    r"\b(bugs?|defects?|regressions?|broken|"
    r"incorrect(ly)?|wrong|fails?|failing|doesn'?t work|does not work|hangs?|freezes?|leaks?)\b",
    re.I,
)
_TEST_TITLE = re.compile(
    r"^(test|add tests?|write tests?|cover)\b|\b(tests|test suite|e2e|end-to-end tests?|unit tests?|"
    r"integration tests?|load tests?|smoke tests?|test coverage|coverage)\b",
    re.I,
)
_DOCS_TITLE = re.compile(
    r"^(document|write docs?)\b|\b(docs|documentation|readme|user guide|guides?|tutorials?|changelog|"
    r"api reference|man pages?|help text)\b",
    re.I,
)
_CHORE_TITLE = re.compile(
    r"^(refactor|clean ?up|upgrade|bump|rename|reorganize|reorganise|migrate (the )?(build|ci|tooling)|set up|setup|"
    r"scaffold|bootstrap|initiali[sz]e)\b|"
    r"\b(refactor(ing)?|clean-?up|chores?|ci/cd|continuous integration|linting|linters?|pre-commit|tech(nical)? debt|"
    r"tooling|dependency (updates?|upgrades?)|build pipeline)\b|(?<![\w/])CI(?![\w/])",
    re.I,
)
_SECTION_TYPES: list[tuple[TaskType, re.Pattern[str]]] = [
    ("bug", re.compile(r"\b(bugs?|bug ?fix(es)?|known issues|defects|issues to fix|fixes|regressions)\b", re.I)),
    ("test", re.compile(r"\b(testing|tests|test plan|qa|quality assurance)\b", re.I)),
    ("docs", re.compile(r"\b(docs|documentation|guides?)\b", re.I)),
    ("chore", re.compile(r"\b(chores?|maintenance|tech(nical)? debt|refactor(ing)?|clean-?up|ci/cd|tooling)\b", re.I)),
]
_TYPE_WORDS: dict[str, TaskType] = {
    "bug": "bug",
    "defect": "bug",
    "fix": "bug",
    "bugfix": "bug",
    "test": "test",
    "tests": "test",
    "testing": "test",
    "qa": "test",
    "docs": "docs",
    "doc": "docs",
    "documentation": "docs",
    "chore": "chore",
    "refactor": "chore",
    "maintenance": "chore",
    "ci": "chore",
    "feature": "feature",
    "story": "feature",
    "enhancement": "feature",
}


_TITLE_TYPES: list[tuple[TaskType, re.Pattern[str]]] = [
    ("bug", _BUG_TITLE),
    ("test", _TEST_TITLE),
    ("docs", _DOCS_TITLE),
    ("chore", _CHORE_TITLE),
]


@lru_cache(maxsize=4096)
def _section_type(title: str) -> TaskType | None:
    for kind, pattern in _SECTION_TYPES:
        if pattern.search(title):
            return kind
    return None


def type_of(title: str, text: str, section_titles: Iterable[str], explicit: str | None = None) -> TaskType:
    """bug / test / docs / chore / feature, from an explicit "Type:" value, then the title, then the section."""
    if explicit:
        word = explicit.strip().lower().split()[0] if explicit.strip() else ""
        if word in _TYPE_WORDS:
            return _TYPE_WORDS[word]
    for kind, pattern in _TITLE_TYPES:
        if pattern.search(title):
            return kind
    for section in reversed(list(section_titles)):
        found = _section_type(section)
        if found is not None:
            return found
    head = first_sentence(text)
    if _BUG_LABEL.search(head):
        return "bug"
    return "feature"


# --- complexity -------------------------------------------------------------------------------------------------------

_HARD_PREFIXES = sorted(
    _word_set(
        """integrat migrat payment billing securit encrypt oauth sso saml auth real-time realtime sync offline
    distribut concurren performan scal caching search machine recommend analytic complian gdpr pci hipaa webhook
    queue retry retries idempoten multi-tenan multitenan permission rbac transaction rollback failover streaming
    parser algorithm"""
    )
)
_HARD_KEYS = {prefix[:4]: [p for p in _HARD_PREFIXES if p[:4] == prefix[:4]] for prefix in _HARD_PREFIXES}
_EASY_WORDS = _word_set("""typo copy wording label color colour rename tooltip icon readme link spacing""")


def complexity_of(text: str, subpoints: int) -> int:
    """Rough effort 1–10 from how much the requirement says, how many sub-points it has, and risky topics."""
    # str.split over a regex: this runs on every requirement and every section of a long document
    words = text.lower().split()
    hard: set[str] = set()
    easy = False
    for word in set(words):
        word = word.strip(".,;:!?()[]\"'`*_")
        for prefix in _HARD_KEYS.get(word[:4], ()):
            if word.startswith(prefix):
                hard.add(prefix[:6])
        easy = easy or word in _EASY_WORDS
    score = 1.5 + 1.6 * math.log2(1 + len(words) / 20) + 0.6 * min(subpoints, 8) + 0.9 * min(len(hard), 4)
    if easy and not hard:
        score -= 1.0
    return max(1, min(10, round(score)))


# --- tokens (for matching references) ---------------------------------------------------------------------------------

STOPWORDS = _word_set(
    """a an the and or of to in on for with by at from as is are be been being it its this that these those we our
    us you your they their them he she his her i me my not no yes do does did done can could may might must
    shall should will would need needs needed has have had so such than then there here when where which who
    whom whose what how all any each every some more most other into onto over under about after before once
    until while also only just both either neither via per e.g i.e etc using use used user users system app
    application able new support supports allow allows make ensure implement add feature features task tasks
    requirement requirements section phase step item complete completed finished ready available place work
    working"""
)
_WORD = re.compile(r"[A-Za-z][A-Za-z0-9+#]*(?:[-'][A-Za-z0-9]+)*")


@lru_cache(maxsize=65536)
def stem(word: str) -> str:
    """A crude suffix stripper: enough for "payments"/"payment", "processing"/"processed"/"process" to meet."""
    word = word.lower().replace("'s", "")
    if len(word) <= 3:
        return word
    for suffix, replacement in (
        ("ational", "ate"),
        ("ations", ""),
        ("ation", ""),
        ("ments", ""),
        ("ment", ""),
        ("ings", ""),
        ("ing", ""),
        ("ies", "y"),
        ("ied", "y"),
        ("ers", ""),
        ("er", ""),
        ("ed", ""),
        ("es", ""),
        ("s", ""),
    ):
        if word.endswith(suffix) and len(word) - len(suffix) >= 3 and not word.endswith("ss"):
            word = word[: len(word) - len(suffix)] + replacement
            break
    if len(word) > 3 and word.endswith("e"):
        word = word[:-1]
    if len(word) > 3 and word[-1] == word[-2] and word[-1] not in "aeiouls":
        word = word[:-1]
    return word


def tokens(text: str) -> list[str]:
    """Content-word stems of `text`, in order, without stop words."""
    return list(_tokens(text))


@lru_cache(maxsize=65536)
def _tokens(text: str) -> tuple[str, ...]:
    out: list[str] = []
    for match in _WORD.finditer(text):
        word = match.group(0).lower()
        if word in STOPWORDS or len(word) < 2:
            continue
        out.append(stem(word))
    return tuple(out)


# --- titles -----------------------------------------------------------------------------------------------------------

VERBS = _word_set(
    """accept add adopt aggregate alert allow analyse analyze animate anonymize apply approve archive assign attach
    audit authenticate authorize automate backfill batch benchmark block bootstrap build bump bundle cache
    calculate cancel capture change charge check choose claim clean clear close collect combine compile compress
    compute configure confirm connect consolidate convert copy create debounce decide decouple decrypt
    deduplicate define delete deliver deploy deprecate design detect disable display distribute document
    download draft drop edit email embed emit enable encode encrypt enforce ensure escape estimate evaluate
    expire explain export expose extend extract fetch filter finalize fix flag follow forbid format generate
    group guard handle harden hash hide highlight host identify implement import improve include increase index
    initialize inject install instrument integrate introduce invalidate investigate invite isolate keep label
    launch let limit link list load localize lock log make manage map mark mask measure merge migrate mirror
    model monitor move normalize notify offer onboard open optimise optimize package paginate parse patch pause
    persist pin plan poll polish populate prefetch prepare present preserve prevent preview print prioritize
    process profile prompt protect prototype provide provision prune publish purge push queue rank rate read
    rebuild receive recommend reconcile record recover redact redesign redirect reduce refactor refresh refund
    register reject release reload remember remove rename render reorder repair replace replicate report request
    require rerun research reset resize resolve respect respond restore restrict resume retain retry return
    reuse revoke rewrite rotate route run sanitize save scaffold scale scan schedule score scrub search secure
    seed select send serve set ship show shut sign simplify skip snapshot sort split standardize start stop
    store stream strip submit subscribe suggest summarize support surface suspend swap switch sync synchronize
    tag test throttle toggle track train transform translate trigger trim truncate unblock unify uninstall
    unlock unsubscribe update upgrade upload use validate verify version warn watch wire write"""
)
_NOUNISH = _word_set(
    """alert audit batch bundle cache change charge check claim copy design display download draft email estimate
    export filter flag follow format group host import index label launch link list load lock log map mark
    mirror model monitor package patch pin plan poll preview print process profile prompt prototype push queue
    rank rate record refund release report request reset retry return review route scan schedule score search
    seed select ship show sign skip snapshot sort split start stop store stream support surface swap switch sync
    tag test toggle track trigger update upgrade upload version watch wire"""
)
"""Verbs that are as often nouns ("Route planner", "Follow mode"): imperative only before an object."""
_OBJECT_START = _word_set(
    """the a an all each every any some its their our your his her this that these those new existing old stale
    multiple more both missing user users it them up out in on to for with from by as when if one two three and
    or other another several many few"""
)
_E_VERBS = _word_set(
    """archive automate calculate cancel change charge choose close combine compile compute configure consolidate
    create deduplicate define delete deprecate disable distribute enable encode enforce escape estimate evaluate
    exchange execute expire finalize generate handle hide include initialize integrate introduce invalidate
    invite isolate localize manage merge migrate move name normalize optimize optimise parse pause prepare
    preserve prioritize produce promote provide prune purge queue rate reconcile reduce release remove rename
    replace require resize resolve restore retrieve reuse revoke rewrite rotate route sanitize save scale
    schedule score scrub serve share simplify size standardize store subscribe summarize synchronize translate
    truncate unsubscribe update use validate write"""
)
_IRREGULAR = {
    "sent": "send",
    "shown": "show",
    "written": "write",
    "built": "build",
    "kept": "keep",
    "made": "make",
    "run": "run",
    "done": "do",
    "given": "give",
    "taken": "take",
    "hidden": "hide",
    "set": "set",
    "put": "put",
    "read": "read",
    "held": "hold",
    "paid": "pay",
    "sold": "sell",
    "told": "tell",
    "found": "find",
    "known": "know",
    "chosen": "choose",
    "bound": "bind",
    "split": "split",
    "cut": "cut",
    "shut": "shut",
    "drawn": "draw",
    "thrown": "throw",
    "rebuilt": "rebuild",
    "rewritten": "rewrite",
    "sent out": "send out",
    "sped": "speed",
    "led": "lead",
    "fed": "feed",
    "left": "leave",
    "lost": "lose",
    "sought": "seek",
    "caught": "catch",
    "brought": "bring",
    "bought": "buy",
    "thought": "think",
    "seen": "see",
    "got": "get",
    "gotten": "get",
    "begun": "begin",
}
_E_ENDINGS = ("ated", "ized", "ised", "ured", "ared", "ored", "ired", "osed", "uded", "ced", "ged", "ved", "uled")


def verb_base(word: str) -> str | None:
    """Base form of a past participle or gerund ("generated" → "generate", "logging" → "log"), or None."""
    low = word.lower()
    if low in _IRREGULAR:
        return _IRREGULAR[low]
    for suffix in ("ed", "ing"):
        if not low.endswith(suffix) or len(low) <= len(suffix) + 2:
            continue
        stem_ = low[: -len(suffix)]
        if suffix == "ed" and stem_.endswith("i"):
            return stem_[:-1] + "y"
        if stem_.endswith("u"):
            return stem_ + "e"
        if suffix == "ing" and stem_ + "e" in _E_VERBS:
            return stem_ + "e"
        if suffix == "ed" and stem_ + "e" in _E_VERBS:
            return stem_ + "e"
        if stem_ in VERBS or stem_ in _E_VERBS:
            return stem_
        if len(stem_) > 2 and stem_[-1] == stem_[-2] and stem_[-1] not in "aeiousl" and stem_[:-1] in VERBS:
            return stem_[:-1]
        if suffix == "ed" and low.endswith(_E_ENDINGS):
            return stem_ + "e"
        if suffix == "ed" and len(stem_) > 2 and stem_[-1] == stem_[-2] and stem_[-1] not in "aeiousl":
            return stem_[:-1]
        return stem_ if suffix == "ed" else None
    return None


_GENERIC_SUBJECT = re.compile(
    r"^(the |our |this |a |an )?(system|app|application|service|platform|product|backend|server|tool|cli|api|"
    r"software|solution|site|website|web app|mobile app|client|implementation|module|component|it|we|you|"
    r"they|everything)$",
    re.I,
)
_HUMAN_SUBJECT = re.compile(
    r"^(the |a |an |each |every |all |any |signed-in |logged-in |new |existing |our )?([\w-]+ )?(users?|admins?|"
    r"administrators?|customers?|owners?|members?|visitors?|guests?|developers?|operators?|managers?|buyers?|"
    r"sellers?|riders?|drivers?|players?|students?|teachers?|patients?|staff|agents?|people|clients?|tenants?|"
    r"subscribers?|editors?|viewers?|reviewers?|maintainers?|contributors?|teams?|merchants?|partners?|"
    r"accountants?|support agents?|engineers?)$",
    re.I,
)
_MODAL_SPLIT = re.compile(
    r"^(?P<subj>.{1,80}?)\s+(?P<modal>must not|must|shall not|shall|should not|should|will not|won'?t|will|"
    r"can not|cannot|can|could|may|would|might|needs to|need to|has to|have to|is required to|are required to|"
    r"is expected to|are expected to)\s+(?P<rest>.+)$",
    re.I,
)
_STORY = re.compile(
    r"^as an? (?P<role>[^,]{1,60}),?\s+i (?:want|need|would like|wish|expect)(?: to be able)?(?: to)?\s+"
    r"(?P<want>.+?)(?:,?\s+so (?:that|i can)\b.*)?$",
    re.I,
)
_ABILITY = re.compile(
    r"^(?:the )?(ability|option|possibility|capability|way)(?: for (?P<who>[\w\s-]{1,40}?))? to (?P<rest>.+)$", re.I
)
_SUPPORT_FOR = re.compile(r"^support (?:for|of) (?P<rest>.+)$", re.I)
_TRIM_CLAUSE = re.compile(
    r",?\s+(?:so that|so they|so we|so (?:\w+\s){1,2}(?:can|could|will|may)|in order to|because|which means|since|"
    r"but)\b.*$|\s*[;:]\s.*$|\s+[—–]\s.*$|\s+-\s.*$"
    r"|,?\s+\(?(?:e\.g\.|i\.e\.|for example|such as)\b.*$",
    re.I,
)
_DEPENDENCY_HINT = re.compile(r"depend|requir|need|after|once|blocked|builds|following|see\b", re.I)
_TRIM_DEPENDENCY = re.compile(
    r"\s*(?:[,;(—–]|\s-)\s*(?:(?:this )?(?:depends on|requires|required|needs|after|once|blocked by|builds on|"
    r"following|see)\b).*$",
    re.I,
)
_LONG_CLAUSE = re.compile(r",\s+|\s+(?:when|whenever|if|unless|while|with|using|including|without|except)\s+", re.I)
_BUG_VERB = re.compile(
    r"^(?P<subj>.{2,60}?)\s+(?P<verb>fails|crashes|breaks|hangs|freezes|shows|returns|ignores|loses|leaks|throws|"
    r"prints|exits|reports|duplicates|overwrites|drops|times out|displays|sends|deletes|corrupts|skips|goes|gets|"
    r"becomes|stops|keeps|disappears|flickers|turns|loads|uses|jumps|resets|repeats|"
    r"does not|doesn'?t|is not|isn'?t|are not|aren'?t|cannot|can'?t|never|always|is|are)\b\s*(?P<rest>.*)$",
    re.I,
)
_NOT_IN_SUBJECT = _word_set(
    """for of with to in on at from by that which who where when if and or but than as via into per"""
)
_WISH = re.compile(r"^(help|be (?:nice|useful|great|good|helpful|handy))\b", re.I)
_STATE_VERBS = _word_set(
    """go live come stay remain appear work run start load respond use take fit last become get happen land"""
)
_TRAILING_STOP = re.compile(r"\s+(the|a|an|of|to|and|or|with|for|in|on|by|at|from|as|its|their|when|if)$", re.I)
_ARTICLE = re.compile(r"^(a|an)\s", re.I)
_GENERIC_LABELS = _word_set(
    """bug feature note story requirement task fix issue must should could may won't wont p0 p1 p2 p3 goal item
    todo"""
)


class Vocabulary:
    """Which capitalised words of a document are names ("Stripe", "Postgres") rather than sentence starts."""

    def __init__(self, text: str) -> None:
        lower = {m.group(0) for m in re.finditer(r"\b[a-z][a-z-]{2,}\b", text)}
        capitalised = {m.group(1).lower() for m in re.finditer(r"(?<=[a-z,;] )([A-Z][a-z][a-zA-Z-]+)", text)}
        self.names = frozenset(capitalised - lower)
        mixed_lines = (line for line in text.splitlines() if any(ch.islower() for ch in line))
        self.acronyms = frozenset(w for line in mixed_lines for w in re.findall(r"\b[A-Z][A-Z0-9]{1,5}\b", line))

    def sentence_case(self, text: str) -> str:
        """An ALL CAPS heading in sentence case, keeping the acronyms the document uses elsewhere."""
        if not text.isupper():
            return text
        words = [w if w in self.acronyms else w.lower() for w in text.split()]
        joined = " ".join(words)
        return joined[:1].upper() + joined[1:]

    def soften(self, phrase: str) -> str:
        """Lower-case the first word of `phrase` unless it is an acronym or a name."""
        if not phrase:
            return phrase
        first, _, rest = phrase.partition(" ")
        if first[1:].lower() != first[1:] or any(ch.isdigit() for ch in first) or not first[:1].isalpha():
            return phrase
        if first.lower() in self.names:
            return phrase
        return first.lower() + (" " + rest if rest else "")


def _capitalise(text: str) -> str:
    return text[:1].upper() + text[1:] if text else text


def _is_plural(subject: str) -> bool:
    head = subject.split()[-1].lower() if subject.split() else ""
    return (head.endswith("s") and not head.endswith(("ss", "us", "is"))) or head in {"people", "staff", "data"}


def _gerund(verb: str) -> str:
    low = verb.lower()
    if low.endswith("ie"):
        return low[:-2] + "ying"
    if low.endswith("e") and not low.endswith(("ee", "ye", "oe")):
        return low[:-1] + "ing"
    return low + "ing"


def _bug_title(text: str, vocab: Vocabulary) -> str:
    match = _BUG_VERB.match(text)
    if not match:
        return "Fix " + vocab.soften(text)
    subject, verb, rest = match.group("subj"), match.group("verb").lower(), match.group("rest")
    if _CLAUSE_WORD.search(subject):
        return "Fix " + vocab.soften(text)
    if verb in {"does not", "doesn't", "doesnt", "is not", "isn't", "are not", "aren't", "cannot", "can't", "never"}:
        if verb in {"is not", "isn't", "are not", "aren't"}:
            phrase = f"{vocab.soften(subject)} not being {rest}"
        else:
            first, _, tail = rest.partition(" ")
            phrase = f"{vocab.soften(subject)} not {_gerund(first)} {tail}".strip()
    elif verb in {"is", "are"}:
        phrase = f"{vocab.soften(subject)} being {rest}"
    elif verb == "always":
        first, _, tail = rest.partition(" ")
        base = first[:-1] if first.endswith("s") and not first.endswith("ss") else first
        phrase = f"{vocab.soften(subject)} always {_gerund(base)} {tail}".strip()
    else:
        first, _, tail = verb.partition(" ")
        base = first[:-2] if first.endswith(("shes", "ches", "xes", "sses", "oes")) else first[:-1]
        phrase = f"{vocab.soften(subject)} {_gerund(base)} {tail} {rest}".replace("  ", " ").strip()
    return "Fix " + phrase


def _imperative_start(first: str, text: str) -> bool:
    if first not in _NOUNISH:
        return True
    words = text.split()
    if len(words) < 2:
        return False
    following = words[1].lower().strip(",.:;")
    return following in _OBJECT_START or (following.endswith("s") and not following.endswith("ss") and len(words) > 2)


def _present_tense(text: str, vocab: Vocabulary) -> str | None:
    """ "`tidy scan` lists what it finds" → "Make tidy scan list what it finds" (a description in present tense)."""
    words = text.split()
    for size in range(1, min(4, len(words) - 2) + 1):
        subject, verb = " ".join(words[:size]), words[size]
        if any(not w[-1].isalnum() or w.lower() in _NOT_IN_SUBJECT for w in words[:size]):
            break
        if not verb.isalpha() or not verb.islower():
            continue
        if _is_plural(subject):
            base = verb
        elif verb.endswith("s") and not verb.endswith("ss"):
            base = verb[:-2] if verb.endswith(("shes", "ches", "xes", "sses", "oes")) else verb[:-1]
        else:
            continue
        if base in VERBS or base in _STATE_VERBS:
            rest = " ".join(words[size + 1 :])
            return f"Make {vocab.soften(subject)} {base} {rest}".strip()
    return None


def _imperative(text: str, vocab: Vocabulary, type_hint: TaskType | None) -> str:
    """Rewrite one cleaned requirement sentence as an imperative phrase (not yet shortened)."""
    story = _STORY.match(text)
    if story:
        want = story.group("want").strip()
        want = _WANT_LEAD.sub("", want)
        first = want.split(" ", 1)[0].lower()
        if first in VERBS:
            return _capitalise(want)
        role = vocab.soften(story.group("role").strip())
        if not _DETERMINER_START.match(role) and not _is_plural(role):
            role = "the " + role
        return f"Let {role} {want}"
    ability = _ABILITY.match(text)
    if ability:
        who, rest = ability.group("who"), ability.group("rest")
        return f"Let {vocab.soften(who.strip())} {rest}" if who else _capitalise(rest)
    support = _SUPPORT_FOR.match(text)
    if support:
        return "Support " + vocab.soften(support.group("rest"))
    first = text.split(" ", 1)[0]
    first_low = first.lower().strip(",:")
    if type_hint == "bug" and first_low not in {"fix", "resolve", "repair", "patch", "correct", "debug"}:
        return _bug_title(text, vocab)
    if first_low in VERBS and _imperative_start(first_low, text):
        return _capitalise(text)
    split = _MODAL_SPLIT.match(text)
    if split and split.group("modal").lower() in {"would", "might"} and not _WISH.match(split.group("rest")):
        # "… what it would delete": a conditional inside a description, not a requirement's modal
        split = None
    if split and len(split.group("subj").split()) <= 8:
        subject, modal, rest = split.group("subj").strip(), split.group("modal").lower(), split.group("rest").strip()
        if _LEADING_CONDITION.match(subject):
            # "After the last retry the subscription must …": the subject is the last noun phrase
            heads = list(_NOUN_PHRASE_START.finditer(subject))
            if len(heads) >= 2:
                subject = subject[heads[-1].start() :]
        if modal in {"would", "might"}:
            return ("Add " if _ARTICLE.match(subject) else "Implement ") + vocab.soften(subject)
        negative = modal in {"must not", "shall not", "should not", "will not", "won't", "wont", "cannot", "can not"}
        rest = _ADVERB_LEAD.sub("", rest)
        able = _BE_ABLE.match(rest)
        if able:
            return (
                f"Let {vocab.soften(subject)} {able.group(1)}"
                if not negative
                else f"Prevent {vocab.soften(subject)} from {able.group(1)}"
            )
        passive = _PASSIVE.match(rest)
        if passive:
            participle, tail = passive.group(1), passive.group(2)
            base = (
                verb_base(participle)
                if participle.lower().endswith(("ed", "en", "wn", "nt", "lt", "id", "ld"))
                or participle.lower() in _IRREGULAR
                else None
            )
            if base and not negative:
                tail = _PASSIVE_TAIL.sub("", tail)
                return f"{_capitalise(base)} {vocab.soften(subject)} {tail}".strip()
            verb = "are" if _is_plural(subject) else "is"
            qualifier = " never" if negative else ""
            return f"Ensure {vocab.soften(subject)} {verb}{qualifier} {rest[3:]}".strip()
        verb_word = rest.split(" ", 1)[0].lower()
        if _GENERIC_SUBJECT.match(subject) and (negative or (verb_word in VERBS and verb_word not in _STATE_VERBS)):
            return ("Never " + rest) if negative else _capitalise(rest)
        if _HUMAN_SUBJECT.match(subject):
            if negative:
                verb, _, tail = rest.partition(" ")
                return f"Prevent {vocab.soften(subject)} from {_gerund(verb)} {tail}".strip()
            return f"Let {vocab.soften(subject)} {rest}"
        if negative:
            return f"Ensure {vocab.soften(subject)} never {rest}"
        return f"Make {vocab.soften(subject)} {rest}"
    base = verb_base(first_low) if first_low.endswith("ing") else None
    if base:
        return _capitalise(base + text[len(first) :])
    if _INFINITIVE.match(text):
        return _capitalise(text[3:])
    present = _present_tense(text, vocab)
    if present:
        return present
    if type_hint == "docs":
        return "Write " + vocab.soften(text)
    if type_hint == "test":
        return "Write " + vocab.soften(text) if "test" in text.lower() else "Test " + vocab.soften(text)
    if _ARTICLE.match(text):
        return "Add " + text[0].lower() + text[1:]
    return "Implement " + vocab.soften(text)


def _shorten(title: str, limit: int) -> str:
    """Cut a title at a clause boundary, then at a word, to at most `limit` characters."""
    trimmed = _TRIM_CLAUSE.sub("", title).strip()
    if len(trimmed.split()) >= 2:
        title = trimmed
    if len(title) > 60:
        for match in _LONG_CLAUSE.finditer(title):
            if len(title[: match.start()].split()) >= 3 and match.start() <= limit:
                candidate = title[: match.start()]
                if len(candidate) >= 25:
                    title = candidate
                    break
    if len(title) > limit:
        title = title[:limit].rsplit(" ", 1)[0]
    previous = None
    while previous != title:
        previous = title
        title = _TRAILING_STOP.sub("", title).rstrip(" ,;:-–—(")
    return title


_PARENS = re.compile(r"\s*\((?:[^()]*)\)")
_LABEL_SPLIT = re.compile(r"^(?P<label>[^:—–]{2,60}?)\s*(?::|\s[—–]\s|\s-\s)\s*(?P<rest>\S.*)$")
_LEAD_FILLER = re.compile(r"^(?:and|also|then|finally|optionally)\s+", re.I)
_LEAD_CLAUSE = re.compile(r"^(?:once|after|when|as soon as|if)\b[^,]{1,100},\s*(?P<rest>\S.*)$", re.I)
_LEAD_MODAL = re.compile(r"^(?:must|shall|should|could|may|will)\s+", re.I)


def make_title(
    text: str, vocab: Vocabulary | None = None, *, type_hint: TaskType | None = None, limit: int = 80
) -> str:
    """A short imperative title for a requirement ("The system MUST send receipts." → "Send receipts")."""
    vocab = vocab or Vocabulary("")
    text = clean_inline(text.split("\n```", 1)[0])
    text = _LEADING_ID.sub("", text)
    # cheap membership tests first: these run for every requirement of a long document
    if "(" in text or "[" in text:
        text = _TAG.sub("", text).strip()
        text = _PARENS.sub("", text).strip() or text
    sentence = first_sentence(text).rstrip(".!?:; ").strip()
    label = _LABEL_SPLIT.match(sentence)
    if label:
        head = label.group("label").strip()
        if head.lower() in _GENERIC_LABELS or _KIND_LABEL.fullmatch(head):
            sentence = label.group("rest")
            if head.lower() in {"bug", "fix", "issue"}:
                type_hint = "bug"
        elif len(head.split()) <= 6 and not _MODAL_SPLIT.match(head):
            sentence = head
    if _DEPENDENCY_HINT.search(sentence):
        without_dependency = _TRIM_DEPENDENCY.sub("", sentence).strip()
        if len(without_dependency.split()) >= 2:
            sentence = without_dependency
    sentence = _LEAD_FILLER.sub("", sentence)
    leading = _LEAD_CLAUSE.match(sentence)
    if leading and len(leading.group("rest").split()) >= 2:
        sentence = leading.group("rest")
    sentence = _LEAD_MODAL.sub("", sentence)
    if not sentence:
        return "Untitled requirement"
    title = _shorten(_imperative(sentence, vocab, type_hint), limit)
    title = _SPACES.sub(" ", title).strip(" .,;:")
    return _capitalise(title) or "Untitled requirement"


def heading_title(heading: str, vocab: Vocabulary | None = None, *, type_hint: TaskType | None = None) -> str:
    """A task title for a whole section: "3.2 Invoice export" → "Implement invoice export"."""
    text = re.sub(r"^(\d{1,2}(?:\.\d{1,2})*|[IVX]{1,4}|[A-H])[.)]?\s+", "", clean_inline(heading)).strip()
    text = (
        re.sub(
            r"^(phase|milestone|stage|sprint|iteration|release|part|epic|section)\s+\S+\s*[:.\-–—)]?\s*",
            "",
            text,
            flags=re.I,
        ).strip()
        or text
    )
    text = (vocab or Vocabulary("")).sentence_case(text)
    return make_title(text, vocab, type_hint=type_hint)
