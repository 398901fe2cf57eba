"""The AI review of pull requests: the `ai_review` built-in step and the `review` workflow kind, over one service
(`service.review`) and reviewers behind one protocol (`base.Reviewer`)."""

from taskmaster.workflows.review.workflow import KIND, NOT_CONFIGURED, ReviewWorkflow

__all__ = ["KIND", "NOT_CONFIGURED", "ReviewWorkflow"]
