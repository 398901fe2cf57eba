"""How a page answers: templates rendered with the viewer, and domain errors shown as an error page.

`PageRoute` is the route class of every dashboard router: a `TaskmasterError` becomes an HTML page with its
status (a missing sign-in, a redirect to the form), so the API's problem+json handlers never answer a browser.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Any

from fastapi import Request, Response
from fastapi.responses import HTMLResponse, RedirectResponse
from fastapi.routing import APIRoute

from taskmaster.core.errors import TaskmasterError, http_status
from taskmaster.web.deps import SignInRequired, Viewer
from taskmaster.web.templating import templates


def render(
    request: Request, name: str, viewer: Viewer | None, *, status_code: int = 200, **context: Any
) -> HTMLResponse:
    """A whole page (or an htmx fragment) from `templates/<name>`."""
    response = templates().TemplateResponse(request, name, {"viewer": viewer, **context}, status_code=status_code)
    response.headers["Cache-Control"] = "no-store"
    return response


class PageRoute(APIRoute):
    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def answer(request: Request) -> Response:
            try:
                return await handler(request)
            except SignInRequired as exc:
                target = f"/login?next={exc.next_path}"
                if exc.why:
                    target += "&expired=1"
                if request.headers.get("hx-request"):
                    return Response(status_code=401, headers={"HX-Redirect": target})
                return RedirectResponse(target, status_code=303)
            except TaskmasterError as exc:
                status = http_status(exc)
                return render(
                    request, "error.html", None, status_code=status, status=status, title=exc.title, detail=exc.detail
                )

        return answer
