"""/api/pipelines: pipelines, their steps and attempts, status, logs (SSE), retry and cancel."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter(prefix="/api/pipelines", tags=["pipelines"])
