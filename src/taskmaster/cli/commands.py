"""The command table: names and one-line summaries, shared by the fast `--help` path and the Typer app.

Kept free of imports so that `taskmaster --help` starts in a few milliseconds.
"""

from __future__ import annotations

PROGRAM = "taskmaster"
SUMMARY = "Taskmaster: AI-driven CI/CD orchestrator (PRD -> tasks -> agents -> validated pull requests)."

# (command, module under taskmaster.cli that defines it, summary)
COMMANDS: tuple[tuple[str, str, str], ...] = (
    ("serve", "serve", "Start the API server (with an in-process worker unless --no-worker)."),
    ("worker", "worker", "Run a worker process: pipelines, workflow runs, webhook deliveries."),
    ("db", "db", "Database schema: migrate, status, create-migration."),
    ("project", "projects", "Register and inspect projects (repositories)."),
    ("prd", "prd", "Turn a product requirements document into tasks."),
    ("task", "tasks", "The task graph: add, list, next, claim, ready, deps, set-status, import, export."),
    (
        "pipeline",
        "pipelines",
        "Pipelines: run one here (live), list, show, logs, cancel, init (write .taskmaster.yml).",
    ),
    (
        "codegen",
        "codegen",
        "Code generation: ready tasks become pull requests written by coding agents (run live, list, show, cancel).",
    ),
    ("webhooks", "webhooks", "Webhook deliveries: list, show, redeliver."),
    ("pr", "pulls", "Pull requests of the local forge: create, list, show, ready, merge (with git), close."),
    ("issue", "issues", "Issues of the local forge: list, show."),
    ("metrics", "metrics", "Pipeline figures: success rate, durations, failing steps, stuck pipelines."),
    ("token", "tokens", "Create, list and revoke API tokens."),
    ("template", "templates", "Prompt templates: list, show, edit (a new version), activate a version."),
    ("secrets", "secrets", "Secrets at rest: rotate the encryption key."),
    ("mcp", "mcp", "MCP server for coding agents: the task graph as tools (stdio, or --http)."),
    ("agentapi", "agentapi", "AgentAPI server for terminal coding agents (many sessions, auth, transcripts)."),
    ("demo", "demo", "Make a sample project on the local forge, with tasks and a pipeline, to watch in the dashboard."),
)


def fast_help() -> str:
    """The top-level help, rendered without importing Typer, Rich or pydantic."""
    width = max(len(name) for name, _, _ in COMMANDS)
    lines = [
        f"Usage: {PROGRAM} [--version] COMMAND [ARGS]...",
        "",
        f"  {SUMMARY}",
        "",
        "Commands:",
        *(f"  {name.ljust(width)}  {summary}" for name, _, summary in COMMANDS),
        "",
        f"Run '{PROGRAM} COMMAND --help' for a command's options.",
    ]
    return "\n".join(lines)
