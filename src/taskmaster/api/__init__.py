"""The HTTP door: REST under /api, /health, webhooks later. Routes parse, call a service, render."""
