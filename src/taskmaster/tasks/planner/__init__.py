"""Planners turn a product requirements document into `PlannedTask`s (offline parser or an LLM)."""
