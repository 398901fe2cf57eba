"""/api/metrics/pipelines (the seed's figures) and /metrics (Prometheus)."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter(tags=["metrics"])
