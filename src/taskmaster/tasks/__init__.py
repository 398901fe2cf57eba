"""Tasks: the graph a PRD is broken into, and the next task an agent should take."""
