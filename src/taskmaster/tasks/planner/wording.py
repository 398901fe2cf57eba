"""Task titles and descriptions from requirement records: whole imperative phrases, never cut mid-phrase, without
the requirement's ID glued on (the ID goes to its own field and the description)."""

from __future__ import annotations

import re

from taskmaster.tasks.planner.lexicon import NEEDS, NOUNISH, OBJECT_START, VERBS, _word_set, verb_base
from taskmaster.tasks.planner.records import Requirement

__all__ = ["description_of", "title_of"]

_MORE_VERBS = _word_set(
    """take give put page retire keep mark pick let ask answer book buy sell pay invite join leave post share view
    see find browse compare filter rate review approve reserve rent lend borrow return drag drop tick pay queue
    collect gather edit undo redo reply forward star mute snooze go come stay become appear live grade"""
)
_NOT_BEFORE_VERB = _word_set(
    "for of with to in on at by from and or the a an as per via into than that which who all every each some any "
    "its their his her my our your this these those no"
)
_NOUN_FIRST = _word_set("audit")
_AUX = _word_set("is are was were be can must should will shall has have may could would")
_DETERMINERS = _word_set("a an the my our your their his her its this that these those each every any some no one")
_STORY = re.compile(
    r"^as an? (?P<role>[^,]{1,60}?),?\s+i (?:want|need|would like|wish|expect)\s+(?P<want>.+?)"
    r"(?:,?\s+so (?:that\b|i can\b|they\b|we\b).*)?$",
    re.I,
)
_MODAL = re.compile(
    r"^(?P<subj>.{1,60}?)\s+(?:must|shall|should|can|could|may|will|is able to|are able to|needs to|need to|has to|"
    r"have to)\s+(?:also\s+|only\s+|automatically\s+)?(?P<rest>.+)$",
    re.I,
)
_PASSIVE = re.compile(
    r"^(?P<subj>.{1,60}?)\s+(?:(?:can|must|should|will|shall|may)\s+be|is|are|get|gets)\s+"
    r"(?:automatically\s+|always\s+|also\s+)?(?P<part>\w+(?:ed|en)|sent|built|kept|shown|made|held|paid|set|sold)\b"
    r"(?P<rest>.*)$",
    re.I,
)
_HAVE = re.compile(r"^(?P<subj>.{1,40}?)\s+(?:has|have)\s+(?P<rest>.+)$", re.I)
_GENERIC_SUBJECT = re.compile(
    r"^(?:the |our |this |a |an )?(?:system|app|application|service|platform|product|tool|software|site|website|"
    r"it|we|you|backend|server|api)$",
    re.I,
)
_PAREN_RELATION = re.compile(
    r"\s*\((?:[^()]*\b(?:depends? on|needs?|requires?|blocked by|after|builds? on)\b[^()]*)\)", re.I
)
_PRONOUNS = ((r"\bmy\b", "their"), (r"\bme\b", "them"), (r"\bI\b", "they"), (r"\bmyself\b", "themselves"))
_LIMIT = 110
_LEAD_CONDITION = re.compile(r"^(?:once|after|when|as soon as|if)\b[^,]{1,100},\s*(?=\S)", re.I)
_CLAUSE_WORDS = re.compile(r"\b(?:so|that|which|who|when|if|because|while|once|after|before)\b", re.I)


def title_of(record: Requirement) -> str:
    """A whole imperative phrase for the task a requirement becomes."""
    if record.kind == "bug":
        head = _head(record.text)
        title = head if re.match(r"(?i)fix\b", head) else "Fix: " + _lower_first(head)
    elif record.name and (record.name == record.text.rstrip(".") or len(record.name.split()) <= 5):
        title = _name_title(record.name)
    else:
        title = _sentence_title(_head(record.text))
    title = _shorten(title.strip().rstrip(".:;,").strip())
    title = re.sub(r"^(?:add |implement )?setup\b", "Set up", title, flags=re.I)
    if not any(c.isalnum() for c in title):
        title = record.label or f"Requirement on line {record.line}"
    return title[:1].upper() + title[1:]


def description_of(record: Requirement) -> str:
    """The requirement as written, with its ID first."""
    text = record.text.strip()
    return f"{record.label}: {text}" if record.label else text


def _name_title(name: str) -> str:
    name = name.strip().rstrip(".")
    words = name.split()
    if _is_imperative(words):
        return name
    words = name.split()
    if len(words) > 1 and all(w[:1].isupper() or not w[:1].isalpha() for w in words):
        name = " ".join(w if w.isupper() or any(c.isupper() for c in w[1:]) else w.lower() for w in words)
    return "Implement " + _lower_first(name)


def _sentence_title(text: str) -> str:
    text = _PAREN_RELATION.sub("", text).strip()
    text = _LEAD_CONDITION.sub("", text)
    relation = NEEDS.search(text)
    if relation and relation.start() > 0 and text[: relation.start()].rstrip().endswith((",", ";", "—", "-", "(")):
        text = text[: relation.start()].rstrip(" ,;—-(")
    story = _STORY.match(text)
    if story:
        return _want(story.group("want"))
    words = text.split()
    if not words:
        return text
    if _is_imperative(words):
        return text
    passive = _PASSIVE.match(text)
    if passive and len(passive.group("subj").split()) <= 8:
        base = verb_base(passive.group("part")) or passive.group("part")
        subject = _lower_first(passive.group("subj"))
        return f"{base} {subject}{passive.group('rest')}"
    modal = _MODAL.match(text)
    if modal and len(modal.group("subj").split()) <= 5 and not _CLAUSE_WORDS.search(modal.group("subj")):
        subject = modal.group("subj")
        rest = _and_verbs(re.sub(r"^(?:not\s+)?be able to\s+", "", modal.group("rest"), flags=re.I))
        if _GENERIC_SUBJECT.match(subject):
            return rest
        return f"let {_lower_first(subject)} {rest}"
    have = _HAVE.match(text)
    if have and len(have.group("subj").split()) <= 5:
        return f"give {_lower_first(have.group('subj'))} {have.group('rest')}"
    active = _active(words)
    if active is not None:
        return active
    return "add " + _lower_first(text)


