"""The dashboard's routers, and `install(app)`: routes, vendored static files."""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles

from taskmaster.web.routes import agents, auth, codegen, home, pipelines, settings, tasks, webhooks


def install(app: FastAPI) -> None:
    """Add the dashboard to `app`: its pages and `/static` (served from the package: nothing from a CDN)."""
    app.mount("/static", StaticFiles(packages=[("taskmaster.web", "static")]), name="static")
    routers = (auth, home, pipelines, tasks, codegen, agents, webhooks, settings)
    for module in routers:
        app.include_router(module.router)
