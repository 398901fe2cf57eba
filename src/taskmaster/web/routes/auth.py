"""Sign-in and sign-out: an API token typed into a form, or one click for the person at this machine.

The one-click sign-in exists only on the embedded default and only for a request from loopback: the server reads
its own local admin token file, which only someone at this machine could have read anyway.
"""

from __future__ import annotations

import ipaddress
import secrets
from typing import Annotated

from fastapi import APIRouter, Form, Request, Response
from fastapi.responses import HTMLResponse, RedirectResponse

from taskmaster.auth import service as auth_service
from taskmaster.auth import web_sessions
from taskmaster.core.errors import PermissionDenied, Unauthenticated
from taskmaster.web.deps import LOGIN_CSRF_COOKIE, SESSION_COOKIE, services
from taskmaster.web.pages import PageRoute, render

router = APIRouter(route_class=PageRoute, include_in_schema=False)


def _local_sign_in_offered(request: Request) -> bool:
    app = services(request)
    if not app.settings.embedded or not app.settings.admin_token_file.exists():
        return False
    host = request.client.host if request.client else ""
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _safe_next(target: str | None) -> str:
    """Only a path of this site: never `//elsewhere` or a full URL (an open redirect)."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return "/"
    return target


@router.get("/login", response_class=HTMLResponse)
async def login_form(request: Request, next: str = "/", expired: int = 0) -> Response:
    token = secrets.token_urlsafe(24)
    response = render(
        request,
        "login.html",
        None,
        next=_safe_next(next),
        csrf=token,
        local=_local_sign_in_offered(request),
        expired=bool(expired),
        error=None,
    )
    _set_cookie(request, response, LOGIN_CSRF_COOKIE, token, max_age=3600)
    return response


@router.post("/login")
async def login(
    request: Request,
    csrf_token: Annotated[str, Form()] = "",
    token: Annotated[str, Form()] = "",
    next: Annotated[str, Form()] = "/",
    local: Annotated[str, Form()] = "",
) -> Response:
    expected = request.cookies.get(LOGIN_CSRF_COOKIE, "")
    if not expected or not secrets.compare_digest(expected, csrf_token):
        raise PermissionDenied("the sign-in form expired or came from another site: reload it and try again")
    app = services(request)
    if local:
        if not _local_sign_in_offered(request):
            raise PermissionDenied("one-click sign-in is only for the embedded default, from this machine")
        token = app.settings.admin_token_file.read_text().strip()
    async with app.db.transaction() as session:
        try:
            principal = await auth_service.authenticate(session, app.settings, token.strip())
            opened = await web_sessions.open_session(session, principal)
        except Unauthenticated as exc:
            fresh = secrets.token_urlsafe(24)
            response = render(
                request, "login.html", None, status_code=401, next=_safe_next(next), csrf=fresh,
                local=_local_sign_in_offered(request), expired=False, error=exc.detail,
            )  # fmt: skip
            _set_cookie(request, response, LOGIN_CSRF_COOKIE, fresh, max_age=3600)
            return response
    redirect = RedirectResponse(_safe_next(next), status_code=303)
    _set_cookie(request, redirect, SESSION_COOKIE, opened.secret, max_age=opened.max_age_seconds)
    redirect.delete_cookie(LOGIN_CSRF_COOKIE, path="/")
    return redirect


@router.post("/logout")
async def logout(request: Request) -> Response:
    # Signing out needs no CSRF token: the worst a forged request can do is sign the person out.
    secret = request.cookies.get(SESSION_COOKIE)
    if secret:
        async with services(request).db.transaction() as session:
            await web_sessions.close_session(session, secret)
    response = RedirectResponse("/login", status_code=303)
    response.delete_cookie(SESSION_COOKIE, path="/")
    return response


def _set_cookie(request: Request, response: Response, name: str, value: str, *, max_age: int) -> None:
    response.set_cookie(
        name,
        value,
        max_age=max_age,
        path="/",
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
    )
