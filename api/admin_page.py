"""The status page's routes in the admin app: the page at /admin/ (api/status_page.py
makes it), its figures as JSON at /admin/status, and a browser's login and logout.

A browser posts the admin token once (a form: never in a URL) and gets a session cookie
(shared/policy/access.py: HttpOnly, SameSite=Strict, 12 hours, Secure over HTTPS) that
only these two GETs accept; every other admin operation takes the Bearer token alone,
so a cookie can never purge. Scripts send the Bearer token here too.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import bottle

from api.responses import json_response
from api.status_page import (
    login_page,
    new_nonce,
    security_headers,
    status_page,
    unavailable_page,
)
from shared.config.settings import Settings
from shared.errors import CachedProxyError, Unauthorized
from shared.policy.access import (
    SESSION_COOKIE,
    SESSION_SECONDS,
    bearer,
    same_secret,
    session_value,
    valid_session,
)
from shared.store.entries import store_errors

log = logging.getLogger(__name__)
Overview = Callable[[float], dict[str, Any]]  # now -> the status page's figures
CHALLENGE = {"WWW-Authenticate": 'Bearer realm="cachedproxy admin"'}


def bearer_ok(token: str) -> bool:
    """Whether the request carries ``Authorization: Bearer <token>``."""
    given = bearer(bottle.request.get_header("Authorization"))
    return given is not None and same_secret(given, token)


def mount_status_page(app: bottle.Bottle, current: Callable[[], Settings],
                      clock: Callable[[], float], overview: Overview) -> None:
    """The status page at / of the admin app, its login and logout, and its figures as
    JSON at /status. A browser logs in with the token once (a form post) and then sends
    the session cookie, which only these GETs accept; scripts send the Bearer token."""

    def page(html: str, status: int, nonce: str,
             extra: dict[str, str] | None = None) -> bottle.HTTPResponse:
        return bottle.HTTPResponse(html, status, {**security_headers(nonce), **(extra or {})})

    def login_form(message: str = "") -> bottle.HTTPResponse:
        nonce = new_nonce()
        return page(login_page(nonce, message), 401, nonce, CHALLENGE)

    def signed_in(token: str) -> bool:
        return bearer_ok(token) or valid_session(
            bottle.request.get_cookie(SESSION_COOKIE), token, clock())

    @app.get("/")
    def status_html() -> bottle.HTTPResponse:
        token = current().admin.token
        if not signed_in(token):
            return login_form()
        nonce = new_nonce()
        try:
            with store_errors():
                figures = overview(clock())
        except CachedProxyError as exc:
            return page(unavailable_page(nonce, exc.message), exc.status, nonce)
        return page(status_page(figures, nonce), 200, nonce)

    @app.get("/status")
    def status_json() -> bottle.HTTPResponse:
        if not signed_in(current().admin.token):
            error: CachedProxyError = Unauthorized("admin token missing or wrong")
            return json_response(error.status, error.body(), CHALLENGE)
        try:
            with store_errors():
                figures = overview(clock())
        except CachedProxyError as error:
            return json_response(error.status, error.body())
        return json_response(200, figures, {"Cache-Control": "no-store"})

    @app.post("/login")
    def login() -> bottle.HTTPResponse:
        token = current().admin.token
        given = bottle.request.forms.getunicode("token") or ""
        if not same_secret(given, token):
            log.warning("admin login refused", extra={"client": bottle.request.remote_addr})
            return login_form("That is not the admin token.")
        response = bottle.HTTPResponse(status=303, headers={"Location": "/admin/",
                                                            "Cache-Control": "no-store"})
        response.set_cookie(SESSION_COOKIE, session_value(token, clock()),
                            max_age=SESSION_SECONDS, path="/admin/", httponly=True,
                            samesite="strict", secure=bottle.request.urlparts.scheme == "https")
        return response

    @app.post("/logout")
    def logout() -> bottle.HTTPResponse:
        response = bottle.HTTPResponse(status=303, headers={"Location": "/admin/",
                                                            "Cache-Control": "no-store"})
        response.delete_cookie(SESSION_COOKIE, path="/admin/")
        return response
