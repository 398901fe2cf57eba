"""Code generation: ready tasks become branches and pull requests, written by coding agents, in durable runs."""
