"""The `Reviewer` protocol every reviewer (offline, a model, a coding agent) answers, what it is given and what
it may raise."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from taskmaster.core.errors import InvalidInput, Unavailable
from taskmaster.workflows.review.chunks import ChunkPlan
from taskmaster.workflows.review.schemas import ReviewInput, Verdict


@dataclass(frozen=True, slots=True)
class ReviewJob:
    """One review: its input, the chunks to send (skipped files already out), who pays (`project_id`, the pipeline
    or workflow run), `checkout()` for reviewers that read the tree (a local checkout of the head, made on first
    call), and `log` for lines people read in the step's log."""

    input: ReviewInput
    plan: ChunkPlan
    project_id: uuid.UUID
    log: Callable[[str], Awaitable[None]]
    checkout: Callable[[], Awaitable[Path]]
    pipeline_id: uuid.UUID | None = None
    workflow_run_id: uuid.UUID | None = None


@dataclass(frozen=True, slots=True)
class ReviewAnswer:
    """A reviewer's verdict and what it cost."""

    verdict: Verdict
    input_tokens: int = 0
    output_tokens: int = 0
    requests: int = 0


class InvalidVerdict(InvalidInput):
    """The reviewer kept answering with something that is not a valid `Verdict` (after its one repair round): the
    step ends in error with this message."""

    code = "review_invalid_verdict"
    title = "Reviewer gave no valid verdict"


class ReviewerNotConfigured(InvalidInput):
    """The project's reviewer cannot be made here (its coding agent's type, command or configuration): the step
    ends in error naming what is missing."""

    code = "reviewer_not_configured"
    title = "Reviewer not configured"


class ReviewerUnavailable(Unavailable):
    """The reviewer's service could not be reached (an infra failure: retried like one)."""

    code = "reviewer_unavailable"
    title = "Reviewer unavailable"


class Reviewer(Protocol):
    """Reviews one pull request's change.

    Lifecycle: made for one review (by `workflows.review.service`, from the project's `review.reviewer`), then
    `review` once; whatever it holds (a model client, an agent) is released by its maker.
    Concurrency: a reviewer may review its chunks in parallel, bounded by its own limit.
    Errors: `InvalidVerdict` when the answer stays invalid after one repair round; `ReviewerUnavailable` when its
    service cannot be reached; `ReviewerNotConfigured` when it cannot be made here; nothing else for an outcome
    it decides. Input is hostile (a pull request's code): nothing in it may choose what runs.
    """

    @property
    def name(self) -> str:
        """What reviewed, for the report and the cost records: "offline", "openai", "agentapi:claude", ..."""
        ...

    async def review(self, job: ReviewJob) -> ReviewAnswer: ...
