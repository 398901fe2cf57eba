"""The local forge's I/O models, shared by the REST routes and the command line."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

_BRANCH = Field(min_length=1, max_length=500, description="A branch of the project's repository.")


def _no_nul(value: str | None) -> str | None:
    if value is not None and "\x00" in value:
        raise ValueError("must not contain NUL characters")
    return value


class PullRequestCreate(BaseModel):
    """A pull request to open over two branches of a local-forge project's repository."""

    model_config = ConfigDict(extra="forbid")

    head: str = _BRANCH
    base: str | None = Field(None, min_length=1, max_length=500, description="Default: the project's branch.")
    title: str = Field(min_length=1, max_length=1000)
    body: str = Field("", max_length=65536)
    draft: bool = False

    @field_validator("head", "base", "title", "body")
    @classmethod
    def _text(cls, value: str | None) -> str | None:
        return _no_nul(value)

    @field_validator("title")
    @classmethod
    def _title_not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("must not be blank")
        return value


class MergeRequest(BaseModel):
    """How to merge: a merge commit (default) or one squashed commit; `sha` merges only while the head is there."""

    model_config = ConfigDict(extra="forbid")

    squash: bool = False
    sha: str | None = Field(None, pattern=r"^[0-9a-f]{40}$|^[0-9a-f]{64}$")


class CommitStatusOut(BaseModel):
    sha: str
    context: str
    state: str
    description: str | None
    target_url: str | None
    updated_at: datetime


class CheckRunOut(BaseModel):
    id: uuid.UUID
    name: str
    head_sha: str
    status: str
    conclusion: str | None
    title: str | None
    summary: str
    annotations: list[dict[str, Any]]
    updated_at: datetime


class CommentOut(BaseModel):
    marker: str
    body: str
    updated_at: datetime


class ReviewOut(BaseModel):
    id: uuid.UUID
    commit_sha: str
    body: str
    comments: list[dict[str, Any]]
    created_at: datetime


class PipelineBrief(BaseModel):
    id: uuid.UUID
    status: str
    commit_sha: str | None
    created_at: datetime


class PullRequestOut(BaseModel):
    """A pull request Taskmaster knows of: the local forge's own, or one seen on GitHub/GitLab (`forge`)."""

    forge: str
    number: int
    title: str | None
    body: str | None
    state: str
    draft: bool
    merged: bool
    head_ref: str
    head_sha: str
    base_ref: str
    base_sha: str | None
    merge_commit_sha: str | None
    author: str | None
    url: str | None
    task_id: uuid.UUID | None
    created_at: datetime
    updated_at: datetime


class PullRequestDetail(PullRequestOut):
    """A pull request with what was reported on it: statuses and check runs of its head, its comments, reviews and
    pipelines."""

    statuses: list[CommitStatusOut]
    check_runs: list[CheckRunOut]
    comments: list[CommentOut]
    reviews: list[ReviewOut]
    pipelines: list[PipelineBrief]


class IssueOut(BaseModel):
    number: int
    title: str
    body: str
    state: str
    labels: list[str]
    author: str | None
    url: str
    created_at: datetime
    updated_at: datetime
