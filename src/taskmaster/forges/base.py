"""What Taskmaster sends to a forge: the `Forge` protocol (statuses, check runs, comments, reviews, branches, pull
requests opened, read, merged and closed, issues), its capabilities, value types, and the errors every client raises.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol, runtime_checkable

from taskmaster.core import http
from taskmaster.core.errors import InvalidInput
from taskmaster.forges.events import PullRequestState

# GitHub accepts at most 50 annotations per create/update request; more are sent in successive updates.
ANNOTATIONS_PER_REQUEST = 50


class CommitState(enum.StrEnum):
    """Taskmaster's vocabulary for a commit status; each client maps it to its forge's states."""

    PENDING = "pending"
    RUNNING = "running"
    SUCCESS = "success"
    FAILURE = "failure"
    ERROR = "error"
    CANCELED = "canceled"
    SKIPPED = "skipped"


class CheckStatus(enum.StrEnum):
    QUEUED = "queued"
    IN_PROGRESS = "in_progress"
    COMPLETED = "completed"


class CheckConclusion(enum.StrEnum):
    """How a completed check run ended (GitHub's vocabulary, which is the richer one)."""

    SUCCESS = "success"
    FAILURE = "failure"
    NEUTRAL = "neutral"
    CANCELLED = "cancelled"
    SKIPPED = "skipped"
    TIMED_OUT = "timed_out"
    ACTION_REQUIRED = "action_required"


class AnnotationLevel(enum.StrEnum):
    NOTICE = "notice"
    WARNING = "warning"
    FAILURE = "failure"


@dataclass(frozen=True, slots=True)
class Annotation:
    """One finding attached to lines of a file (a lint error, a failing assertion)."""

    path: str
    start_line: int
    end_line: int
    message: str
    level: AnnotationLevel = AnnotationLevel.FAILURE
    title: str | None = None

    def __post_init__(self) -> None:
        if self.start_line < 1 or self.end_line < self.start_line:
            raise InvalidInput(
                f"annotation lines must satisfy 1 <= start_line <= end_line, got {self.start_line}..{self.end_line}"
            )


@dataclass(frozen=True, slots=True)
class CheckRunSpec:
    """Everything a check run shows. `conclusion` is set exactly when `status` is completed."""

    name: str
    head_sha: str
    status: CheckStatus = CheckStatus.QUEUED
    conclusion: CheckConclusion | None = None
    title: str | None = None
    summary: str = ""
    text: str | None = None
    annotations: tuple[Annotation, ...] = ()
    details_url: str | None = None
    external_id: str | None = None
    started_at: datetime | None = None
    completed_at: datetime | None = None

    def __post_init__(self) -> None:
        if (self.status is CheckStatus.COMPLETED) != (self.conclusion is not None):
            raise InvalidInput(
                f"check run {self.name!r}: a conclusion goes with status completed and only with it "
                f"(status {self.status}, conclusion {self.conclusion})"
            )


def annotation_batches(annotations: Sequence[Annotation]) -> list[tuple[Annotation, ...]]:
    """The annotations cut into requests of at most `ANNOTATIONS_PER_REQUEST`; one empty batch when there are none."""
    if not annotations:
        return [()]
    step = ANNOTATIONS_PER_REQUEST
    return [tuple(annotations[start : start + step]) for start in range(0, len(annotations), step)]


@dataclass(frozen=True, slots=True)
class PullRequestRef:
    """A pull request (GitHub) or merge request (GitLab): its number (`iid` on GitLab) and web address."""

    number: int
    url: str


@dataclass(frozen=True, slots=True)
class PullRequestDetails:
    """A pull (merge) request as the forge shows it now."""

    number: int
    url: str
    title: str
    state: PullRequestState
    draft: bool
    head_ref: str
    head_sha: str
    base_ref: str
    merge_commit_sha: str | None = None
    """The commit a merge made (a squash commit on GitLab when squashed); None until merged."""


@dataclass(frozen=True, slots=True)
class ForgeCapabilities:
    """What a client can show beyond commit statuses and comments; callers ask here instead of naming the forge."""

    check_runs: bool
    """Check runs (`create_check_run`, `update_check_run`): GitHub, reached as a GitHub App. Without them a
    pipeline is reported by commit statuses alone, and the check-run methods raise `ForgeRejected`."""
    annotations: bool
    """File and line annotations on check runs."""
    inline_review_comments: bool
    """Reviews with comments on lines of a pull request's diff (`create_review`): GitHub (token or App) and GitLab
    (merge request discussions). Without them findings go into the pull request's one comment."""


@dataclass(frozen=True, slots=True)
class ReviewComment:
    """A comment on lines `start_line`..`line` (or on `line` alone) of file `path` as the pull request's head has
    them (the new side of the diff); the lines must be part of the diff, or the forge refuses the review."""

    path: str
    line: int
    start_line: int | None
    body: str

    def __post_init__(self) -> None:
        if self.line < 1 or (self.start_line is not None and not 1 <= self.start_line <= self.line):
            raise InvalidInput(
                f"review comment on {self.path!r}: lines must satisfy 1 <= start_line <= line, "
                f"got {self.start_line}..{self.line}"
            )


@dataclass(frozen=True, slots=True)
class IssueRef:
    number: int
    url: str


class Permission(enum.IntEnum):
    """A person's access to a repository, ordered: a higher member includes what the lower ones allow."""

    NONE = 0
    READ = 1
    TRIAGE = 2
    WRITE = 3
    MAINTAIN = 4
    ADMIN = 5

    @property
    def can_write(self) -> bool:
        """May push branches (and so have Taskmaster act on their request)."""
        return self >= Permission.WRITE

    @property
    def label(self) -> str:
        return self.name.lower()


def comment_marker(marker: str) -> str:
    """The hidden HTML comment that opens a persistent comment and finds it again: `<!-- taskmaster:<marker> -->`."""
    if not marker or "--" in marker or ">" in marker or "\n" in marker:
        raise InvalidInput(f"comment marker {marker!r} must be non-empty, one line, without '--' or '>'")
    return f"<!-- taskmaster:{marker} -->"


def marked_body(marker: str, body: str) -> str:
    """The comment text as posted: the marker line, then the body."""
    return f"{comment_marker(marker)}\n{body}"


def is_marked(text: str | None, marker: str) -> bool:
    """Whether a comment is the one `marked_body` wrote (it starts with the marker, so a quote of it does not count)."""
    return text is not None and text.startswith(comment_marker(marker))


class ForgeError(http.ServiceError, service="Forge"):
    """A forge refused or failed a request; `extra` carries `forge` and, when there was an answer, `status`."""


class ForgeAuthError(ForgeError, http.ServiceUnauthenticated):
    """The forge did not accept Taskmaster's credentials (bad or expired token, App key or installation)."""


class ForgePermissionDenied(ForgeError, http.ServicePermissionDenied):
    """Taskmaster's credentials may not do this on the forge (HTTP 403)."""


class ForgeNotFound(ForgeError, http.ServiceNotFound):
    """No such repository, pull request, branch or comment on the forge (or not visible to the credentials)."""

    title = "Not found on the forge"


class ForgeConflict(ForgeError, http.ServiceConflict):
    """What was to be created exists already (a branch, an open merge request for the same branches)."""


class ForgeRejected(ForgeError, http.ServiceRejected):
    """The forge found the request invalid (HTTP 400/422)."""


class ForgeUnavailable(ForgeError, http.ServiceUnavailable):
    """The forge could not be reached, timed out, or kept answering 5xx past the retries."""


class ForgeRateLimited(ForgeUnavailable, http.ServiceRateLimited):
    """The forge's rate limit asks for a longer wait than the client may spend; `extra["retry_after"]` is seconds."""


def error_for_status(
    forge: str, status: int, message: str, action: str, *, retry_after: float | None = None
) -> ForgeError:
    """The error for an HTTP error answer: `<forge> <action>: HTTP <status>: <forge's message>`."""
    detail = f"{forge} {action}: HTTP {status}: {message}"
    # 405 is how both forges refuse to merge a pull request that cannot be merged (conflicts, checks, draft), and
    # both answer 400/422 to a branch or merge request that exists already.
    if retry_after is None and (status == 405 or (status in (400, 422) and "already exist" in message.lower())):
        return ForgeConflict(detail, forge=forge, status=status)
    return ForgeError.for_status(status, detail, retry_after=retry_after, forge=forge)


class Forge(Protocol):
    """Where Taskmaster reports results and opens work: one repository host (GitHub, GitLab) behind one interface.

    Repositories are named as the forge names them: `owner/name` on GitHub, the project's full path
    (`group/subgroup/project`) or its numeric id on GitLab. `number` is a pull request number on GitHub and a
    merge request iid on GitLab.

    Lifecycle: built from plain arguments (URL, credentials, timeouts) without network access, one per project or
    GitHub App (an App client finds each repository's installation itself); connections and tokens are made on
    first use and kept; `aclose()` releases them, after which the object must not be used.
    Concurrency: any number of calls may run at once from one event loop. Each client bounds its own concurrency
    and spaces its write requests per installation/token (secondary rate limits), and serializes `upsert_comment`
    calls for the same comment so two of them never create two comments.
    Errors: rate limits (honouring Retry-After / reset headers, up to a configured wait), 5xx answers and
    connection failures are retried with backoff up to a bounded number of attempts; what is left is raised as a
    `ForgeError` subclass: `ForgeAuthError` (401), `ForgePermissionDenied` (403), `ForgeNotFound` (404),
    `ForgeConflict` (already exists), `ForgeRejected` (400/422), `ForgeRateLimited` (limit outlasting the wait),
    `ForgeUnavailable` (5xx, timeouts, unreachable). Messages quote the forge's own error text, never a credential.
    """

    @property
    def name(self) -> str:
        """Which forge: "github" or "gitlab"."""
        ...

    @property
    def capabilities(self) -> ForgeCapabilities:
        """What this client can show (check runs, annotations, inline review comments); known without network."""
        ...

    async def set_commit_status(
        self,
        repo: str,
        sha: str,
        *,
        context: str,
        state: CommitState,
        description: str | None = None,
        target_url: str | None = None,
    ) -> None:
        """Set the status named `context` on commit `sha` (a later call with the same context replaces it)."""
        ...

    async def create_check_run(self, repo: str, spec: CheckRunSpec) -> str:
        """Create a check run and return its id; annotations past the first 50 are added by further updates.
        Only with `capabilities.check_runs`; otherwise `ForgeRejected`."""
        ...

    async def update_check_run(self, repo: str, check_run_id: str, spec: CheckRunSpec) -> None:
        """Bring a check run to `spec` (status, conclusion, output); its annotations are added, 50 per request."""
        ...

    async def upsert_comment(self, repo: str, number: int, *, marker: str, body: str) -> str:
        """Create the pull request's comment marked `marker`, or edit it in place if it exists; return its id."""
        ...

    async def create_review(
        self, repo: str, number: int, *, commit_sha: str, body: str, comments: Sequence[ReviewComment]
    ) -> str:
        """Post one review with inline comments on lines of the pull request's diff at `commit_sha`; returns its id.
        Only with `capabilities.inline_review_comments`; otherwise `ForgeRejected`. A comment on a line outside the
        diff makes the forge refuse the review (`ForgeRejected`)."""
        ...

    async def create_branch(self, repo: str, name: str, from_sha: str) -> None:
        """Create branch `name` at `from_sha`; `ForgeConflict` if it exists."""
        ...

    async def create_pull_request(
        self, repo: str, *, head: str, base: str, title: str, body: str, draft: bool = False
    ) -> PullRequestRef:
        """Open a pull (merge) request from branch `head` into `base`."""
        ...

    async def get_pull_request(self, repo: str, number: int) -> PullRequestDetails:
        """The pull request as it is now; `ForgeNotFound` when there is none of that number."""
        ...

    async def merge_pull_request(self, repo: str, number: int, *, squash: bool = False, sha: str | None = None) -> str:
        """Merge the pull request (its commits squashed into one with `squash`) and return the merge commit's sha.
        With `sha`, only while the head is still that commit. `ForgeConflict` when the forge refuses the merge
        (conflicts, required checks, a draft, a head that moved past `sha`)."""
        ...

    async def close_pull_request(self, repo: str, number: int) -> None:
        """Close the pull request without merging (closing a closed one is no error)."""
        ...

    async def create_issue(self, repo: str, *, title: str, body: str, labels: Sequence[str] = ()) -> IssueRef:
        """Open an issue."""
        ...

    async def read_file(self, repo: str, path: str, ref: str) -> bytes | None:
        """The bytes of file `path` at `ref` (branch, tag or sha), or None when there is no such file."""
        ...

    async def user_permission(self, repo: str, login: str) -> Permission:
        """What `login` may do in the repository (`Permission.NONE` for a stranger or an unknown login)."""
        ...

    async def aclose(self) -> None:
        """Close connections; the client may not be used afterwards."""
        ...


@runtime_checkable
class PullRequestLookup(Protocol):
    """A forge client that can find the open pull request of a branch (code generation reuses the PR an earlier
    attempt opened instead of opening a second one). Clients without it are asked to create, and a `ForgeConflict`
    then says one exists."""

    async def find_pull_request(self, repo: str, *, head: str, base: str | None = None) -> PullRequestRef | None:
        """The open pull request from branch `head` (into `base`, when given), or None."""
        ...
