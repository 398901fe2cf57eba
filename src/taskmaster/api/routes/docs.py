"""`/docs`: Swagger UI over the OpenAPI document, its assets served from the package so that it works offline."""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, Request
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import FileResponse, HTMLResponse

from taskmaster.core.errors import NotFound

ASSETS = Path(__file__).parents[1] / "static" / "swagger-ui"
_SERVED = {
    "swagger-ui-bundle.js": "text/javascript",
    "swagger-ui.css": "text/css",
    "favicon-32x32.png": "image/png",
}

router = APIRouter(include_in_schema=False)


@router.get("/docs")
async def swagger_ui(request: Request) -> HTMLResponse:
    """The interactive API documentation (authorise with a bearer token to try the routes)."""
    root = request.scope.get("root_path", "").rstrip("/")
    return get_swagger_ui_html(
        openapi_url=f"{root}/openapi.json",
        title="Taskmaster API",
        swagger_js_url=f"{root}/docs/assets/swagger-ui-bundle.js",
        swagger_css_url=f"{root}/docs/assets/swagger-ui.css",
        swagger_favicon_url=f"{root}/docs/assets/favicon-32x32.png",
    )


@router.get("/docs/assets/{name}")
async def swagger_ui_asset(name: str) -> FileResponse:
    """One of the vendored Swagger UI files (only those: the name never reaches the file system otherwise)."""
    media_type = _SERVED.get(name)
    if media_type is None:
        raise NotFound(f"no documentation asset {name!r}")
    return FileResponse(ASSETS / name, media_type=media_type, headers={"Cache-Control": "public, max-age=86400"})
