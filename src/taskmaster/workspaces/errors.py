"""The workspaces package's one error: a mirror, checkout or clean-up failed for infrastructure reasons."""

from __future__ import annotations

from typing import Literal

from taskmaster.core.errors import TaskmasterError


class WorkspaceError(TaskmasterError):
    """Git or the file system failed while preparing or removing a workspace; the step did not run.

    `failure_reason` is "infra": the pipeline retries such failures. Messages name the repository and commit and
    carry git's own error output, with any token masked.
    """

    code = "workspace_error"
    title = "Workspace could not be prepared"
    failure_reason: Literal["infra"] = "infra"
