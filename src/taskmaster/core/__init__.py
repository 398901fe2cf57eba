"""Shared building blocks with no knowledge of the database or the doors."""