def _want(want: str) -> str:
    for pattern, replacement in _PRONOUNS:
        want = re.sub(pattern, replacement, want)
    infinitive = re.match(r"^(?:to be able to|be able to|to)\s+", want, flags=re.I)
    want = want[infinitive.end() :] if infinitive else want
    words = want.split()
    if infinitive and words:
        return want  # "I want to X": X is the verb, whatever it is
    if _is_imperative(words) or (words and (words[0].lower() in VERBS or words[0].lower() in _MORE_VERBS)):
        return want
    agent = re.match(r"^(?P<np>(?:the|a|an|their|our)\s+[\w-]+(?:\s+[\w-]+)?)\s+to\s+(?P<rest>.+)$", want, re.I)
    if agent:
        return f"let {agent.group('np')} {agent.group('rest')}"
    return "provide " + want


def _active(words: list[str]) -> str | None:
    """ "Members sign in …" → "Let members sign in …"; "A driver publishes a ride" → "Let a driver publish a ride"."""
    candidates: list[tuple[int, str, bool]] = []
    for i in range(1, min(len(words) - 1, 7)):
        word = words[i].lower()
        base = _third_person_base(word)
        following = words[i + 1].lower()
        plural_subject = words[i - 1].lower().endswith("s") and words[i - 1].isalpha()
        if base is None and i == 1 and plural_subject and following in _DETERMINERS and word.isalpha():
            base = word  # "Clerks grade each item": a plural noun, then a word, then a determiner
        if base is None or words[i - 1].lower() in _NOT_BEFORE_VERB or " ".join(words[:i]).count("`") % 2:
            continue
        if word.endswith("s") and words[i - 1].lower().endswith("ed"):
            continue  # "Saved replies …" is a noun phrase
        ambiguous = word in NOUNISH or base in NOUNISH
        lone_plural = i == 1 and plural_subject  # "Riders search rides …", "Agents reply …"
        if lone_plural:
            ambiguous = False
        elif ambiguous and following not in _DETERMINERS and not (plural_subject and following in OBJECT_START):
            continue
        candidates.append((i, base, ambiguous))
    if not candidates:
        return None
    # an unambiguous verb further on beats a word that is as often a noun ("status changes reflect …")
    i, base, _ = next((c for c in candidates if not c[2]), candidates[0])
    subject = words[:i]
    if any(w.lower() in VERBS and w.lower() not in NOUNISH for w in subject[1:]):
        return None
    rest = _and_verbs(" ".join(words[i + 1 :]))
    return f"let {_lower_first(' '.join(subject))} {base} {rest}".rstrip()


def _and_verbs(rest: str) -> str:
    """ "… and verifies the address" → "… and verify the address" (one subject, several verbs)."""

    def base(match: re.Match[str]) -> str:
        word = match.group(2)
        found = _third_person_base(word.lower())
        return f"{match.group(1)} {found}" if found and found != word.lower() else match.group(0)

    return re.sub(r"\b(and|or)\s+(?:can\s+)?([a-z]+s)\b", base, re.sub(r"\band can\b", "and", rest))


def _third_person_base(word: str) -> str | None:
    known = VERBS | _MORE_VERBS
    if word in known and word not in NOUNISH:
        return word
    for suffix, repl in (("ies", "y"), ("es", ""), ("s", "")):
        if word.endswith(suffix) and len(word) > len(suffix) + 2:
            base = word[: -len(suffix)] + repl
            if base in known:
                return base
    if word in NOUNISH:
        return word
    return None


def _is_imperative(words: list[str]) -> bool:
    if not words:
        return False
    first = words[0].lower().rstrip(",;:")
    if first in _DETERMINERS or not words[0][:1].isalpha() or first in _NOUN_FIRST:
        return False
    nxt = words[1].lower() if len(words) > 1 else ""
    if first in NOUNISH:
        if nxt in OBJECT_START or nxt in _DETERMINERS:
            return True
        return len(words) >= 4 and not any(w.lower() in _AUX for w in words[1:5])
    if first in VERBS or first in _MORE_VERBS:
        return True
    # "Snap a photo …": a capitalised word before an article opens an imperative
    return nxt in {"a", "an", "the"} and first.isalpha() and not first.endswith("s") and words[0][:1].isupper()


def _head(text: str) -> str:
    """The text up to its first sentence end, semicolon or colon (a whole phrase)."""
    head = re.split(r"(?<=[a-z0-9)\]])[.!?]\s+(?=[A-Z(])|;\s+|:\s+(?=[a-z])", text.strip(), maxsplit=1)[0]
    return head.strip().rstrip(".")


def _shorten(title: str) -> str:
    """Over the limit, drop trailing clauses at a comma or a conjunction; never cut inside one."""
    if len(title) <= _LIMIT:
        return title
    cut = [m.start() for m in re.finditer(r",\s|\s(?:so that|which|where|while|including|with)\s", title)]
    cut = [c for c in cut if 30 <= c <= _LIMIT]
    return title[: cut[-1]].rstrip(" ,") if cut else title


def _lower_first(text: str) -> str:
    first = text.split(" ", 1)[0]
    if len(first) > 1 and (first.isupper() or any(c.isupper() for c in first[1:])):
        return text
    return text[:1].lower() + text[1:]
