"""The AI loop and other use cases that compose tasks, pipelines, agents and forges; no HTTP, no CLI."""
