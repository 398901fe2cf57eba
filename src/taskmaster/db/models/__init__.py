"""Every table, one module per domain. Importing this package registers them all on `Base.metadata`."""

from taskmaster.db.models.agents import AgentSession
from taskmaster.db.models.ai_calls import AiCall
from taskmaster.db.models.audit import AuditEvent
from taskmaster.db.models.auth import ApiToken, RoleBinding, User
from taskmaster.db.models.pipelines import Pipeline, PipelineStep, StepAttempt, StepLog
from taskmaster.db.models.projects import Project
from taskmaster.db.models.pull_requests import PullRequest
from taskmaster.db.models.tasks import Task, TaskDependency
from taskmaster.db.models.templates import Template
from taskmaster.db.models.web import WebSession
from taskmaster.db.models.webhooks import WebhookDelivery
from taskmaster.db.models.workers import Worker
from taskmaster.db.models.workflows import WorkflowRun, WorkflowStep

__all__ = [
    "AgentSession",
    "AiCall",
    "ApiToken",
    "AuditEvent",
    "Pipeline",
    "PipelineStep",
    "Project",
    "PullRequest",
    "RoleBinding",
    "StepAttempt",
    "StepLog",
    "Task",
    "TaskDependency",
    "Template",
    "User",
    "WebSession",
    "WebhookDelivery",
    "Worker",
    "WorkflowRun",
    "WorkflowStep",
]
