"""Workspaces: the git mirror cache, per-attempt checkouts, the bubblewrap sandbox and clean-up."""
