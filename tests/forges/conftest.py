"""Forge clients against fake forges on loopback: one server per module and forge, the client settings the tests
use, and `ForgeUnderTest`, through which the contract suite (test_forge_contract.py) runs against every forge."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from taskmaster.forges.github.client import GitHubForge
from taskmaster.forges.gitlab.client import GitLabForge
from taskmaster.forges.throttle import RetryPolicy, ThrottleSettings
from tests.forges.fakes import github as fake_github
from tests.forges.fakes import gitlab as fake_gitlab
from tests.forges.fakes.github import FakeGitHub, serve_github
from tests.forges.fakes.gitlab import FakeGitLab, serve_gitlab

FAST_RETRY = RetryPolicy(max_retries=3, backoff_base=0.05, backoff_max=0.2, max_rate_limit_wait=5.0)
NO_THROTTLE = ThrottleSettings(max_concurrency=10, min_write_interval=0.0)
GITLAB_PROJECT_ID = 42
"""The fake GitLab's id of `acme/platform/api`."""


@pytest.fixture(scope="module")
def _github_server() -> Iterator[tuple[str, FakeGitHub]]:
    with serve_github() as server:
        yield server


@pytest.fixture(scope="module")
def _gitlab_server() -> Iterator[tuple[str, FakeGitLab]]:
    with serve_gitlab() as server:
        yield server


@pytest.fixture
def github(_github_server: tuple[str, FakeGitHub]) -> tuple[str, FakeGitHub]:
    _github_server[1].reset()
    return _github_server


@pytest.fixture
def gitlab(_gitlab_server: tuple[str, FakeGitLab]) -> tuple[str, FakeGitLab]:
    _gitlab_server[1].reset()
    return _gitlab_server


@pytest.fixture
def fake(request: pytest.FixtureRequest) -> FakeGitHub | FakeGitLab:
    """The fake forge of the module's `FORGE` ("github" or "gitlab"), emptied."""
    server: tuple[str, FakeGitHub | FakeGitLab] = request.getfixturevalue(request.module.FORGE)
    return server[1]


@pytest.fixture
async def forge(request: pytest.FixtureRequest) -> AsyncIterator[GitHubForge | GitLabForge]:
    """A client of the module's `FORGE` against its fake, with a valid token, fast retries and no write spacing."""
    url: str = request.getfixturevalue(request.module.FORGE)[0]
    client = GitHubForge(token=fake_github.PERSONAL_TOKEN, base_url=url, retry=FAST_RETRY, throttle=NO_THROTTLE) if (
        request.module.FORGE == "github"
    ) else GitLabForge(token=fake_gitlab.TOKEN, base_url=url, retry=FAST_RETRY, throttle=NO_THROTTLE)  # fmt: skip
    yield client
    await client.aclose()


@dataclass
class ForgeUnderTest:
    """One forge for the contract suite: its client's class and credentials, its fake, and the few places where the
    fakes differ (how state is held, how a limit is injected, what the forge calls things on the wire)."""

    name: str
    display: str
    url: str
    fake: FakeGitHub | FakeGitLab
    repo: str
    token: str
    wrong_token: str
    comment_paths: tuple[str, str]
    """Where a pull request's comment is created and where it is edited (`{repo}`, `{number}` and `{id}` filled)."""

    def client(self, *, token: str | None = None, url: str | None = None, **options: Any) -> GitHubForge | GitLabForge:
        options.setdefault("retry", FAST_RETRY)
        options.setdefault("throttle", NO_THROTTLE)
        kind = GitHubForge if self.name == "github" else GitLabForge
        return kind(token=token or self.token, base_url=url or self.url, **options)

    def comments(self, number: int) -> list[str]:
        if isinstance(self.fake, FakeGitHub):
            return [c["body"] for c in self.fake.comments_on(self.repo, number)]
        return [n["body"] for n in self.fake.notes_on(GITLAB_PROJECT_ID, number)]

    def put_file(self, ref: str, path: str, content: bytes) -> None:
        if isinstance(self.fake, FakeGitHub):
            self.fake.state.files[(self.repo, ref, path)] = content
        else:
            self.fake.state.files[(GITLAB_PROJECT_ID, ref, path)] = content

    def rate_limit(self, *, retry_after: int, method: str | None = None) -> None:
        """The next matching request is refused by the forge's rate limit, asking to wait `retry_after` s."""
        if isinstance(self.fake, FakeGitHub):
            self.fake.secondary_rate_limit(retry_after=retry_after, method=method)
        else:
            self.fake.rate_limited(retry_after=retry_after, method=method)

    def issues(self) -> list[dict[str, Any]]:
        return self.fake.state.issues

    def limit_diff(self, number: int, lines: dict[str, set[int]]) -> None:
        """The pull request's diff touches only `lines` (new-side line numbers per path)."""
        if isinstance(self.fake, FakeGitHub):
            self.fake.state.diff_lines[(self.repo, number)] = lines
        else:
            self.fake.state.diff_lines[(GITLAB_PROJECT_ID, number)] = lines

    def review_sent(self, number: int) -> tuple[str, list[dict[str, Any]]]:
        """The review the forge holds for a pull request, as sent: its body and its comments, each as
        `{path, line, start_line, body, commit}` in the order posted."""
        if isinstance(self.fake, FakeGitHub):
            (review,) = [r for r in self.fake.state.reviews if r["number"] == number]
            return review["body"], [
                {"path": c["path"], "line": c["line"], "start_line": c.get("start_line"), "body": c["body"],
                 "commit": review["commit_id"]}
                for c in review["comments"]
            ]  # fmt: skip
        bodies = [n["body"] for n in self.fake.notes_on(GITLAB_PROJECT_ID, number)]
        comments = [
            {"path": d["position"]["new_path"], "line": d["position"]["new_line"], "start_line": None,
             "body": d["body"], "commit": d["position"]["head_sha"]}
            for d in self.fake.state.discussions if d["iid"] == number
        ]  # fmt: skip
        return "\n".join(bodies), comments

    def pull(self, number: int) -> dict[str, Any]:
        """The fake's record of a pull (merge) request."""
        held = self.fake.state.pulls if isinstance(self.fake, FakeGitHub) else self.fake.state.merge_requests
        key = "number" if isinstance(self.fake, FakeGitHub) else "iid"
        return next(p for p in held if p[key] == number)


@pytest.fixture(params=["github", "gitlab"])
def under_test(
    request: pytest.FixtureRequest, github: tuple[str, FakeGitHub], gitlab: tuple[str, FakeGitLab]
) -> ForgeUnderTest:
    if request.param == "github":
        return ForgeUnderTest(
            name="github", display="GitHub", url=github[0], fake=github[1], repo="acme/api",
            token=fake_github.PERSONAL_TOKEN, wrong_token="ghp_wrong0123456789abcdefghijklmnopqrstu",
            comment_paths=("POST /repos/{repo}/issues/{number}/comments", "PATCH /repos/{repo}/issues/comments/{id}"),
        )  # fmt: skip
    notes = "/api/v4/projects/acme%2Fplatform%2Fapi/merge_requests/{number}/notes"
    return ForgeUnderTest(
        name="gitlab", display="GitLab", url=gitlab[0], fake=gitlab[1], repo="acme/platform/api",
        token=fake_gitlab.TOKEN, wrong_token="glpat-wrong0123456789abcd",
        comment_paths=(f"POST {notes}", f"PUT {notes}/{{id}}"),
    )  # fmt: skip
