"""Audit trail: who changed what, through which request."""
