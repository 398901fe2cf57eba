"""Webhook deliveries: persisted before they are acknowledged, then turned into pipeline requests by the worker."""
