"""The workspaces package's errors: a mirror, checkout or clean-up failed (infra), or the sandbox cannot be made."""

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


class SandboxUnavailable(TaskmasterError):
    """The sandbox a step needs cannot be made on this machine (a tool is missing): a configuration error.

    Nothing of the step ran. Not retried: the pipeline ends `error`, and the message names the missing tool, how to
    install it, and the setting that turns the sandbox off on purpose.
    """

    code = "sandbox_unavailable"
    title = "Sandbox unavailable"
