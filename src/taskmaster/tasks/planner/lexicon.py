"""The planner's one lexicon: the words that name section roles, priorities, relations and verbs, and the few
string helpers (cleaning, stems) every stage reads text with."""

from __future__ import annotations

import re
from functools import lru_cache


def _word_set(words: str) -> frozenset[str]:
    """A set of words written as one string (lists of words read better as prose than as one item per line)."""
    return frozenset(words.split())


# --- cleaning ---------------------------------------------------------------------------------------------------------

_LINK = re.compile(r"!?\[([^\]]*)\]\([^)]*\)")
_EMPHASIS = re.compile(r"(\*\*|__|\*|_|~~)(?=\S)(.+?)(?<=\S)\1")
_CODE = re.compile(r"`([^`]*)`")
_HTML = re.compile(r"</?[a-zA-Z][^>]*>")
_CHECKBOX = re.compile(r"^\s*\[[ xX]\]\s+")
_SPACES = re.compile(r"\s+")


@lru_cache(maxsize=65536)
def clean_inline(text: str) -> str:
    """Markdown emphasis, links, code ticks, HTML tags and checkboxes removed; whitespace collapsed."""
    if "[" in text:
        text = _LINK.sub(r"\1", _CHECKBOX.sub("", text))
    if "<" in text:
        text = _HTML.sub("", text)
    if "*" in text or "_" in text or "~" in text:
        for _ in range(2):
            text = _EMPHASIS.sub(r"\2", text)
    return _SPACES.sub(" ", text).strip()


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
NOUNISH = _word_set(
    """alert audit batch bundle cache change charge check claim copy design display download draft email estimate
    export filter flag follow format group host import index label launch link list load lock log map mark
    mirror model monitor package patch pin plan poll preview print process profile prompt prototype push queue
    rank rate record refund release report request reset retry return review route scan schedule score search
    seed select ship show sign skip snapshot sort split start stop store stream support surface swap switch sync
    tag test toggle track trigger update upgrade upload version watch wire"""
)
"""Verbs that are as often nouns ("Route planner", "Follow mode"): imperative only before an object."""
OBJECT_START = _word_set(
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


# --- section roles ----------------------------------------------------------------------------------------------------

# What a section heading says the section is; the first pattern that matches the whole heading (less numbering,
# emphasis and a trailing colon) wins. Roles that are not work inform tasks and never become tasks.
ROLE_PATTERNS: tuple[tuple[str, re.Pattern[str]], ...] = tuple(
    (
        role,
        re.compile(
            r"^(?:the |our |\d+(?:\.\d+)*\.?\s+|[a-z]\.\s+)?(?:" + words + r")(?:\s+[a-z0-9]{1,2}\b)?"
            r"(?:\s*(?:[:(—–&/,-]|\b(?:and|of|for|to|vs|in|with)\b).{0,60})?$",
            re.I,
        ),
    )
    for role, words in (
        (
            "out_of_scope",
            r"out of scope|not in scope|non-?goals?|not now|not in (?:this|the first) (?:release|version)|"
            r"won'?t(?: have| do)?|will not|not doing|not planned|later|"
            r"future (?:enhancements?|work|ideas|considerations)|someday|exclusions|parking lot|icebox|deferred",
        ),
        ("glossary", r"glossary|definitions?|terminology|terms|acronyms"),
        (
            "criteria",
            r"acceptance(?: criteria| tests?| checklist)?|definition of done|done criteria|exit criteria|"
            r"success criteria|how to (?:test|verify)|test (?:plan|strategy|cases)",
        ),
        ("ordering", r"(?:logical )?dependency chain|dependencies|ordering|order of work|build order|sequenc\w*"),
        ("priorities", r"priorit\w*|moscow|importance"),
        (
            "roadmap",
            r"(?:development |product |delivery )?roadmap|release plan|milestones?|phases|delivery plan|"
            r"implementation plan|rollout(?: plan)?|timeline(?: and milestones)?|schedule|phasing|delivery|releases",
        ),
        (
            "architecture",
            r"tech(?:nical)?(?: notes| architecture| stack| design| approach| considerations)?|architecture|"
            r"technology(?: stack| choices)?|file structure|project structure|folder structure|libraries|"
            r"system design|data model|stack|implementation notes|design notes|infrastructure notes",
        ),
        (
            "context",
            r"(?:(?:project|product|business|key|team|user|customer|market|solution|system|high[- ]level)\s+)?"
            r"(?:summary|executive summary|overview|background|context|introduction|intro|purpose|vision|"
            r"goals?|objectives?|metrics|personas?|risks?|assumptions?|constraints?|stakeholders?|research)|"
            r"summary|executive summary|overview|product overview|background|context|introduction|intro|purpose|"
            r"problem(?: statement)?|the problem|why|who|who is it for|who it'?s for|vision|motivation|"
            r"goals?(?: and non-?goals)?|objectives?|personas?|users(?: and personas)?|target (?:users|audience)|"
            r"audience|stakeholders?|user experience|success metrics|metrics|kpis?|measures? of success|"
            r"risks?(?: and mitigations| assessment| analysis| register)?|"
            r"assumptions?|constraints?|open (?:questions|issues)|questions|faq|"
            r"appendix|appendices|references?|notes?|revision history|change ?log|document (?:history|control)|"
            r"status|current state|today|research|competitive analysis|competitors|team|contacts?|owners?|"
            r"about|scope notes|rationale|alternatives considered|prior art|pricing|next steps|epic list|"
            r"list of epics|epics? overview|change log|handoff",
        ),
    )
)

# Headings that only say "the work is below" (no feature area of their own).
GENERIC_HEADING = re.compile(
    r"^(?:\d+(?:\.\d+)*\.?\s+)?(?:(?:functional|non[- ]?functional|technical|system|product|core|key|detailed|"
    r"business|user|mvp|main|initial|v\d+)\s+)*(?:requirements?|features?(?: list)?|capabilities|user stories|"
    r"stories|use cases|scope|in scope|tasks|work items|backlog|deliverables|epics?|what we need|what to build|"
    r"functional|non[- ]?functional|"
    r"what we want|wants|asks|bugs?(?: to fix)?|known (?:bugs|issues)(?: in the \w+)?|bug ?fix(?:es)?|fixes|"
    r"issues|defects|improvements|enhancements|to-?dos?|nice[- ]to[- ]haves?|must[- ]haves?|should[- ]haves?|"
    r"could[- ]haves?|docs|documentation|chores|maintenance|"
    r"what we(?:'| a)re building|specification|spec|nfrs?|quality attributes|mvp|mvp scope)$",
    re.I,
)

# --- priorities -------------------------------------------------------------------------------------------------------

# Priority classes: 1 is the most urgent. The words people write, in the order tried.
PRIORITY_WORDS: tuple[tuple[re.Pattern[str], int], ...] = tuple(
    (re.compile(pattern, re.I), cls)
    for pattern, cls in (
        (r"\bp0\b|\bcritical\b|\bblockers?\b|\blaunch blockers?\b|\bmust(?:[- ]haves?)?\b|\bhighest\b|\burgent\b", 1),
        (r"\bp1\b|\bhigh\b|\bshould(?:[- ]haves?)?\b|\bimportant\b|\bmajor\b", 2),
        (
            r"\bp2\b|\bmedium\b|\bmed\b|\bcould(?:[- ]haves?)?\b|\bnice[- ]to[- ]haves?\b|\bmay\b|\boptional\b|"
            r"\bif time allows\b|\bstretch\b",
            3,
        ),
        (r"\bp3\b|\blow(?:est)?\b|\bminor\b|\btrivial\b", 4),
    )
)
PRIORITY_TERMS = re.compile(
    r"\b(?:p[0-3]|critical|blockers?|must|should|could|won'?t|have|haves|highest|urgent|high|important|major|"
    r"medium|med|nice[- ]to[- ]have|may|optional|if time allows|stretch|low(?:est)?|minor|trivial|priority|"
    r"priorities)\b",
    re.I,
)
WONT = re.compile(r"\bwon'?t(?:[- ]haves?)?\b|\bwill not\b|\bnot now\b", re.I)
# An explicit priority inside an item: "(low priority)", "[P1]", "Priority: Must", "(Must)".
INLINE_PRIORITY = re.compile(
    r"[\[(]\s*(?P<a>p[0-3]|critical|high|medium|low|must|should|could|nice[- ]to[- ]have|"
    r"(?:high|medium|low) priority|optional)\b[^)\]]{0,60}[\])]|\bpriority\s*[:=]\s*(?P<b>[\w-]+)|"
    r"\((?P<c>nice to have|low priority|high priority)\)",
    re.I,
)
# RFC 2119 words in a requirement's own sentence: MUST > SHOULD > MAY (upper case is the stronger sign).
RFC_WORDS = re.compile(r"\b(?P<word>MUST|SHALL|REQUIRED|SHOULD|RECOMMENDED|MAY|COULD|OPTIONAL)\b")
MODAL_WORDS = re.compile(r"\b(?P<word>must|shall|should|may|could|might)\b(?! not be)", re.I)
_RFC_CLASS = {
    "MUST": 1,
    "SHALL": 1,
    "REQUIRED": 1,
    "SHOULD": 2,
    "RECOMMENDED": 2,
    "MAY": 3,
    "COULD": 3,
    "OPTIONAL": 3,
    "MIGHT": 3,
}


def wording_priority(text: str) -> tuple[int, str] | None:
    """The priority a requirement's own modal verb gives ("MUST" 1, "SHOULD" 2, "MAY" 3), or None."""
    match = RFC_WORDS.search(text) or MODAL_WORDS.search(text)
    if match is None:
        return None
    word = match.group("word")
    return _RFC_CLASS[word.upper()], f'the wording: "{word}"'


def priority_class(text: str) -> int | None:
    """The priority class a word or phrase names (1 most urgent … 4), or None."""
    for pattern, cls in PRIORITY_WORDS:
        if pattern.search(text):
            return cls
    return None


# --- relations --------------------------------------------------------------------------------------------------------

# "A <verb> B": A waits for B. Group 'verb' is the phrase quoted when explaining an edge.
NEEDS = re.compile(
    r"(?P<verb>\bdepend(?:s|ent)? (?:up)?on|\bneeds?(?! to)|\brequires?(?! that)|\bblocked by|\bbuilds? on(?: top of)?|"
    r"\bprerequisites?|\bwaits? for|\bfollows|\bafter|\bonce)\b\s*:?\s*(?P<target>(?:[^.;()\n]|(?<=\d)\.(?=\d))*)",
    re.I,
)
# "A before B" / "A must exist before any B" / "A comes first": B waits for A.
BEFORE = re.compile(
    r"(?P<verb>\b(?:must (?:exist|be done|land|ship) |comes |goes |has to come )?before(?: any)?)\b\s*", re.I
)
LABEL = re.compile(r"(?<![\w-])(?P<label>[A-Z][A-Za-z]{0,5}-?\d{1,4}(?:\.\d+)?|#\d{1,4})(?![\w-])")
NUMBER_LIST = re.compile(r"(?<![\w.-])(?P<a>\d{1,3})(?:\s*[-–]\s*(?P<b>\d{1,3}))?(?![\w.%])")
SPLIT_TARGETS = re.compile(r"\s*(?:,|&|\band\b|\bor\b|/|\+)\s*", re.I)
