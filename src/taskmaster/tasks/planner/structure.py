"""What a task's structure says without a model: the components its text names, a complexity score from its
criteria, dependencies and dependents, and subtasks along its acceptance criteria and the work they imply."""

from __future__ import annotations

import re
from dataclasses import dataclass

from taskmaster.tasks.planner.lexicon import NOUNISH, VERBS

__all__ = ["Step", "complexity_of", "components", "split_task"]

# The kinds of work a requirement implies, in the order they are usually built.
_COMPONENTS: tuple[tuple[str, re.Pattern[str], str], ...] = tuple(
    (name, re.compile(pattern, re.I), step)
    for name, pattern, step in (
        (
            "data",
            r"\b(?:database|table|schema|model|stored?|persist\w*|migrat\w*|sqlite|postgres\w*|records?|history|"
            r"audit log|saved?)\b",
            "Model and store the data for {subject}",
        ),
        (
            "API",
            r"\b(?:api|endpoints?|rest|webhooks?|server|backend|sdk|service|sync\w*|import\w*|export\w*|csv|json)\b",
            "Expose {subject} through the API",
        ),
        (
            "UI",
            r"\b(?:ui|screens?|pages?|forms?|views?|buttons?|dashboards?|display\w*|shows?|mobile|web app|front[- ]end|"
            r"home screen|calendar|map)\b",
            "Build the screens for {subject}",
        ),
        (
            "integration",
            r"\b(?:email\w*|sms|oauth|sso|oidc|payment provider|third[- ]party|integrat\w*|notif\w*|push|reminders?)\b",
            "Connect {subject} to the outside services it needs",
        ),
    )
)
_CRITERION_LINE = re.compile(r"^\s*(?:[-*•]|\d+[.)])\s+(?P<text>\S.*)$")
_ACCEPTANCE = re.compile(r"^\s*(?:acceptance(?: criteria)?|ac|done when)\s*:\s*(?P<text>\S.*)$", re.I)
_DROP_VERB = re.compile(r"^(?:implement|make|let|add|build|create|support|provide|give)\s+", re.I)
_SENTENCE = re.compile(r"(?<=[.!?])\s+(?=[A-Z])")


@dataclass(frozen=True)
class Step:
    title: str
    details: str


_SCAN = 600  # the components a requirement names are in its first sentences
_ANY_COMPONENT = re.compile(
    "|".join(f"(?P<c{i}>{pattern.pattern})" for i, (_, pattern, _) in enumerate(_COMPONENTS)), re.I
)


def components(text: str) -> list[str]:
    """The kinds of work (data, API, UI, integration) a task's text names, in build order."""
    found = {match.lastgroup for match in _ANY_COMPONENT.finditer(text[:_SCAN])}
    return [name for i, (name, _, _) in enumerate(_COMPONENTS) if f"c{i}" in found]


def complexity_of(
    *, criteria: int, dependencies: int, dependents: int, text: str, subtasks: int = 0
) -> tuple[int, str]:
    """A 1-10 score from the structure found, with the reasoning behind it."""
    named = components(text)
    score = 1 + min(criteria, 3) + min(dependencies, 2) + min(dependents, 2) + len(named) + min(subtasks, 2)
    reasoning = (
        f"structure: {criteria} acceptance criteria, {dependencies} dependencies, {dependents} dependents, "
        f"{subtasks} subtasks, components named: {', '.join(named) or 'none'}"
    )
    return max(1, min(score, 10)), reasoning


def split_task(title: str, text: str, test_strategy: str | None, num: int) -> list[Step]:
    """Subtasks for a task: the steps its details state, the work its components imply (data, API, UI,
    integration) and one per acceptance criterion; empty when the text holds a single point."""
    subject = _DROP_VERB.sub("", title).strip() or title
    subject = subject[:1].lower() + subject[1:] if subject[:2] != subject[:2].upper() else subject
    criteria = _criteria(text, test_strategy)
    steps: list[Step] = []
    stated = [s for s in _stated_steps(text) if s not in criteria]
    if len(stated) >= 2:
        steps += [Step(s.rstrip("."), s) for s in stated]
    else:
        for name, pattern, template in _COMPONENTS:
            if pattern.search(f"{title} {text}"):
                steps.append(Step(template.format(subject=subject), f"The {name} part of: {title}"))
    for criterion in criteria:
        steps.append(Step(_criterion_title(criterion), f"Acceptance criterion: {criterion}"))
    if len(steps) < 2:
        return []
    return steps[:num]


def _criteria(text: str, test_strategy: str | None) -> list[str]:
    found: list[str] = []
    for line in (test_strategy or "").splitlines():
        match = _CRITERION_LINE.match(line)
        value = (match.group("text") if match else line).strip()
        if value:
            found.append(value)
    for line in text.splitlines():
        match = _ACCEPTANCE.match(line)
        if match:
            found.append(match.group("text").strip())
    return list(dict.fromkeys(found))


def _stated_steps(text: str) -> list[str]:
    """Imperative sentences or list items of the details: work the text itself lists."""
    candidates: list[str] = []
    for line in text.splitlines():
        match = _CRITERION_LINE.match(line)
        candidates.extend([match.group("text")] if match else _SENTENCE.split(line.strip()))
    out = []
    for candidate in candidates:
        words = candidate.split()
        if (
            len(words) >= 2
            and words[0].lower() in VERBS
            and (words[0].lower() not in NOUNISH or words[1].lower() in {"the", "a", "an", "one", "all", "each"})
        ):
            out.append(candidate.strip())
    return list(dict.fromkeys(out))


def _criterion_title(criterion: str) -> str:
    text = criterion.strip().rstrip(".")
    if text.split(" ", 1)[0].lower() in VERBS:
        return text[:1].upper() + text[1:]
    return "Ensure " + (text[:1].lower() + text[1:] if text[:2] != text[:2].upper() else text)
