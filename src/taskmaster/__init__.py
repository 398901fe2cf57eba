"""Taskmaster: an AI-driven CI/CD orchestrator."""

__version__ = "0.1.0"
