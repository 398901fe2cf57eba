"""`/docs` works offline: the Swagger UI page loads its script, style and icon from the server itself."""

from __future__ import annotations

import re

from tests.api.conftest import Api


def test_docs_page_takes_every_asset_from_the_server_itself(api: Api) -> None:
    with api.client() as http:
        page = http.get("/docs")

        assert page.status_code == 200 and "text/html" in page.headers["content-type"]
        urls = re.findall(r"""(?:src|href)=["']([^"']+)["']""", page.text) + re.findall(r"url: '([^']+)'", page.text)
        assert "/openapi.json" in urls
        assert all(url.startswith("/") for url in urls), urls  # nothing from a CDN
        assets = {url for url in urls if url.startswith("/docs/assets/")}
        assert {a.rsplit("/", 1)[1] for a in assets} == {"swagger-ui-bundle.js", "swagger-ui.css", "favicon-32x32.png"}
        for asset in assets:
            served = http.get(asset)
            assert served.status_code == 200, asset
            assert len(served.content) > 500 and "max-age" in served.headers["cache-control"]
        assert "SwaggerUIBundle" in http.get("/docs/assets/swagger-ui-bundle.js").text
        assert http.get("/docs/assets/LICENSE").status_code == 404
        assert http.get("/docs/assets/..%2F..%2Fapp.py").status_code == 404
        assert http.get("/redoc").status_code == 404
