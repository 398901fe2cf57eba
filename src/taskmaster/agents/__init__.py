"""Coding agents: the AgentAPI client, our AgentAPI-compatible server for terminal agents, and their protocols."""
